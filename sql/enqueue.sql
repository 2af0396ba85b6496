-- job_enqueue_batch(p_jobs): inserts every job of p_jobs with all its steps in one
-- statement, in the caller's transaction, so the jobs exist exactly when it commits.
-- Returns one row per input job; `ord` is its 0-based position in p_jobs (rows are not
-- in input order).
-- Each element: {"steps":[{"name","args","max_attempts","backoff_base_ms","backoff_max_ms",
-- "transactional","compensate":{"name","args"}}], "queue","priority","run_at","delay_ms",
-- "key","on_duplicate":"return"|"error","deadline","timeout_ms"}.
-- Dedupe: a key held by an unfinished job returns that job's id (created = false; with
-- on_duplicate = 'error' also duplicate_refused = true); race-free because the unique partial index makes a concurrent inserter
-- of the same key wait for the first transaction's outcome.
-- Wakes workers with one NOTIFY per queue (PostgreSQL folds repeats per transaction).
CREATE OR REPLACE FUNCTION job_enqueue_batch(p_jobs jsonb, p_depth integer DEFAULT 0)
RETURNS TABLE (ord integer, job_id bigint, created boolean, duplicate_refused boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
  v_now  timestamptz := engine_now();
  v_seq  regclass := pg_get_serial_sequence('jobs', 'id')::regclass;
  v_bad      record;
  v_id       bigint;
  v_ords     integer[];
  v_ids      bigint[];
  v_dup_ords integer[];
  v_dup_jobs jsonb[];
  v_job      jsonb;
  v_i        integer;
BEGIN
  IF jsonb_typeof(p_jobs) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'stepping: p_jobs must be a JSON array of jobs' USING ERRCODE = 'SP001';
  END IF;
  IF p_depth > 5 THEN
    RAISE EXCEPTION 'stepping: could not settle duplicate keys after % tries', p_depth USING ERRCODE = 'SP002';
  END IF;

  -- Validate the jobs before writing anything, and name the first problem. Step names
  -- (present, 1-200 characters) are enforced by NOT NULL and the step_name_length CHECK of
  -- the steps table: a second pass over every step's JSON cost ~20% of a bulk enqueue.
  SELECT e.o - 1 AS job_ord, problem INTO v_bad
  FROM jsonb_array_elements(p_jobs) WITH ORDINALITY e(j, o),
  LATERAL (SELECT CASE
      WHEN jsonb_typeof(e.j) <> 'object' THEN 'is not an object'
      WHEN jsonb_typeof(e.j -> 'steps') IS DISTINCT FROM 'array' OR jsonb_array_length(e.j -> 'steps') = 0
        THEN 'has no steps'
      WHEN e.j ? 'on_duplicate' AND e.j ->> 'on_duplicate' NOT IN ('return', 'error')
        THEN 'has on_duplicate other than return or error'
    END AS problem) p
  WHERE problem IS NOT NULL
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'stepping: job % %', v_bad.job_ord, v_bad.problem USING ERRCODE = 'SP001';
  END IF;

  -- One statement inserts jobs and steps; ids are drawn up front so steps can refer to
  -- them and results map back to input order. Created rows are returned set-based; only
  -- the (rare) duplicates of a held key are looked at one by one below.
  WITH input AS MATERIALIZED (
    SELECT (e.o - 1)::integer AS ord, e.j, nextval(v_seq) AS id,
           coalesce(e.j ->> 'queue', 'default') AS queue
    FROM jsonb_array_elements(p_jobs) WITH ORDINALITY e(j, o)
  ), ins AS (
    INSERT INTO jobs (id, queue, priority, key, step_count, step_name, available_at, deadline,
                      created_at, updated_at)
    SELECT i.id, i.queue, coalesce((i.j ->> 'priority')::integer, 0), i.j ->> 'key',
           jsonb_array_length(i.j -> 'steps'), i.j -> 'steps' -> 0 ->> 'name',
           coalesce((i.j ->> 'run_at')::timestamptz,
                    v_now + coalesce((i.j ->> 'delay_ms')::bigint, 0) * interval '1 millisecond'),
           coalesce((i.j ->> 'deadline')::timestamptz,
                    v_now + (i.j ->> 'timeout_ms')::bigint * interval '1 millisecond'),
           v_now, v_now
    FROM input i
    ON CONFLICT (key) WHERE key IS NOT NULL AND status IN ('pending', 'running') DO NOTHING
    RETURNING id
  ), steps_ins AS (
    INSERT INTO steps (job_id, idx, name, args, max_attempts, backoff_base_ms, backoff_max_ms,
                       compensate_name, compensate_args)
    SELECT i.id, (s.o - 1)::integer, s.st ->> 'name', coalesce(s.st -> 'args', 'null'::jsonb),
           (s.st ->> 'max_attempts')::integer,
           (s.st ->> 'backoff_base_ms')::integer,
           (s.st ->> 'backoff_max_ms')::integer,
           s.st -> 'compensate' ->> 'name', s.st -> 'compensate' -> 'args'
    FROM input i
    JOIN ins ON ins.id = i.id
    CROSS JOIN LATERAL jsonb_array_elements(i.j -> 'steps') WITH ORDINALITY s(st, o)
  )
  SELECT array_agg(i.ord) FILTER (WHERE ins.id IS NOT NULL),
         array_agg(i.id) FILTER (WHERE ins.id IS NOT NULL),
         array_agg(i.ord ORDER BY i.ord) FILTER (WHERE ins.id IS NULL),
         array_agg(i.j ORDER BY i.ord) FILTER (WHERE ins.id IS NULL)
  INTO v_ords, v_ids, v_dup_ords, v_dup_jobs
  FROM input i LEFT JOIN ins ON ins.id = i.id;

  RETURN QUERY SELECT c.ord, c.id, true, false FROM unnest(v_ords, v_ids) AS c(ord, id);

  -- Keys held by an unfinished job (perhaps one inserted earlier in this batch).
  -- on_duplicate = 'error' is reported as a row, not raised, so a client can refuse
  -- the duplicate without aborting the caller's transaction (job_enqueue raises).
  FOR v_i IN 1 .. coalesce(cardinality(v_dup_ords), 0) LOOP
    v_job := v_dup_jobs[v_i];
    SELECT id INTO v_id FROM jobs WHERE key = v_job ->> 'key' AND status IN ('pending', 'running');
    IF FOUND THEN
      ord := v_dup_ords[v_i]; job_id := v_id; created := false;
      duplicate_refused := (v_job ->> 'on_duplicate' = 'error');
      RETURN NEXT;
    ELSE
      -- That job finished between our insert and this look-up: its key is free again.
      SELECT b.job_id, b.created, b.duplicate_refused INTO v_id, created, duplicate_refused
      FROM job_enqueue_batch(jsonb_build_array(v_job), p_depth + 1) b;
      ord := v_dup_ords[v_i]; job_id := v_id;
      RETURN NEXT;
    END IF;
  END LOOP;

  IF p_depth = 0 THEN
    PERFORM _notify_ready(q) FROM (SELECT DISTINCT coalesce(e ->> 'queue', 'default') AS q
                                   FROM jsonb_array_elements(p_jobs) e) qs;
  END IF;
END;
$$;
COMMENT ON FUNCTION job_enqueue_batch(jsonb, integer) IS
  'Atomically inserts jobs with their steps in the caller''s transaction; dedupes on key race-free; one NOTIFY per queue.';

CREATE OR REPLACE FUNCTION _raise_duplicate(p_key text) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  RAISE EXCEPTION 'stepping: an unfinished job already has key %', p_key USING ERRCODE = 'SP002';
END;
$$;
COMMENT ON FUNCTION _raise_duplicate(text) IS 'Raises SP002 for a refused duplicate key (used by job_enqueue).';

-- job_enqueue: the one-job form for psql, triggers and other languages.
CREATE OR REPLACE FUNCTION job_enqueue(
  p_steps        jsonb,
  p_queue        text        DEFAULT 'default',
  p_priority     integer     DEFAULT 0,
  p_run_at       timestamptz DEFAULT NULL,
  p_key          text        DEFAULT NULL,
  p_on_duplicate text        DEFAULT 'return',
  p_deadline     timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
  -- JSON nulls read as absent in job_enqueue_batch, so NULL arguments take the defaults.
  SELECT CASE WHEN b.duplicate_refused
              THEN _raise_duplicate(p_key)
              ELSE b.job_id END
  FROM job_enqueue_batch(jsonb_build_array(jsonb_build_object(
    'steps', p_steps, 'queue', p_queue, 'priority', p_priority, 'run_at', p_run_at, 'key', p_key,
    'on_duplicate', p_on_duplicate, 'deadline', p_deadline))) b;
$$;
COMMENT ON FUNCTION job_enqueue(jsonb, text, integer, timestamptz, text, text, timestamptz) IS
  'Enqueues one job (steps as a JSON array of {name, args}) in the caller''s transaction; returns its id.';
