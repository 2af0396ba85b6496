-- Fleet-wide queue limits (table queue_limits): at most max_running units of a queue
-- running at once across every worker of the database, and at most rate_count starts in
-- any rate_period_ms — for the whole queue, or, with rate_per_key, for each rate key of
-- its jobs (jobs.rate_key; jobs without one share one bucket). Enforced where units are leased: step_claim, and the continuation a
-- completion leases (_job_next_unit). A queue without a limit row takes none of these
-- paths. Locks: a limited queue's claim locks that queue's limit row (FOR UPDATE SKIP
-- LOCKED: a claimer never waits for another; it leaves that queue to the one holding the
-- row) and only then its job rows (SKIP LOCKED too), so a claim never waits at all and
-- cannot be part of a deadlock. Running units are counted from queue_running (the units
-- the engine leased in limited queues) joined to jobs, so jobs needs no extra index.

-- _limits_lock_key: the advisory lock that orders queue_limit_set against the leases made
-- without looking at limits. Claims take it shared before they read queue_limits and
-- reports try it shared before they lease continuations (sql/claim.sql, sql/report.sql);
-- queue_limit_set takes it exclusively, so it counts every unit leased by a claim that
-- could not see the new limit, and no such claim starts until the limit is committed.
CREATE OR REPLACE FUNCTION _limits_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT pg_catalog.hashtextextended('stepping.limits:' || _schema_name(), 0) $$;
COMMENT ON FUNCTION _limits_lock_key() IS 'Advisory lock key that orders queue_limit_set against claims and continuations.';

-- _queue_room: how many units of p_limit's queue may start now (0 or more), under the
-- caller's lock on the limit row: max_running minus the units running with a live lease
-- (not p_exclude, the job a continuation is moving on), and rate_count minus the starts
-- in the last rate_period_ms (a per-key rate is counted per key: _queue_key_room).
-- Removes bookkeeping rows that no longer count.
CREATE OR REPLACE FUNCTION _queue_room(p_limit queue_limits, p_now timestamptz, p_exclude bigint)
RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_room integer := _limit_max_claim_batch();
  v_n    integer;
BEGIN
  IF p_limit.max_running IS NOT NULL THEN
    DELETE FROM queue_running r WHERE r.queue = p_limit.queue
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.job_id AND j.status = 'running' AND j.queue = r.queue);
    -- A unit whose lease expired no longer counts: its worker is presumed dead and the
    -- unit is claimable again (and counts again once claimed).
    SELECT count(*) INTO v_n FROM queue_running r JOIN jobs j ON j.id = r.job_id
    WHERE r.queue = p_limit.queue AND j.status = 'running' AND j.available_at > p_now
      AND r.job_id IS DISTINCT FROM p_exclude;
    v_room := least(v_room, p_limit.max_running - v_n);
  END IF;
  IF p_limit.rate_count IS NOT NULL THEN
    DELETE FROM queue_starts s WHERE s.queue = p_limit.queue
      AND s.started_at <= p_now - p_limit.rate_period_ms * interval '1 millisecond';
    IF NOT p_limit.rate_per_key THEN
      SELECT count(*) INTO v_n FROM queue_starts s WHERE s.queue = p_limit.queue;
      v_room := least(v_room, p_limit.rate_count - v_n);
    END IF;
  END IF;
  RETURN greatest(v_room, 0);
END;
$$;
COMMENT ON FUNCTION _queue_room(queue_limits, timestamptz, bigint) IS
  'Units of a limited queue that may start now (caller holds the limit row): running and rate room.';

