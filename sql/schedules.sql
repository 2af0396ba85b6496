-- Recurring schedules (table schedules). The driver owns the cron arithmetic (croner, with
-- time zones and daylight-saving rules); the engine owns exactly-once firing: a due time
-- is enqueued by schedule_fire in the same transaction that advances next_run_at past it,
-- under the schedule row's lock, and only when next_run_at is still the due time the
-- caller read. So however many workers run schedulers, each due time enqueues one job
-- (with the key schedule:<name>:<due time>, a second guard). Changes are announced on
-- <schema>_schedule (payload: the name) so schedulers re-read their next due time.

-- _schedule_notify: wakes the schedulers (channel <schema>_schedule).
CREATE OR REPLACE FUNCTION _schedule_notify(p_name text) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_catalog.pg_notify(_schema_name() || '_schedule', left(p_name, 200)); $$;
COMMENT ON FUNCTION _schedule_notify(text) IS 'Wakes schedulers after a schedule changed (channel <schema>_schedule).';

-- _schedule_changed: p_found, after waking the schedulers when it is true (the ending of
-- the functions that change one schedule by name and say whether it existed).
CREATE OR REPLACE FUNCTION _schedule_changed(p_name text, p_found boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  IF p_found THEN
    PERFORM _schedule_notify(p_name);
  END IF;
  RETURN p_found;
END;
$$;
COMMENT ON FUNCTION _schedule_changed(text, boolean) IS
  'Returns p_found; wakes schedulers first when it is true (a schedule changed).';

-- _schedule_key: the dedupe key of the job a schedule enqueues for one due time.
CREATE OR REPLACE FUNCTION _schedule_key(p_name text, p_due timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT 'schedule:' || p_name || ':' || to_char(p_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
$$;
COMMENT ON FUNCTION _schedule_key(text, timestamptz) IS 'Key of a scheduled run: schedule:<name>:<due time, ISO 8601 UTC>.';

-- schedule_upsert: creates or replaces the schedule p_name. p_job is the job to enqueue
-- each time (as job_enqueue_batch takes one job, without key, run_at, delay_ms, deadline
-- or on_duplicate: those are the schedule's); it is tried (enqueued and rolled back) so a
-- schedule that cannot enqueue is refused now rather than at its first run. p_next_run_at
-- is the first due time the driver computed from p_cron and p_tz; an existing schedule
-- whose cron and time zone are unchanged keeps its next_run_at (a worker restarting with
-- the same declarative schedules must not skip the runs missed while it was down), unless
-- this call resumes it (paused, and p_paused false): then runs due while paused are
-- skipped, as schedule_pause does. It keeps its paused state unless p_paused is given.
-- Returns true when it was created.
CREATE OR REPLACE FUNCTION schedule_upsert(p_name text, p_cron text, p_tz text, p_job jsonb,
                                           p_next_run_at timestamptz, p_backfill integer DEFAULT 0,
                                           p_paused boolean DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_now     timestamptz := engine_now();
  v_created boolean;
BEGIN
  IF p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND _limit_max_name_length() THEN
    PERFORM _bad_input(format('a schedule name has 1 to %s characters', _limit_max_name_length()));
  END IF;
  IF p_cron IS NULL OR length(p_cron) NOT BETWEEN 1 AND 200 THEN
    PERFORM _bad_input('a cron expression has 1 to 200 characters');
  END IF;
  -- The catalog reads every zone file (about 60 ms a call, 250 ms on a new connection:
  -- every worker start upserts its declarative schedules, in every tenant database); a
  -- zone a stored schedule has passed this check before, and UTC, need no second look.
  IF p_tz IS NULL OR length(p_tz) NOT BETWEEN 1 AND 100
     OR (p_tz <> 'UTC'
         AND NOT EXISTS (SELECT 1 FROM schedules WHERE tz = p_tz)
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = p_tz)) THEN
    PERFORM _bad_input(format('unknown time zone %s', left(coalesce(p_tz, 'NULL'), 100)));
  END IF;
  IF p_backfill IS NULL OR p_backfill NOT BETWEEN 0 AND 1000 THEN
    PERFORM _bad_input('a schedule''s backfill is 0 to 1000 runs');
  END IF;
  IF jsonb_typeof(p_job) IS DISTINCT FROM 'object'
     OR p_job ?| ARRAY['key', 'run_at', 'delay_ms', 'deadline', 'on_duplicate'] THEN
    PERFORM _bad_input('a schedule''s job is a JSON object without key, run_at, delay_ms, deadline or on_duplicate');
  END IF;
  -- One fire enqueues up to backfill copies of the job in one statement: bounded as one
  -- enqueue call is (past 256 MiB PostgreSQL refuses the array, and the schedule would
  -- fail at every fire instead of now).
  IF octet_length(p_job::text)::bigint * greatest(p_backfill, 1) > _limit_max_call_json_bytes() THEN
    PERFORM _bad_input(format('a schedule''s job (%s bytes) times its backfill (%s) exceeds %s bytes: one fire '
                              'enqueues every missed run at once; lower the backfill or the args',
                              octet_length(p_job::text), p_backfill, _limit_max_call_json_bytes()));
  END IF;
  IF p_next_run_at IS NOT NULL AND (p_next_run_at < _limit_min_date() OR p_next_run_at >= _limit_max_date()) THEN
    PERFORM _bad_input('a schedule''s next run lies outside the supported dates');
  END IF;
  -- Try the job: every enqueue check applies (steps, names, sizes, queue, priority...).
  BEGIN
    PERFORM _job_enqueue_batch(jsonb_build_array(p_job), 0);
    RAISE EXCEPTION 'trial enqueue' USING ERRCODE = 'SP900';
  EXCEPTION WHEN SQLSTATE 'SP900' THEN
    NULL; -- rolled back, with its NOTIFY
  END;
  INSERT INTO schedules AS s (name, cron, tz, job, backfill, paused, next_run_at, created_at, updated_at)
  VALUES (p_name, p_cron, p_tz, p_job, p_backfill, coalesce(p_paused, false), p_next_run_at, v_now, v_now)
  ON CONFLICT (name) DO UPDATE SET
    -- Resumed here (paused -> active, e.g. a declarative definition with paused: false): from
    -- the fresh next due time, as schedule_pause resumes; the kept one would enqueue every
    -- run due while paused (up to the backfill) at the next look.
    next_run_at = CASE WHEN s.cron = excluded.cron AND s.tz = excluded.tz
                            AND NOT (s.paused AND NOT coalesce(p_paused, s.paused)) THEN s.next_run_at
                       ELSE excluded.next_run_at END,
    cron = excluded.cron, tz = excluded.tz, job = excluded.job, backfill = excluded.backfill,
    paused = coalesce(p_paused, s.paused), updated_at = v_now
  RETURNING (xmax = 0) INTO v_created;
  PERFORM _schedule_notify(p_name);
  RETURN v_created;
END;
$$;
COMMENT ON FUNCTION schedule_upsert(text, text, text, jsonb, timestamptz, integer, boolean) IS
  'Creates or replaces a recurring schedule (job template tried first); keeps next_run_at when cron and tz are unchanged.';

-- schedule_remove: deletes a schedule (jobs it enqueued are untouched); true when it existed.
CREATE OR REPLACE FUNCTION schedule_remove(p_name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
  DELETE FROM schedules WHERE name = p_name;
  RETURN _schedule_changed(p_name, FOUND);
END;
$$;
COMMENT ON FUNCTION schedule_remove(text) IS 'Deletes a recurring schedule; true when it existed.';

-- schedule_pause: pauses (p_paused) or resumes a schedule; true when it exists. A paused
-- schedule enqueues nothing. Resuming sets next_run_at to p_next_run_at (the driver's next
-- due time from now; NULL: the expression never fires again): runs due while paused are
-- skipped, not caught up. Resuming without p_next_run_at is refused (SP001): the default
-- ('infinity' stands for "not given") used to be NULL, and `schedule_pause(name, false)`
-- in psql left an active schedule that never fired again. Pausing ignores it.
CREATE OR REPLACE FUNCTION schedule_pause(p_name text, p_paused boolean, p_next_run_at timestamptz DEFAULT 'infinity')
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
  IF p_paused IS NULL THEN
    PERFORM _bad_input('schedule_pause needs p_paused');
  END IF;
  IF NOT p_paused AND p_next_run_at = 'infinity' THEN
    PERFORM _bad_input('resuming a schedule needs p_next_run_at, its next due time after now (NULL: never again); '
                       'resumeSchedule() and `stepping schedules resume` compute it from the cron');
  END IF;
  IF NOT p_paused AND (p_next_run_at < _limit_min_date() OR p_next_run_at >= _limit_max_date()) THEN
    PERFORM _bad_input('a schedule''s next run lies outside the supported dates');
  END IF;
  UPDATE schedules SET paused = p_paused, updated_at = engine_now(),
                       next_run_at = CASE WHEN p_paused OR NOT paused THEN next_run_at ELSE p_next_run_at END
  WHERE name = p_name;
  RETURN _schedule_changed(p_name, FOUND);
END;
$$;
COMMENT ON FUNCTION schedule_pause(text, boolean, timestamptz) IS
  'Pauses or resumes a schedule (resume: next_run_at from the given time, required; runs due while paused are skipped).';

-- schedule_due: up to p_limit active schedules whose next run is due on the engine's
-- clock, with that clock's reading (now), for a scheduler to compute their runs, in the
-- order (next_run_at, name). p_after_at and p_after_name (both or neither) page on from
-- the last row of the previous look: a scheduler that cannot fire some schedules (a cron
-- or zone written in SQL that the driver cannot read, a job refused) pages past them to
-- the others instead of reading the same first page again (which never ended once a page
-- was full of them: every later schedule starved).
CREATE OR REPLACE FUNCTION schedule_due(p_limit integer DEFAULT 100, p_after_at timestamptz DEFAULT NULL,
                                        p_after_name text DEFAULT NULL)
RETURNS TABLE (name text, cron text, tz text, next_run_at timestamptz, backfill integer, now timestamptz)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
  WITH c AS MATERIALIZED (SELECT engine_now() AS now)
  SELECT s.name, s.cron, s.tz, s.next_run_at, s.backfill, c.now
  FROM schedules s CROSS JOIN c
  WHERE NOT s.paused AND s.next_run_at IS NOT NULL AND s.next_run_at <= c.now
    AND (p_after_at IS NULL OR (s.next_run_at, s.name) > (p_after_at, coalesce(p_after_name, '')))
  ORDER BY s.next_run_at, s.name
  LIMIT least(greatest(coalesce(p_limit, 100), 1), 1000);
$$;
COMMENT ON FUNCTION schedule_due(integer, timestamptz, text) IS
  'Active schedules whose next run is due (engine clock), with the clock''s reading; pages on after (p_after_at, p_after_name).';

-- schedule_fire: enqueues the runs p_runs of schedule p_name and advances its next_run_at
-- to p_next (NULL: never again), in the caller's transaction, only if the schedule is
-- active and its next_run_at is still p_from (the value the caller computed from):
-- otherwise another scheduler fired it, or it changed, and nothing happens (NULL). The row
-- is locked SKIP LOCKED, so a scheduler never waits for another. p_runs: the due times to
-- enqueue, each from p_from up to now, at most max(backfill, 1) of them; each is enqueued
-- with run_at = the due time and key schedule:<name>:<due time>. An unfinished job with
-- that key is not duplicated when the due time is one this schedule may have fired before
-- (at most last_run_at); a later one's key can only be held by a job someone else
-- enqueued, and the run is enqueued without the key. Returns how many jobs it enqueued.
-- p_next must lie after now (the driver passes the next due time after the clock reading
-- it computed the runs at); when it does not, nothing happens (NULL): the due time passed
-- since that reading, and the caller reads again. This also stops a caller (the worker
-- role, from a transactional handler) from firing one due time over and over by moving
-- next_run_at on by a millisecond at a time (it cannot stop one that waits in between:
-- the engine cannot check a cron expression in SQL).
-- lock_timeout: the only lock a fire waits for is a unique key held by another
-- transaction's uncommitted job (any producer can enqueue with the key of a future run).
-- Waiting for it held this schedule's row lock (pause, resume and remove waited behind it)
-- and the scheduler, which fires one schedule after another, for every schedule. A fire
-- that waits longer fails (55P03) and is rolled back whole: next_run_at still names the
-- due time, which is fired at a later look, once, as if this one had not happened.
CREATE OR REPLACE FUNCTION schedule_fire(p_name text, p_from timestamptz, p_runs timestamptz[], p_next timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
SET lock_timeout = '250ms'
AS $$
DECLARE
  v_now   timestamptz := engine_now();
  v_s     schedules;
  v_jobs  jsonb;
  v_last  bigint;
  v_n     integer;
  v_held  integer[];
  v_more  integer;
  v_more_last bigint;
  v_fired timestamptz;
BEGIN
  IF p_next <= v_now THEN
    RETURN NULL;
  END IF;
  SELECT * INTO v_s FROM schedules
  WHERE name = p_name AND next_run_at = p_from AND NOT paused
  FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  v_fired := coalesce(v_s.last_run_at, '-infinity');
  IF coalesce(cardinality(p_runs), 0) > greatest(v_s.backfill, 1)
     OR EXISTS (SELECT 1 FROM unnest(p_runs) r WHERE r IS NULL OR r < p_from OR r > v_now)
     OR p_next <= p_from OR p_next >= _limit_max_date() THEN
    PERFORM _bad_input(format('schedule_fire(%s): runs must lie between next_run_at and now, at most %s of them, '
                              'and the next run after next_run_at', left(p_name, 200), greatest(v_s.backfill, 1)));
  END IF;
  SELECT jsonb_agg(v_s.job || jsonb_build_object('key', _schedule_key(v_s.name, r), 'run_at', r) ORDER BY r)
  INTO v_jobs FROM (SELECT DISTINCT r FROM unnest(p_runs) r) d;
  v_n := 0;
  IF v_jobs IS NOT NULL THEN
    -- A key held by an unfinished job is a job of this schedule only for a due time it may
    -- have fired before (at most last_run_at: next_run_at went back, after the clock did).
    -- Past that the holder is someone else's: any producer may enqueue with any key, and
    -- every future key is known, so a forged job would take the run away (and be named the
    -- schedule's last job). Such a run (v_held) is enqueued all the same, without the key.
    SELECT count(*) FILTER (WHERE b.created),
           array_agg(b.ord ORDER BY b.ord)
             FILTER (WHERE NOT b.created AND (v_jobs -> b.ord ->> 'run_at')::timestamptz > v_fired),
           max(b.job_id) FILTER (WHERE b.created OR (v_jobs -> b.ord ->> 'run_at')::timestamptz <= v_fired)
    INTO v_n, v_held, v_last
    FROM _job_enqueue_batch(v_jobs, 0) b;
    IF v_held IS NOT NULL THEN
      SELECT count(*), max(b.job_id) INTO v_more, v_more_last
      FROM _job_enqueue_batch((SELECT jsonb_agg((v_jobs -> o) - 'key' ORDER BY o) FROM unnest(v_held) o), 0) b;
      v_n := v_n + v_more;
      v_last := greatest(v_last, v_more_last);
    END IF;
  END IF;
  UPDATE schedules SET next_run_at = p_next, updated_at = v_now,
                       last_run_at = coalesce((SELECT max(r) FROM unnest(p_runs) r), last_run_at),
                       last_job_id = coalesce(v_last, last_job_id)
  WHERE name = p_name;
  RETURN v_n;
END;
$$;
COMMENT ON FUNCTION schedule_fire(text, timestamptz, timestamptz[], timestamptz) IS
  'Enqueues a schedule''s due runs and advances next_run_at (to after now) in one transaction, once per due time (SKIP LOCKED).';

-- schedule_next_due_in_ms: milliseconds until the next active schedule is due (<= 0: due
-- now; NULL: none), on the engine's clock, so a scheduler sleeps exactly until then.
-- p_skip: names the scheduler leaves alone for now (their last fire failed; it retries
-- them after a pause of its own), so that they do not keep it awake.
CREATE OR REPLACE FUNCTION schedule_next_due_in_ms(p_skip text[] DEFAULT NULL) RETURNS double precision
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
  SELECT extract(epoch FROM min(s.next_run_at) - engine_now()) * 1000
  FROM schedules s
  WHERE NOT s.paused AND s.next_run_at IS NOT NULL AND s.name <> ALL (coalesce(p_skip, '{}'));
$$;
COMMENT ON FUNCTION schedule_next_due_in_ms(text[]) IS
  'Milliseconds until the next active schedule not in p_skip is due (NULL: none), engine clock.';

-- schedule_overview: one row per schedule: its cron and zone, the job it enqueues (queue,
-- step names), paused, next and last run, and the last job enqueued with its status.
CREATE OR REPLACE VIEW schedule_overview AS
SELECT s.name,
       s.cron,
       s.tz,
       -- The literal is DEFAULT_QUEUE (src/defaults.ts; test/schedules.test.ts checks they
       -- agree): calling _default_queue() here would need EXECUTE for every reader.
       coalesce(s.job ->> 'queue', 'default')                                     AS queue,
       ARRAY(SELECT e ->> 'name' FROM jsonb_array_elements(s.job -> 'steps') e)   AS step_names,
       s.backfill,
       s.paused,
       s.next_run_at,
       s.last_run_at,
       s.last_job_id,
       j.status                                                                   AS last_job_status,
       s.job,
       s.created_at,
       s.updated_at
FROM schedules s
LEFT JOIN jobs j ON j.id = s.last_job_id;
COMMENT ON VIEW schedule_overview IS
  'One row per recurring schedule: cron, time zone, queue, steps, paused, next and last run, last job and its status.';
