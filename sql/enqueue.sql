-- Enqueue: job_enqueue_batch (the driver's bulk path) and job_enqueue (one job, for psql,
-- triggers and other languages). Every limit of src/limits.ts is enforced here as well as
-- in the driver (the _limit_*() constants are generated from it by migrate): bad input
-- raises SQLSTATE SP001 naming the job (0-based position), the step and the field, never
-- a raw cast or constraint error, and never the offending value (args may hold secrets).

-- _enqueue_reject: raises SP001 for job p_job (and step p_step, when not NULL) about
-- p_field: a field name stands for its rule (so the big enqueue statement carries no
-- message-building expressions); anything else is the problem as written. Returns
-- anyelement so that it can stand in any branch of a CASE; it never returns.
CREATE OR REPLACE FUNCTION _enqueue_reject(p_job integer, p_step integer, p_field text, p_type anyelement)
RETURNS anyelement
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_problem text := CASE p_field
    WHEN 'object' THEN 'is not an object'
    WHEN 'steps' THEN format('steps must be an array of 1 to %s steps', _limit_max_steps())
    WHEN 'name' THEN format('name must be a string of 1 to %s characters', _limit_max_name_length())
    WHEN 'compensate' THEN 'compensate must be an object {name, args}'
    WHEN 'compensate.name'
      THEN format('compensate.name must be a string of 1 to %s characters', _limit_max_name_length())
    WHEN 'queue' THEN format('queue must be a string of 1 to %s characters', _limit_max_queue_length())
    WHEN 'key' THEN format('key must be a string of 1 to %s characters', _limit_max_key_length())
    WHEN 'rate_key' THEN format('rate_key must be a string of 1 to %s characters', _limit_max_key_length())
    WHEN 'priority'
      THEN format('priority must be an integer from %s to %s', _limit_min_priority(), _limit_max_priority())
    WHEN 'on_duplicate' THEN 'on_duplicate must be "return" or "error"'
    WHEN 'run_at' THEN 'give run_at or delay_ms, not both'
    WHEN 'deadline' THEN 'give deadline or timeout_ms, not both'
    WHEN 'delay_ms' THEN format('delay_ms must be a number from 0 to %s', _limit_max_delay_ms())
    WHEN 'timeout_ms' THEN format('timeout_ms must be a number from 0 to %s', _limit_max_delay_ms())
    WHEN 'deadline_first' THEN 'deadline (deadline or timeout_ms) must be later than the job''s first run '
                               '(run_at or delay_ms, else now): it would fail before it could run'
    WHEN 'max_attempts' THEN format('max_attempts must be an integer from 1 to %s', _limit_max_int())
    WHEN 'backoff_base_ms' THEN format('backoff_base_ms must be an integer from 1 to %s', _limit_max_int())
    WHEN 'backoff_max_ms' THEN format('backoff_max_ms must be an integer from 1 to %s', _limit_max_int())
    WHEN 'trace_parent' THEN 'trace_parent must be a W3C traceparent: lowercase hex version (not ff), trace id '
                             '(32, not all zero), parent id (16, not all zero) and flags (2), joined by "-"'
    WHEN 'trace_state' THEN format('trace_state must be a string of 1 to %s printable ASCII characters, '
                                   'given with a trace_parent', _limit_max_trace_state_length())
    ELSE p_field END;
BEGIN
  IF p_step IS NULL THEN
    RAISE EXCEPTION 'stepping: job %: %', p_job, v_problem USING ERRCODE = 'SP001';
  END IF;
  RAISE EXCEPTION 'stepping: job % step %: %', p_job, p_step, v_problem USING ERRCODE = 'SP001';
END;
$$;
COMMENT ON FUNCTION _enqueue_reject(integer, integer, text, anyelement) IS
  'Raises SP001 for enqueue input naming the job, the step and the rule broken (used in CASE branches by job_enqueue_batch).';

