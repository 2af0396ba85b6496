-- Operator functions. Each locks the job row before its steps (the order of every engine
-- function) and validates its arguments (SP001) so no call can do more than it names.

-- _job_lock: the job row, locked FOR UPDATE (the first lock each operator function takes
-- on a job); SP003 when there is no such job.
CREATE OR REPLACE FUNCTION _job_lock(p_job_id bigint) RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_job jobs;
BEGIN
  SELECT * INTO v_job FROM jobs WHERE id = p_job_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stepping: no job %', p_job_id USING ERRCODE = 'SP003';
  END IF;
  RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _job_lock(bigint) IS 'The job row locked FOR UPDATE; SP003 when there is no such job.';

-- job_cancel: stops a job. Pending: ends at once (cancelled, or compensating when
-- p_compensate; its current step is compensated only if it had run). Running: flags the
-- job and hints its worker (NOTIFY <schema>_cancel; the worker confirms through its
-- heartbeat); the running step's report, whatever it is, then ends the job (compensating
-- first when asked; a later cancel without p_compensate does not withdraw that). A
-- compensating job runs its compensations to the end; a finished job cannot be cancelled.
-- Returns the job's status after the call.
CREATE OR REPLACE FUNCTION job_cancel(p_job_id bigint, p_compensate boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_now timestamptz := engine_now();
  v_job jobs;
BEGIN
  -- A finished job stays finished (only job_retry changes that, under the row lock), so it
  -- is refused before any lock is taken: PostgreSQL sends an error before it releases the
  -- aborted transaction's locks, and a caller behind a pooler may already run its next
  -- statement on another connection, where a held row lock would make prune skip the job.
  SELECT * INTO v_job FROM jobs WHERE id = p_job_id;
  IF NOT FOUND OR NOT _is_final(v_job.status) THEN
    v_job := _job_lock(p_job_id);
  END IF;
  IF _is_final(v_job.status) THEN
    RAISE EXCEPTION 'stepping: job % is already %; only unfinished jobs can be cancelled', p_job_id, v_job.status
      USING ERRCODE = 'SP004';
  END IF;
  IF v_job.phase = 'compensate' THEN
    RAISE EXCEPTION 'stepping: job % is compensating; compensations always run to the end', p_job_id
      USING ERRCODE = 'SP004';
  END IF;
  -- A compensation asked for by an earlier cancel stays asked for.
  UPDATE jobs SET cancel_requested = true, cancel_compensate = cancel_compensate OR coalesce(p_compensate, false),
                  updated_at = v_now
  WHERE id = p_job_id RETURNING * INTO v_job;
  IF v_job.status = 'running' THEN
    PERFORM _notify_cancel(p_job_id);
    RETURN 'running';
  END IF;
  v_job := _forward_stop(v_job, v_job.current_step, _step_ran(v_job, 0), v_job.cancel_compensate, 'cancelled',
                         v_now, NULL, NULL, NULL, NULL);
  IF v_job.status = 'cancelled' THEN
    PERFORM _notify_done(ARRAY[v_job.id || ':cancelled']);
  END IF;
  RETURN CASE WHEN v_job.phase = 'compensate' AND NOT _is_final(v_job.status) THEN 'compensating' ELSE v_job.status END;
END;
$$;
COMMENT ON FUNCTION job_cancel(bigint, boolean) IS
  'Cancels an unfinished job: pending at once, running after its current step; optionally compensating.';

-- job_retry: resumes a failed job from the step that failed, with that step's attempts
-- reset; steps after it (skipped when the job failed) are pending again, steps before it
-- are not run again. A deadline that has passed is removed (it would fail the job at
-- once); p_deadline, when given, becomes the job's new deadline (SP001 when it has passed
-- already). Only failed jobs can be retried; SP002 when another unfinished job now holds
-- the job's key.
CREATE OR REPLACE FUNCTION job_retry(p_job_id bigint, p_deadline timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_now  timestamptz := engine_now();
  v_job  jobs;
  v_name text;
BEGIN
  IF p_deadline IS NOT NULL AND NOT (p_deadline >= _limit_min_date() AND p_deadline < _limit_max_date()) THEN
    PERFORM _bad_input(format('job_retry: p_deadline must lie in [%s, %s)', _limit_min_date(), _limit_max_date()));
  END IF;
  IF p_deadline <= v_now THEN
    PERFORM _bad_input('job_retry: p_deadline has passed on the engine''s clock: the job would fail again at once');
  END IF;
  v_job := _job_lock(p_job_id);
  IF v_job.status <> 'failed' THEN
    RAISE EXCEPTION 'stepping: job % is %; only failed jobs can be retried', p_job_id,
      CASE WHEN v_job.phase = 'compensate' AND NOT _is_final(v_job.status) THEN 'compensating' ELSE v_job.status END
      USING ERRCODE = 'SP004';
  END IF;
  UPDATE steps SET status = 'pending', attempts = 0
  WHERE job_id = p_job_id AND idx = v_job.current_step
  RETURNING name INTO v_name;
  UPDATE steps SET status = 'pending' WHERE job_id = p_job_id AND idx > v_job.current_step AND status = 'skipped';
  BEGIN
    UPDATE jobs SET status = 'pending', phase = 'forward', step_name = v_name, attempt = 0,
                    available_at = v_now, failed_step = NULL, finished_at = NULL, updated_at = v_now,
                    lease_token = NULL, cancel_requested = false, cancel_compensate = false,
                    deadline = CASE WHEN p_deadline IS NOT NULL THEN p_deadline
                                    WHEN deadline <= v_now THEN NULL ELSE deadline END
    WHERE id = p_job_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'stepping: job % cannot be retried: another unfinished job holds its key %', p_job_id, v_job.key
      USING ERRCODE = 'SP002';
  END;
  PERFORM _notify_ready(v_job.queue);
  RETURN p_job_id;
END;
$$;
COMMENT ON FUNCTION job_retry(bigint, timestamptz) IS
  'Resumes a failed job from its failed step (attempts reset, a passed deadline removed); other statuses are an error.';

-- job_retry_many: job_retry for failed jobs of a queue and/or failed step name (NULL:
-- any), in id order after p_after_id, at most p_limit (1..MAX_RETRY_BATCH) per call so a
-- large retry never holds locks for long. A job another unfinished job now holds the key
-- of is left failed (skipped); jobs another transaction has locked are skipped too.
-- Returns how many were retried and the last id looked at (NULL: none left), the cursor
-- for the next call.
CREATE OR REPLACE FUNCTION job_retry_many(
  p_queue     text    DEFAULT NULL,
  p_step_name text    DEFAULT NULL,
  p_limit     integer DEFAULT NULL,
  p_after_id  bigint  DEFAULT 0
)
RETURNS TABLE (retried integer, last_id bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_limit integer := coalesce(p_limit, _default_maintenance_batch());
  v_id    bigint;
BEGIN
  IF v_limit < 1 OR v_limit > _limit_max_retry_batch() THEN
    PERFORM _bad_input(format('job_retry_many: p_limit must be from 1 to %s', _limit_max_retry_batch()));
  END IF;
  retried := 0;
  last_id := NULL;
  FOR v_id IN
    SELECT j.id FROM jobs j
    WHERE j.status = 'failed' AND j.id > coalesce(p_after_id, 0)
      AND (p_queue IS NULL OR j.queue = p_queue) AND (p_step_name IS NULL OR j.step_name = p_step_name)
    ORDER BY j.id
    LIMIT v_limit
    FOR UPDATE SKIP LOCKED
  LOOP
    last_id := v_id;
    BEGIN
      PERFORM job_retry(v_id);
      retried := retried + 1;
    EXCEPTION WHEN SQLSTATE 'SP002' THEN
      NULL; -- its key is taken by another unfinished job: left failed
    END;
  END LOOP;
  RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION job_retry_many(text, text, integer, bigint) IS
  'Retries up to p_limit failed jobs (by queue / failed step name) after p_after_id; returns the count and the cursor.';

-- job_prune: deletes finished jobs (and their steps) that finished more than p_older_than
-- ago, at most p_limit (1..MAX_PRUNE_BATCH) per call so a large prune never holds locks
-- for long; rows another transaction has locked are skipped. p_statuses must name final
-- statuses; failed jobs are kept unless listed: they are waiting for a person.
CREATE OR REPLACE FUNCTION job_prune(
  p_older_than interval DEFAULT NULL,
  p_statuses   text[]   DEFAULT ARRAY['succeeded', 'compensated', 'cancelled'],
  p_limit      integer  DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_older interval := coalesce(p_older_than, _default_prune_age_ms() * interval '1 millisecond');
  v_limit integer  := coalesce(p_limit, _default_prune_limit());
  v_ids   bigint[];
BEGIN
  IF v_older < interval '0' THEN
    PERFORM _bad_input('job_prune: p_older_than must not be negative');
  END IF;
  IF v_limit < 1 OR v_limit > _limit_max_prune_batch() THEN
    PERFORM _bad_input(format('job_prune: p_limit must be from 1 to %s', _limit_max_prune_batch()));
  END IF;
  IF p_statuses IS NULL OR cardinality(p_statuses) = 0
     OR EXISTS (SELECT 1 FROM unnest(p_statuses) s WHERE s IS NULL OR NOT _is_final(s)) THEN
    PERFORM _bad_input('job_prune: p_statuses must list final statuses (succeeded, failed, compensated, cancelled)');
  END IF;
  SELECT array_agg(id) INTO v_ids FROM (
    SELECT id FROM jobs
    WHERE finished_at < engine_now() - v_older AND status = ANY (p_statuses)
    ORDER BY finished_at
    LIMIT v_limit
    FOR UPDATE SKIP LOCKED
  ) d;
  IF v_ids IS NULL THEN
    RETURN 0;
  END IF;
  DELETE FROM steps WHERE job_id = ANY (v_ids);
  DELETE FROM jobs WHERE id = ANY (v_ids);
  RETURN cardinality(v_ids);
END;
$$;
COMMENT ON FUNCTION job_prune(interval, text[], integer) IS
  'Deletes up to p_limit jobs finished before engine_now()-p_older_than in the given final statuses; returns how many.';