-- _queue_key_room: how many units of rate key p_key (NULL: the jobs without one) may
-- start now in p_limit's per-key rate-limited queue (caller holds the limit row, and
-- _queue_room has removed the starts older than the window).
CREATE OR REPLACE FUNCTION _queue_key_room(p_limit queue_limits, p_key text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_n integer;
BEGIN
  IF p_key IS NULL THEN
    SELECT count(*) INTO v_n FROM queue_starts s WHERE s.queue = p_limit.queue AND s.rate_key IS NULL;
  ELSE
    SELECT count(*) INTO v_n FROM queue_starts s WHERE s.queue = p_limit.queue AND s.rate_key = p_key;
  END IF;
  RETURN greatest(p_limit.rate_count - v_n, 0);
END;
$$;
COMMENT ON FUNCTION _queue_key_room(queue_limits, text) IS
  'Units of one rate key that may start now in a per-key rate-limited queue (caller holds the limit row).';

-- _queue_started: records units of a limited queue leased at p_now (caller holds the
-- limit row): as running (max_running) and as starts (rate; with their rate keys when the
-- rate is per key).
CREATE OR REPLACE FUNCTION _queue_started(p_limit queue_limits, p_job_ids bigint[], p_now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  IF p_limit.max_running IS NOT NULL THEN
    INSERT INTO queue_running (queue, job_id) SELECT p_limit.queue, i FROM unnest(p_job_ids) i
    ON CONFLICT DO NOTHING;
  END IF;
  IF p_limit.rate_count IS NOT NULL AND NOT p_limit.rate_per_key THEN
    INSERT INTO queue_starts (queue, started_at) SELECT p_limit.queue, p_now FROM unnest(p_job_ids);
  ELSIF p_limit.rate_count IS NOT NULL THEN
    INSERT INTO queue_starts (queue, started_at, rate_key)
    SELECT p_limit.queue, p_now, j.rate_key FROM jobs j WHERE j.id = ANY (p_job_ids);
  END IF;
END;
$$;
COMMENT ON FUNCTION _queue_started(queue_limits, bigint[], timestamptz) IS
  'Records leased units of a limited queue as running and as starts (caller holds the limit row).';

-- _queue_take_one: for a continuation (the next unit of job p_job_id, which is running in
-- p_queue): true when the queue has no limit, or when its limit row is free to lock and
-- has room for one more unit, which is then recorded. False leaves the unit pending for
-- any worker's claim (never waits for the limit row: two completions could otherwise
-- lock two queues' rows in opposite orders).
CREATE OR REPLACE FUNCTION _queue_take_one(p_queue text, p_job_id bigint, p_now timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_limit queue_limits;
BEGIN
  SELECT * INTO v_limit FROM queue_limits WHERE queue = p_queue FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN NOT EXISTS (SELECT 1 FROM queue_limits WHERE queue = p_queue);
  END IF;
  IF _queue_room(v_limit, p_now, p_job_id) < 1
     OR (v_limit.rate_per_key
         AND _queue_key_room(v_limit, (SELECT j.rate_key FROM jobs j WHERE j.id = p_job_id)) < 1) THEN
    RETURN false;
  END IF;
  PERFORM _queue_started(v_limit, ARRAY[p_job_id], p_now);
  RETURN true;
END;
$$;
COMMENT ON FUNCTION _queue_take_one(text, bigint, timestamptz) IS
  'May a continuation of a job lease its next unit in p_queue now (limits allow, recorded)?';

-- _queue_free_at: when a limited queue may have room again (NULL: it has room now), read
-- without locks for idle sleeps (next_due_in_ms): the earliest lease expiry of its running
-- units when max_running is reached (a completion announces itself sooner), the time the
-- oldest start leaves the window when rate_count is reached; the later of the two. A
-- per-key rate never holds the whole queue back (next_due_in_ms looks at each key).
CREATE OR REPLACE FUNCTION _queue_free_at(p_limit queue_limits, p_now timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
  SELECT CASE WHEN run.n >= p_limit.max_running OR (rate.n >= p_limit.rate_count AND NOT p_limit.rate_per_key)
              THEN greatest(CASE WHEN run.n >= p_limit.max_running THEN run.first_free END,
                            CASE WHEN rate.n >= p_limit.rate_count AND NOT p_limit.rate_per_key
                                 THEN rate.oldest + p_limit.rate_period_ms * interval '1 millisecond' END) END
  FROM (SELECT count(*) AS n, min(j.available_at) AS first_free
        FROM queue_running r JOIN jobs j ON j.id = r.job_id
        WHERE r.queue = p_limit.queue AND j.status = 'running' AND j.available_at > p_now) run,
       (SELECT count(*) AS n, min(s.started_at) AS oldest FROM queue_starts s
        WHERE s.queue = p_limit.queue
          AND s.started_at > p_now - p_limit.rate_period_ms * interval '1 millisecond') rate;
$$;
COMMENT ON FUNCTION _queue_free_at(queue_limits, timestamptz) IS
  'When a limited queue may have room again (NULL: room now); read without locks, for idle sleeps.';

-- _notify_limited: after reports, wakes the workers of the limited queues among these
-- jobs: a unit that stopped running freed room that an idle worker may be waiting for.
-- Costs one look at the (usually empty) queue_limits table.
CREATE OR REPLACE FUNCTION _notify_limited(p_job_ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  PERFORM _notify_ready(l.queue) FROM queue_limits l
  WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.id = ANY (p_job_ids) AND j.queue = l.queue);
END;
$$;
COMMENT ON FUNCTION _notify_limited(bigint[]) IS
  'Wakes workers of the limited queues among the given jobs (room may have been freed).';

-- queue_limit_set: sets (or replaces) the fleet-wide limits of p_queue. p_max_running:
-- units running at once; p_rate_count per p_rate_period_ms: starts in any such period,
-- counted for each rate key of the jobs when p_rate_per_key (NULL: false). NULL leaves
-- that limit off; at least one must be given. Units already running in the queue count
-- at once, including those of claims still in flight: it waits for them to commit (the
-- limits lock, _limits_lock_key), and claims wait for it, so call it in a short
-- transaction. Wakes the queue's workers (a raised limit frees room).
CREATE OR REPLACE FUNCTION queue_limit_set(p_queue text, p_max_running integer DEFAULT NULL,
                                           p_rate_count integer DEFAULT NULL, p_rate_period_ms integer DEFAULT NULL,
                                           p_rate_per_key boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_now timestamptz := engine_now();
BEGIN
  IF p_queue IS NULL OR length(p_queue) NOT BETWEEN 1 AND _limit_max_queue_length() THEN
    PERFORM _bad_input(format('a queue name has 1 to %s characters', _limit_max_queue_length()));
  END IF;
  IF p_max_running IS NULL AND p_rate_count IS NULL THEN
    PERFORM _bad_input('queue_limit_set needs p_max_running or p_rate_count (queue_limit_clear removes limits)');
  END IF;
  IF p_max_running < 1 OR p_rate_count < 1 OR p_rate_period_ms < 1
     OR (p_rate_count IS NULL) <> (p_rate_period_ms IS NULL) THEN
    PERFORM _bad_input('queue limits are positive integers, and a rate needs both p_rate_count and p_rate_period_ms');
  END IF;
  IF p_rate_per_key AND p_rate_count IS NULL THEN
    PERFORM _bad_input('per-key needs a rate: give p_rate_count and p_rate_period_ms with p_rate_per_key');
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(_limits_lock_key());
  INSERT INTO queue_limits AS l (queue, max_running, rate_count, rate_period_ms, rate_per_key, updated_at)
  VALUES (p_queue, p_max_running, p_rate_count, p_rate_period_ms, coalesce(p_rate_per_key, false), v_now)
  ON CONFLICT (queue) DO UPDATE SET max_running = excluded.max_running, rate_count = excluded.rate_count,
                                    rate_period_ms = excluded.rate_period_ms, rate_per_key = excluded.rate_per_key,
                                    updated_at = v_now;
  IF p_max_running IS NOT NULL THEN
    -- Units leased before the limit existed count too (one scan of the queue's jobs, here
    -- rather than on any claim path).
    INSERT INTO queue_running (queue, job_id)
    SELECT p_queue, j.id FROM jobs j WHERE j.queue = p_queue AND j.status = 'running'
    ON CONFLICT DO NOTHING;
  END IF;
  PERFORM _notify_ready(p_queue);
END;
$$;
COMMENT ON FUNCTION queue_limit_set(text, integer, integer, integer, boolean) IS
  'Sets the fleet-wide limits of a queue: max_running at once, and/or rate_count starts per rate_period_ms (for the queue, or per rate key).';

-- queue_limit_clear: removes p_queue's limits (true when it had some); wakes its workers.
CREATE OR REPLACE FUNCTION queue_limit_clear(p_queue text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
  DELETE FROM queue_limits WHERE queue = p_queue;
  IF FOUND THEN
    PERFORM _notify_ready(p_queue);
    RETURN true;
  END IF;
  RETURN false;
END;
$$;
COMMENT ON FUNCTION queue_limit_clear(text) IS 'Removes the fleet-wide limits of a queue; true when it had some.';

-- queue_limits_overview: each limited queue, how close it is to its limits now: running
-- (units with a live lease) against max_running, starts in the last rate period against
-- rate_count (with rate_per_key: all keys' starts, and keys_at_limit, how many rate keys
-- used their rate), and ready (units due now and waiting). at_limit: no ready unit may
-- start now (a per-key queue: every key with a ready unit is at its rate).
CREATE OR REPLACE VIEW queue_limits_overview AS
WITH c AS MATERIALIZED (SELECT engine_now() AS now)
SELECT v.queue, v.max_running, v.running, v.rate_count, v.rate_period_ms, v.window_starts, v.ready,
       -- What _queue_free_at decides, from the counts above: a view may call only functions
       -- every reader may execute, and that one is internal.
       coalesce(v.running >= v.max_running, false)
       OR CASE WHEN v.rate_per_key THEN v.ready > 0 AND v.ready_keys_with_room = 0
               ELSE coalesce(v.window_starts >= v.rate_count, false) END AS at_limit,
       v.updated_at, v.rate_per_key, v.keys_at_limit
FROM (
  SELECT l.queue,
         l.max_running,
         (SELECT count(*) FROM queue_running r JOIN jobs j ON j.id = r.job_id
          WHERE r.queue = l.queue AND j.status = 'running' AND j.available_at > c.now)::integer AS running,
         l.rate_count,
         l.rate_period_ms,
         (SELECT count(*) FROM queue_starts s WHERE s.queue = l.queue
            AND s.started_at > c.now - l.rate_period_ms * interval '1 millisecond')::integer  AS window_starts,
         (SELECT count(*) FROM jobs j WHERE j.queue = l.queue AND j.status = 'pending'
            AND j.available_at <= c.now)::integer                                             AS ready,
         l.updated_at,
         l.rate_per_key,
         CASE WHEN l.rate_per_key THEN
           (SELECT count(*) FROM (SELECT 1 FROM queue_starts s WHERE s.queue = l.queue
              AND s.started_at > c.now - l.rate_period_ms * interval '1 millisecond'
              GROUP BY s.rate_key HAVING count(*) >= l.rate_count) k)::integer
         END AS keys_at_limit,
         CASE WHEN l.rate_per_key THEN
           (SELECT count(*) FROM (SELECT DISTINCT j.rate_key FROM jobs j WHERE j.queue = l.queue
              AND j.status = 'pending' AND j.available_at <= c.now) rk
            WHERE (SELECT count(*) FROM queue_starts s WHERE s.queue = l.queue
                     AND s.rate_key IS NOT DISTINCT FROM rk.rate_key
                     AND s.started_at > c.now - l.rate_period_ms * interval '1 millisecond') < l.rate_count)
         END AS ready_keys_with_room
  FROM queue_limits l CROSS JOIN c
) v;
COMMENT ON VIEW queue_limits_overview IS
  'Per limited queue: max_running and running now, rate_count per rate_period_ms (per key or not) and starts in the window, ready units, at_limit.';