-- _enqueue_timestamptz: p_value (a JSON string) as a finite timestamptz in
-- [_limit_min_date(), _limit_max_date()), or SP001. The cast is guarded by an exception
-- block because PostgreSQL 15 has no error-free input check (pg_input_is_valid is 16+);
-- it runs only for jobs that carry a run_at or deadline.
CREATE OR REPLACE FUNCTION _enqueue_timestamptz(p_job integer, p_field text, p_value jsonb)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_at timestamptz;
BEGIN
  IF jsonb_typeof(p_value) = 'string' THEN
    BEGIN
      v_at := (p_value #>> '{}')::timestamptz;
    EXCEPTION WHEN data_exception OR feature_not_supported THEN
      v_at := NULL;
    END;
  END IF;
  IF v_at IS NULL OR NOT isfinite(v_at) OR v_at < _limit_min_date() OR v_at >= _limit_max_date() THEN
    RETURN _enqueue_reject(p_job, NULL,
      format('%s must be a timestamp (a string) from %s to before %s', p_field,
             to_json(_limit_min_date()) #>> '{}', to_json(_limit_max_date()) #>> '{}'),
      NULL::timestamptz);
  END IF;
  RETURN v_at;
END;
$$;
COMMENT ON FUNCTION _enqueue_timestamptz(integer, text, jsonb) IS
  'A run_at/deadline of enqueue input as a timestamptz within the limits, or SP001.';

-- _enqueue_time: a job's time (when it may run, its deadline) given either as a timestamp
-- (p_at, input field p_at_field: see _enqueue_timestamptz) or as milliseconds from p_now
-- (p_ms, field p_ms_field: a number from 0 to MAX_DELAY_MS, rounded), never both; p_absent
-- when neither is given; SP001 through _enqueue_reject otherwise. An SQL function declared
-- VOLATILE, as _enqueue_reject is, so that the planner inlines it into job_enqueue_batch's
-- statement: it costs nothing there.
CREATE OR REPLACE FUNCTION _enqueue_time(p_job integer, p_at_field text, p_at jsonb, p_ms_field text, p_ms jsonb,
                                         p_now timestamptz, p_absent timestamptz)
RETURNS timestamptz
LANGUAGE sql VOLATILE
AS $$
  SELECT CASE WHEN p_at IS NOT NULL
                THEN CASE WHEN p_ms IS NOT NULL
                            THEN _enqueue_reject(p_job, NULL, p_at_field, NULL::timestamptz)
                          ELSE _enqueue_timestamptz(p_job, p_at_field, p_at) END
              WHEN p_ms IS NULL THEN p_absent
              WHEN CASE WHEN jsonb_typeof(p_ms) = 'number' THEN p_ms::numeric END
                   BETWEEN 0 AND _limit_max_delay_ms()
                THEN p_now + round(p_ms::numeric)::bigint * interval '1 millisecond'
              ELSE _enqueue_reject(p_job, NULL, p_ms_field, NULL::timestamptz)
         END
$$;
COMMENT ON FUNCTION _enqueue_time(integer, text, jsonb, text, jsonb, timestamptz, timestamptz) IS
  'A job''s time from enqueue input: a timestamp or milliseconds from now, not both; a default when absent; SP001 otherwise.';

-- _enqueue_json: p_value (a step's args or a compensation's args) when it is within
-- _limit_max_json_bytes() as PostgreSQL prints it (octet_length(p_value::text), the measure
-- the driver computes exactly) and within _limit_max_json_depth() levels of nesting; SP001
-- otherwise. job_enqueue_batch calls it only for values too big to fit provably (below).
CREATE OR REPLACE FUNCTION _enqueue_json(p_job integer, p_step integer, p_field text, p_value jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_bytes bigint := octet_length(p_value::text);
BEGIN
  IF v_bytes > _limit_max_json_bytes() THEN
    RETURN _enqueue_reject(p_job, p_step,
      format('%s are %s bytes as PostgreSQL prints them, over the limit of %s', p_field, v_bytes,
             _limit_max_json_bytes()), NULL::jsonb);
  END IF;
  -- Depth d means containers nested d deep; the outermost is at jsonpath level 0, so a
  -- container at level max_json_depth exists exactly when the depth is over the limit.
  -- A depth over D needs more than 8·D bytes of jsonb (a 4-byte header per container and
  -- a 4-byte entry in its parent), so smaller values skip the walk.
  IF pg_column_size(p_value) > 8 * _limit_max_json_depth()
     AND jsonb_path_exists(p_value,
           format('strict $.**{%s} ? (@.type() == "array" || @.type() == "object")',
                  _limit_max_json_depth())::jsonpath) THEN
    RETURN _enqueue_reject(p_job, p_step,
      format('%s are nested more than %s levels deep', p_field, _limit_max_json_depth()), NULL::jsonb);
  END IF;
  RETURN p_value;
END;
$$;
COMMENT ON FUNCTION _enqueue_json(integer, integer, text, jsonb) IS
  'Args of enqueue input when within the size and depth limits, or SP001.';

-- _trace_parent_ok: true when p_value is a W3C traceparent as OpenTelemetry writes it
-- (version 00 and later versions of the same shape; version ff and all-zero ids are
-- invalid). The jobs table's CHECK jobs_trace_parent_w3c uses the same expression.
CREATE OR REPLACE FUNCTION _trace_parent_ok(p_value text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT p_value ~ '^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$'
$$;
COMMENT ON FUNCTION _trace_parent_ok(text) IS 'True when the text is a valid W3C traceparent (lowercase hex).';

-- _enqueue_int: a step's optional whole-number field (max_attempts, backoff_base_ms,
-- backoff_max_ms) from JSON: NULL when absent, the integer when it is a whole number from 1
-- to _limit_max_int(), else SP001 through _enqueue_reject. An SQL function declared
-- VOLATILE, as _enqueue_reject is, so that the planner inlines it into _enqueue_steps (a
-- STABLE one calling a volatile function is never inlined): it costs nothing there.
CREATE OR REPLACE FUNCTION _enqueue_int(p_job integer, p_step integer, p_field text, p_value jsonb)
RETURNS integer
LANGUAGE sql VOLATILE
AS $$
  SELECT CASE WHEN p_value IS NULL THEN NULL
              WHEN CASE WHEN jsonb_typeof(p_value) = 'number'
                        THEN p_value::numeric BETWEEN 1 AND _limit_max_int()
                             AND p_value::numeric = trunc(p_value::numeric) END
                THEN p_value::numeric::integer
              ELSE _enqueue_reject(p_job, p_step, p_field, NULL::integer)
         END
$$;
COMMENT ON FUNCTION _enqueue_int(integer, integer, text, jsonb) IS
  'A step''s optional whole-number field from JSON (1 to MAX_INT), NULL when absent; SP001 otherwise.';

-- _enqueue_steps(p_job, p_steps): the steps of job p_job (a JSON array of step objects) as
-- rows for the steps table, each field checked (type, range, the limits) so that no cast
-- or constraint ever sees a bad value: the last branch of each CASE raises SP001 through
-- _enqueue_reject. A JSON null reads as absent. Args prove to fit without being printed
-- when their jsonb is at most _limit_max_json_bytes() / 10534 bytes: the element with the
-- most text per byte of jsonb is a number of the widest numeric (131,072 digits, a point
-- and 16,383 decimals, a sign: 147,457 characters, plus ", ") stored in 14 bytes (a
-- 4-byte entry, 10 bytes of numeric); strings print at most 6 characters per byte
-- (\u00XX), containers less. So a value prints at most 10,534 bytes per byte of jsonb.
-- pg_column_size measures values taken out of p_steps, which are never compressed. Below
-- 8 * _limit_max_json_depth() bytes only the size needs checking (see _enqueue_json).
-- An SQL function so that the planner inlines it into job_enqueue_batch's statement (it
-- costs nothing there), and job_enqueue_batch can check the steps of a job it does not
-- insert (a duplicate key) with the same code. STABLE, though _enqueue_reject raises:
-- a VOLATILE set-returning function is never inlined.
CREATE OR REPLACE FUNCTION _enqueue_steps(p_job integer, p_steps jsonb)
RETURNS TABLE (idx integer, name text, args jsonb, max_attempts integer, backoff_base_ms integer,
               backoff_max_ms integer, compensate_name text, compensate_args jsonb)
LANGUAGE sql STABLE
AS $$
  SELECT (g.o - 1)::integer AS idx,
    CASE WHEN jsonb_typeof(g.name) = 'string' AND length(g.name #>> '{}') BETWEEN 1 AND _limit_max_name_length()
           THEN g.name #>> '{}'
         ELSE _enqueue_reject(p_job, (g.o - 1)::integer, 'name', NULL::text)
    END AS name,
    CASE WHEN g.args IS NULL THEN 'null'::jsonb
         WHEN pg_column_size(g.args) <= _limit_max_json_bytes() / 10534
              OR (pg_column_size(g.args) <= 8 * _limit_max_json_depth()
                  AND octet_length(g.args::text) <= _limit_max_json_bytes())
           THEN g.args
         ELSE _enqueue_json(p_job, (g.o - 1)::integer, 'args', g.args)
    END AS args,
    _enqueue_int(p_job, (g.o - 1)::integer, 'max_attempts', g.max_attempts) AS max_attempts,
    _enqueue_int(p_job, (g.o - 1)::integer, 'backoff_base_ms', g.backoff_base_ms) AS backoff_base_ms,
    _enqueue_int(p_job, (g.o - 1)::integer, 'backoff_max_ms', g.backoff_max_ms) AS backoff_max_ms,
    CASE WHEN g.compensate IS NULL THEN NULL
         WHEN jsonb_typeof(g.compensate) <> 'object'
           THEN _enqueue_reject(p_job, (g.o - 1)::integer, 'compensate', NULL::text)
         WHEN jsonb_typeof(g.compensate -> 'name') = 'string'
              AND length(g.compensate ->> 'name') BETWEEN 1 AND _limit_max_name_length()
           THEN g.compensate ->> 'name'
         ELSE _enqueue_reject(p_job, (g.o - 1)::integer, 'compensate.name', NULL::text)
    END AS compensate_name,
    CASE WHEN g.compensate -> 'args' IS NULL THEN NULL
         WHEN pg_column_size(g.compensate -> 'args') <= _limit_max_json_bytes() / 10534
              OR (pg_column_size(g.compensate -> 'args') <= 8 * _limit_max_json_depth()
                  AND octet_length((g.compensate -> 'args')::text) <= _limit_max_json_bytes())
           THEN g.compensate -> 'args'
         ELSE _enqueue_json(p_job, (g.o - 1)::integer, 'compensate.args', g.compensate -> 'args')
    END AS compensate_args
  FROM ROWS FROM (jsonb_to_recordset(p_steps)
                    AS (name jsonb, args jsonb, max_attempts jsonb, backoff_base_ms jsonb, backoff_max_ms jsonb,
                        compensate jsonb))
       WITH ORDINALITY AS g(name, args, max_attempts, backoff_base_ms, backoff_max_ms, compensate, o);
$$;
COMMENT ON FUNCTION _enqueue_steps(integer, jsonb) IS
  'The steps of one enqueued job as checked rows (SP001 on bad input); inlined by job_enqueue_batch.';

-- job_enqueue_batch(p_jobs): inserts every job of p_jobs with all its steps in one
-- statement, in the caller's transaction, so the jobs exist exactly when it commits.
-- Returns one row per input job; `ord` is its 0-based position in p_jobs (rows are not
-- in input order).
-- Each element: {"steps":[{"name","args","max_attempts","backoff_base_ms","backoff_max_ms",
-- "compensate":{"name","args"}}], "queue","priority","run_at","delay_ms",
-- "key","on_duplicate":"return"|"error","deadline","timeout_ms","trace_parent","trace_state",
-- "rate_key"} (trace_*: the producer's W3C trace context, see sql/claim.sql; rate_key: what
-- a per-key rate limit of the queue counts the job's starts under, see sql/limits.sql). A JSON null reads as
-- absent. Every field is checked (type, range, the limits; a deadline must be later than
-- the job's first run, on the engine's clock) before its row is written: bad input raises
-- SP001 and, like any error, leaves nothing of the call behind.
-- Dedupe: a key held by an unfinished job returns that job's id (created = false; with
-- on_duplicate = 'error' also duplicate_refused = true); race-free because the unique partial index makes a concurrent inserter
-- of the same key wait for the first transaction's outcome.
-- Wakes workers with one NOTIFY per queue (PostgreSQL folds repeats per transaction).
-- (This is the body, _job_enqueue_batch; p_depth counts its rare retries for a key freed
-- meanwhile. job_enqueue_batch(p_jobs), below, is the public entry point.)
CREATE OR REPLACE FUNCTION _job_enqueue_batch(p_jobs jsonb, p_depth integer)
RETURNS TABLE (ord integer, job_id bigint, created boolean, duplicate_refused boolean)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
  v_now  timestamptz := engine_now();
  v_seq  regclass := pg_get_serial_sequence('jobs', 'id')::regclass;
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
    -- Keys kept being taken and freed by concurrent transactions: like any serialization
    -- failure, the caller's transaction should be retried.
    RAISE EXCEPTION 'stepping: could not settle duplicate keys after % tries', p_depth USING ERRCODE = '40001';
  END IF;

  -- jsonb_to_recordset (below) needs every job and every step to be an object. Two
  -- jsonpath walks check that (simple paths: a filter with exists() per job cost 40% more);
  -- the second errs, and so answers NULL, when a job has no steps: the slow query below
  -- then finds nothing and the statement reports the missing steps.
  IF jsonb_path_exists(p_jobs, 'strict $[*] ? (@.type() != "object")')
     OR coalesce(jsonb_path_exists(p_jobs, 'strict $[*].steps ? (@.type() == "array")[*] ? (@.type() != "object")',
                                   '{}', true), true) THEN
    -- Name the first job or step that is not an object.
    PERFORM _enqueue_reject((e.o - 1)::integer,
                            (SELECT (s.o - 1)::integer
                             FROM jsonb_array_elements(e.j -> 'steps') WITH ORDINALITY s(st, o)
                             WHERE jsonb_typeof(st) <> 'object' ORDER BY s.o LIMIT 1),
                            'object', NULL::integer)
    FROM jsonb_array_elements(p_jobs) WITH ORDINALITY e(j, o)
    WHERE jsonb_typeof(e.j) <> 'object'
       OR (jsonb_typeof(e.j -> 'steps') = 'array'
           AND jsonb_path_exists(e.j -> 'steps', 'strict $[*] ? (@.type() != "object")'))
    ORDER BY e.o LIMIT 1;
  END IF;

  -- One statement checks and inserts jobs and steps. Each column is a CASE whose last
  -- branch raises (_enqueue_reject), so no cast or constraint ever sees a bad value, and a
  -- bad value anywhere fails the whole statement; checking while reading costs no second
  -- pass over the JSON, and jsonb_to_recordset takes every field out in one call per job
  -- (and one per job's steps) rather than one -> per field. A JSON null reads as SQL NULL:
  -- absent.
  -- Ids are drawn up front so steps can refer to them and results map back to input
  -- order. Created rows are returned set-based; only the (rare) duplicates of a held key
  -- are looked at one by one below.
  WITH input AS MATERIALIZED (
    SELECT (f.o - 1)::integer AS ord, nextval(v_seq) AS id,
      CASE WHEN CASE WHEN jsonb_typeof(f.steps) = 'array' THEN jsonb_array_length(f.steps) END
                BETWEEN 1 AND _limit_max_steps()
             THEN f.steps
           ELSE _enqueue_reject((f.o - 1)::integer, NULL, 'steps', NULL::jsonb)
      END AS steps,
      -- The job row names its first step. Not checked here: the steps are checked as
      -- they are inserted below, in the same statement, so a bad name never outlives it;
      -- coalesce and left() only keep it clear of the column's NOT NULL and any index.
      left(coalesce(f.steps #>> '{0,name}', ''), _limit_max_name_length()) AS step_name,
      CASE WHEN f.queue IS NULL THEN 'default'
           WHEN jsonb_typeof(f.queue) = 'string' AND length(f.queue #>> '{}') BETWEEN 1 AND _limit_max_queue_length()
             THEN f.queue #>> '{}'
           ELSE _enqueue_reject((f.o - 1)::integer, NULL, 'queue', NULL::text)
      END AS queue,
      CASE WHEN f.priority IS NULL THEN 0
           WHEN CASE WHEN jsonb_typeof(f.priority) = 'number'
                     THEN f.priority::numeric BETWEEN _limit_min_priority() AND _limit_max_priority()
                          AND f.priority::numeric = trunc(f.priority::numeric) END
             THEN f.priority::numeric::integer
           ELSE _enqueue_reject((f.o - 1)::integer, NULL, 'priority', NULL::integer)
      END AS priority,
      CASE WHEN f.key IS NULL THEN NULL
           WHEN jsonb_typeof(f.key) = 'string' AND length(f.key #>> '{}') BETWEEN 1 AND _limit_max_key_length()
             THEN f.key #>> '{}'
           ELSE _enqueue_reject((f.o - 1)::integer, NULL, 'key', NULL::text)
      END AS key,
      CASE WHEN f.rate_key IS NULL THEN NULL
           WHEN jsonb_typeof(f.rate_key) = 'string' AND length(f.rate_key #>> '{}') BETWEEN 1 AND _limit_max_key_length()
             THEN f.rate_key #>> '{}'
           ELSE _enqueue_reject((f.o - 1)::integer, NULL, 'rate_key', NULL::text)
      END AS rate_key,
      CASE WHEN f.on_duplicate IS NULL OR f.on_duplicate IN ('"return"', '"error"') THEN f.on_duplicate #>> '{}'
           ELSE _enqueue_reject((f.o - 1)::integer, NULL, 'on_duplicate', NULL::text)
      END AS on_duplicate,
      _enqueue_time((f.o - 1)::integer, 'run_at', f.run_at, 'delay_ms', f.delay_ms, v_now, v_now) AS available_at,
      _enqueue_time((f.o - 1)::integer, 'deadline', f.deadline, 'timeout_ms', f.timeout_ms, v_now, NULL) AS deadline,
      -- The producer's trace context (OpenTelemetry); absent for most jobs, so one test each.
      CASE WHEN f.trace_parent IS NULL THEN NULL
           WHEN jsonb_typeof(f.trace_parent) = 'string' AND _trace_parent_ok(f.trace_parent #>> '{}')
             THEN f.trace_parent #>> '{}'
           ELSE _enqueue_reject((f.o - 1)::integer, NULL, 'trace_parent', NULL::text)
      END AS trace_parent,
      CASE WHEN f.trace_state IS NULL THEN NULL
           WHEN f.trace_parent IS NOT NULL AND jsonb_typeof(f.trace_state) = 'string'
                AND length(f.trace_state #>> '{}') BETWEEN 1 AND _limit_max_trace_state_length()
                AND (f.trace_state #>> '{}') ~ '^[ -~]*$'
             THEN f.trace_state #>> '{}'
           ELSE _enqueue_reject((f.o - 1)::integer, NULL, 'trace_state', NULL::text)
      END AS trace_state
    FROM ROWS FROM (jsonb_to_recordset(p_jobs)
                      AS (steps jsonb, queue jsonb, priority jsonb, key jsonb, on_duplicate jsonb, run_at jsonb,
                          delay_ms jsonb, deadline jsonb, timeout_ms jsonb, trace_parent jsonb, trace_state jsonb,
                          rate_key jsonb))
         WITH ORDINALITY AS f(steps, queue, priority, key, on_duplicate, run_at, delay_ms, deadline, timeout_ms,
                              trace_parent, trace_state, rate_key, o)
  ), step_input AS (
    -- Inlined (see _enqueue_steps). Every row the insert below reads has passed its checks;
    -- the steps of a job whose key is held are checked in the loop further down.
    SELECT i.id, s.*
    FROM input i
    CROSS JOIN LATERAL _enqueue_steps(i.ord, i.steps) s
  ), ins AS (
    INSERT INTO jobs (id, queue, priority, key, step_count, step_name, available_at, deadline,
                      created_at, updated_at, trace_parent, trace_state, rate_key)
    SELECT i.id, i.queue, i.priority, i.key, jsonb_array_length(i.steps), i.step_name, i.available_at,
           -- A deadline not after the first run (a run_at in the past runs now) would fail the
           -- job at its first claim.
           CASE WHEN i.deadline IS NULL OR i.deadline > greatest(i.available_at, v_now) THEN i.deadline
                ELSE _enqueue_reject(i.ord, NULL, 'deadline_first', NULL::timestamptz) END,
           v_now, v_now, i.trace_parent, i.trace_state, i.rate_key
    FROM input i
    -- Keys are taken in key order (then input order: the first of a batch's duplicates
    -- wins), the same in every batch, so two batches holding keys in common in opposite
    -- orders wait for each other instead of deadlocking.
    ORDER BY i.key, i.ord
    ON CONFLICT (key) WHERE key IS NOT NULL AND status IN ('pending', 'running') DO NOTHING
    RETURNING id
  ), steps_ins AS (
    INSERT INTO steps (job_id, idx, name, args, max_attempts, backoff_base_ms, backoff_max_ms,
                       compensate_name, compensate_args)
    SELECT s.id, s.idx, s.name, s.args, s.max_attempts, s.backoff_base_ms, s.backoff_max_ms,
           s.compensate_name, s.compensate_args
    FROM step_input s
    JOIN ins ON ins.id = s.id
  )
  SELECT array_agg(i.ord) FILTER (WHERE ins.id IS NOT NULL),
         array_agg(i.id) FILTER (WHERE ins.id IS NOT NULL),
         array_agg(i.ord ORDER BY i.ord) FILTER (WHERE ins.id IS NULL),
         array_agg(p_jobs -> i.ord ORDER BY i.ord) FILTER (WHERE ins.id IS NULL)
  INTO v_ords, v_ids, v_dup_ords, v_dup_jobs
  FROM input i LEFT JOIN ins ON ins.id = i.id;

  RETURN QUERY SELECT c.ord, c.id, true, false FROM unnest(v_ords, v_ids) AS c(ord, id);

  -- Keys held by an unfinished job (perhaps one inserted earlier in this batch).
  -- on_duplicate = 'error' is reported as a row, not raised, so a client can refuse
  -- the duplicate without aborting the caller's transaction (job_enqueue raises).
  FOR v_i IN 1 .. coalesce(cardinality(v_dup_ords), 0) LOOP
    v_job := v_dup_jobs[v_i];
    -- Its steps were not inserted, so not read: check them all the same.
    PERFORM count(*) FROM _enqueue_steps(v_dup_ords[v_i], v_job -> 'steps');
    SELECT id INTO v_id FROM jobs WHERE key = v_job ->> 'key' AND status IN ('pending', 'running');
    IF FOUND THEN
      ord := v_dup_ords[v_i]; job_id := v_id; created := false;
      duplicate_refused := (v_job ->> 'on_duplicate' = 'error');
      RETURN NEXT;
    ELSE
      -- That job finished between our insert and this look-up: its key is free again.
      SELECT b.job_id, b.created, b.duplicate_refused INTO v_id, created, duplicate_refused
      FROM _job_enqueue_batch(jsonb_build_array(v_job), p_depth + 1) b;
      ord := v_dup_ords[v_i]; job_id := v_id;
      RETURN NEXT;
    END IF;
  END LOOP;

  IF p_depth = 0 THEN
    PERFORM _notify_queue(q) FROM (SELECT DISTINCT coalesce(e ->> 'queue', _default_queue()) AS q
                                   FROM jsonb_array_elements(p_jobs) e) qs;
    -- The inserted rows wake the activity watch of many-database workers at commit.
    PERFORM _watch_wake(false);
  END IF;
END;
$$;
COMMENT ON FUNCTION _job_enqueue_batch(jsonb, integer) IS
  'The body of job_enqueue_batch; p_depth counts retries of a key freed meanwhile.';

-- job_enqueue_batch(p_jobs): see _job_enqueue_batch above.
-- job_enqueue_batch: the public entry point of _job_enqueue_batch. A batch of several jobs
-- in which one is refused as a duplicate (on_duplicate 'error') is undone whole, in this
-- one statement (a subtransaction: its inserts and NOTIFYs are rolled back), so a refusal
-- leaves none of the batch behind in the caller's transaction, or committed outside one,
-- and the caller's transaction stays usable. Its rows then say created = false, the
-- refused ones duplicate_refused = true with the id of the job holding the key, the
-- others job_id NULL. Only batches with on_duplicate 'error' pay for the subtransaction.
CREATE OR REPLACE FUNCTION job_enqueue_batch(p_jobs jsonb)
RETURNS TABLE (ord integer, job_id bigint, created boolean, duplicate_refused boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
  v_ord     integer[];
  v_id      bigint[];
  v_created boolean[];
  v_refused boolean[];
BEGIN
  IF jsonb_typeof(p_jobs) IS DISTINCT FROM 'array' OR jsonb_array_length(p_jobs) < 2
     OR NOT jsonb_path_exists(p_jobs, '$[*] ? (@.on_duplicate == "error")') THEN
    RETURN QUERY SELECT * FROM _job_enqueue_batch(p_jobs, 0);
    RETURN;
  END IF;
  BEGIN
    SELECT array_agg(b.ord ORDER BY b.ord), array_agg(b.job_id ORDER BY b.ord),
           array_agg(b.created ORDER BY b.ord), array_agg(coalesce(b.duplicate_refused, false) ORDER BY b.ord)
    INTO v_ord, v_id, v_created, v_refused
    FROM _job_enqueue_batch(p_jobs, 0) b;
    IF true = ANY (v_refused) THEN
      RAISE EXCEPTION 'stepping: a job of the batch was refused as a duplicate: undo the batch' USING ERRCODE = 'SP005';
    END IF;
  EXCEPTION WHEN SQLSTATE 'SP005' THEN
    RETURN QUERY SELECT t.o, CASE WHEN t.r THEN t.i END, false, t.r FROM unnest(v_ord, v_id, v_refused) AS t(o, i, r);
    RETURN;
  END;
  RETURN QUERY SELECT t.o, t.i, t.c, t.r FROM unnest(v_ord, v_id, v_created, v_refused) AS t(o, i, c, r);
END;
$$;
COMMENT ON FUNCTION job_enqueue_batch(jsonb) IS
  'Atomically inserts jobs with their steps in the caller''s transaction; checks every limit (SP001); dedupes on key race-free; a refused duplicate undoes the batch; one NOTIFY per queue.';

CREATE OR REPLACE FUNCTION _raise_duplicate(p_key text) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  RAISE EXCEPTION 'stepping: an unfinished job already has key %', p_key USING ERRCODE = 'SP002';
END;
$$;
COMMENT ON FUNCTION _raise_duplicate(text) IS 'Raises SP002 for a refused duplicate key (used by job_enqueue).';

-- job_enqueue: the one-job form for psql, triggers and other languages. p_trace_parent /
-- p_trace_state: the W3C traceparent/tracestate of the enqueuing code, so the steps' spans
-- link to its trace (SP001 when malformed).
CREATE OR REPLACE FUNCTION job_enqueue(
  p_steps        jsonb,
  p_queue        text        DEFAULT 'default',
  p_priority     integer     DEFAULT 0,
  p_run_at       timestamptz DEFAULT NULL,
  p_key          text        DEFAULT NULL,
  p_on_duplicate text        DEFAULT 'return',
  p_deadline     timestamptz DEFAULT NULL,
  p_trace_parent text        DEFAULT NULL,
  p_trace_state  text        DEFAULT NULL,
  p_rate_key     text        DEFAULT NULL
) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
  -- JSON nulls read as absent in job_enqueue_batch, so NULL arguments take the defaults.
  SELECT CASE WHEN b.duplicate_refused
              THEN _raise_duplicate(p_key)
              ELSE b.job_id END
  FROM _job_enqueue_batch(jsonb_build_array(jsonb_build_object(
    'steps', p_steps, 'queue', p_queue, 'priority', p_priority, 'run_at', p_run_at, 'key', p_key,
    'on_duplicate', p_on_duplicate, 'deadline', p_deadline, 'trace_parent', p_trace_parent,
    'trace_state', p_trace_state, 'rate_key', p_rate_key)), 0) b;
$$;
COMMENT ON FUNCTION job_enqueue(jsonb, text, integer, timestamptz, text, text, timestamptz, text, text, text) IS
  'Enqueues one job (steps as a JSON array of {name, args}) in the caller''s transaction; returns its id.';
