-- Internal transitions of the job state machine (docs/state-machine.md). Callers hold the
-- job row lock (FOR UPDATE or an UPDATE of it) and have checked the lease token; these
-- functions then lock the job's step rows, always job before steps, the same order as
-- every public function, so no two engine calls can deadlock on one job.
-- Internal (_-prefixed) functions carry no SET search_path: they are only called from the
-- public SECURITY DEFINER functions, whose pinned path they inherit, and a SET clause
-- would stop the planner from inlining them and cost a settings save/restore per call.

-- What a worker needs to run the job's current unit (a step, or a step's compensation).
CREATE OR REPLACE FUNCTION _unit_of(p_job jobs)
RETURNS TABLE (job_id bigint, lease_token uuid, step_index integer, phase text, name text, args jsonb,
               attempt integer, queue text, priority integer, step_count integer, transactional boolean,
               deadline timestamptz)
LANGUAGE sql STABLE
AS $$
  SELECT p_job.id, p_job.lease_token, p_job.current_step, p_job.phase, p_job.step_name,
         CASE WHEN p_job.phase = 'forward' THEN s.args ELSE coalesce(s.compensate_args, s.args) END,
         p_job.attempt, p_job.queue, p_job.priority, p_job.step_count,
         s.transactional AND p_job.phase = 'forward', p_job.deadline
  FROM steps s WHERE s.job_id = p_job.id AND s.idx = p_job.current_step;
$$;
COMMENT ON FUNCTION _unit_of(jobs) IS 'The claimable unit (step or compensation) a job row points at, as workers receive it.';

-- Points a job at its next unit. When the reporting worker (p_worker) has a handler for it
-- and serves its queue, the unit is leased to that worker at once (attempt 1, fresh token):
-- the next step starts without a round trip through the queue. Otherwise the job waits as
-- pending, runnable now, and workers are woken.
CREATE OR REPLACE FUNCTION _job_next_unit(p_job jobs, p_idx integer, p_phase text, p_name text, p_now timestamptz,
                                          p_worker text, p_names text[], p_queues text[], p_lease_ms integer)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_job  jobs;
  v_take boolean := p_worker IS NOT NULL AND p_name = ANY (p_names)
                    AND (p_queues IS NULL OR p_job.queue = ANY (p_queues))
                    AND NOT (p_phase = 'forward' AND p_job.deadline IS NOT NULL AND p_job.deadline <= p_now);
BEGIN
  UPDATE jobs SET
    current_step = p_idx, phase = p_phase, step_name = p_name,
    attempt      = CASE WHEN v_take THEN 1 ELSE 0 END,
    status       = CASE WHEN v_take THEN 'running' ELSE 'pending' END,
    available_at = CASE WHEN v_take THEN p_now + p_lease_ms * interval '1 millisecond' ELSE p_now END,
    lease_token  = CASE WHEN v_take THEN gen_random_uuid() END,
    locked_by    = CASE WHEN v_take THEN p_worker END,
    claimed_at   = CASE WHEN v_take THEN p_now END,
    updated_at   = p_now
  WHERE id = p_job.id
  RETURNING * INTO v_job;
  IF NOT v_take THEN
    PERFORM _notify_ready(v_job.queue);
  END IF;
  RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _job_next_unit(jobs, integer, text, text, timestamptz, text, text[], text[], integer) IS
  'Moves a job to its next unit: leased to the reporting worker when it can run it, else pending and announced.';

-- Ends a job in a final status, frees its key and lease, announces it.
CREATE OR REPLACE FUNCTION _job_finish(p_job jobs, p_status text, p_now timestamptz)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_job jobs;
BEGIN
  IF p_status = 'cancelled' THEN
    UPDATE steps SET status = 'cancelled' WHERE job_id = p_job.id AND status = 'pending';
  END IF;
  UPDATE jobs SET status = p_status, finished_at = p_now, updated_at = p_now,
                  lease_token = NULL, locked_by = NULL, available_at = p_now
  WHERE id = p_job.id
  RETURNING * INTO v_job;
  -- The public function that caused this announces it, one NOTIFY per batch (_notify_done).
  RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _job_finish(jobs, text, timestamptz) IS 'Puts a job in a final status (the caller announces it with _notify_done).';

-- Runs the next pending compensation, highest step index first; with none left the job
-- ends: cancelled when a cancel started this, compensated when any compensation ran,
-- failed when there was nothing to compensate.
CREATE OR REPLACE FUNCTION _compensation_next(p_job jobs, p_now timestamptz, p_worker text, p_names text[],
                                              p_queues text[], p_lease_ms integer)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_next record;
BEGIN
  SELECT idx, compensate_name INTO v_next
  FROM steps WHERE job_id = p_job.id AND comp_status = 'pending'
  ORDER BY idx DESC LIMIT 1;
  IF FOUND THEN
    RETURN _job_next_unit(p_job, v_next.idx, 'compensate', v_next.compensate_name, p_now,
                          p_worker, p_names, p_queues, p_lease_ms);
  END IF;
  IF p_job.cancel_requested THEN
    RETURN _job_finish(p_job, 'cancelled', p_now);
  ELSIF EXISTS (SELECT 1 FROM steps WHERE job_id = p_job.id AND comp_status = 'succeeded') THEN
    RETURN _job_finish(p_job, 'compensated', p_now);
  ELSE
    RETURN _job_finish(p_job, 'failed', p_now);
  END IF;
END;
$$;
COMMENT ON FUNCTION _compensation_next(jobs, timestamptz, text, text[], text[], integer) IS
  'Starts the next compensation in reverse step order, or ends the job (cancelled/compensated/failed).';

-- Ends the forward path at step p_from: marks for compensation every step before it that
-- has one (they all succeeded) and p_from itself when p_include_from (it may have done
-- part of its work), then runs them in reverse. Without p_compensate the job just ends
-- in p_final.
CREATE OR REPLACE FUNCTION _forward_stop(p_job jobs, p_from integer, p_include_from boolean, p_compensate boolean,
                                         p_final text, p_now timestamptz, p_worker text, p_names text[],
                                         p_queues text[], p_lease_ms integer)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  IF p_compensate THEN
    UPDATE steps SET comp_status = 'pending'
    WHERE job_id = p_job.id AND compensate_name IS NOT NULL
      AND (idx < p_from OR (idx = p_from AND p_include_from));
    IF FOUND THEN
      RETURN _compensation_next(p_job, p_now, p_worker, p_names, p_queues, p_lease_ms);
    END IF;
  END IF;
  RETURN _job_finish(p_job, p_final, p_now);
END;
$$;
COMMENT ON FUNCTION _forward_stop(jobs, integer, boolean, boolean, text, timestamptz, text, text[], text[], integer) IS
  'Ends a job''s forward path: compensations in reverse order when there are any, else the final status.';

-- The job's current unit succeeded: record it and move on (next step, next compensation,
-- or the end). A cancel requested while the step ran takes effect here.
CREATE OR REPLACE FUNCTION _unit_succeeded(p_job jobs, p_now timestamptz, p_worker text, p_names text[],
                                           p_queues text[], p_lease_ms integer)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_next_name text;
BEGIN
  IF p_job.phase = 'compensate' THEN
    UPDATE steps SET comp_status = 'succeeded', comp_attempts = p_job.attempt, comp_finished_at = p_now
    WHERE job_id = p_job.id AND idx = p_job.current_step;
    RETURN _compensation_next(p_job, p_now, p_worker, p_names, p_queues, p_lease_ms);
  END IF;

  UPDATE steps SET status = 'succeeded', attempts = p_job.attempt, finished_at = p_now
  WHERE job_id = p_job.id AND idx = p_job.current_step;
  IF p_job.cancel_requested THEN
    RETURN _forward_stop(p_job, p_job.current_step, true, p_job.cancel_compensate, 'cancelled', p_now,
                         p_worker, p_names, p_queues, p_lease_ms);
  END IF;
  IF p_job.current_step + 1 >= p_job.step_count THEN
    RETURN _job_finish(p_job, 'succeeded', p_now);
  END IF;
  SELECT name INTO v_next_name FROM steps WHERE job_id = p_job.id AND idx = p_job.current_step + 1;
  RETURN _job_next_unit(p_job, p_job.current_step + 1, 'forward', v_next_name, p_now,
                        p_worker, p_names, p_queues, p_lease_ms);
END;
$$;
COMMENT ON FUNCTION _unit_succeeded(jobs, timestamptz, text, text[], text[], integer) IS
  'Records a succeeded step or compensation and advances the job.';

-- The job's current unit failed (or asked to run later). Forward steps: a permanent error,
-- exhausted max_attempts or a passed deadline end the forward path (compensating when
-- possible); otherwise the step waits its backoff, never past the deadline. Compensations
-- are retried until they succeed. p_retry_after_ms (not null) means "not yet": run again
-- after that delay without counting the attempt or recording an error.
CREATE OR REPLACE FUNCTION _unit_failed(p_job jobs, p_error jsonb, p_permanent boolean, p_retry_after_ms integer,
                                        p_now timestamptz)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_step      steps;
  v_job       jobs;
  v_exhausted boolean;
  v_at        timestamptz;
BEGIN
  SELECT * INTO v_step FROM steps WHERE job_id = p_job.id AND idx = p_job.current_step FOR UPDATE;

  IF p_job.phase = 'forward' AND p_job.cancel_requested THEN
    UPDATE steps SET attempts = p_job.attempt,
                     last_error = CASE WHEN p_retry_after_ms IS NULL THEN p_error ELSE last_error END
    WHERE job_id = p_job.id AND idx = p_job.current_step;
    RETURN _forward_stop(p_job, p_job.current_step, true, p_job.cancel_compensate, 'cancelled', p_now,
                         NULL, NULL, NULL, NULL);
  END IF;

  IF p_retry_after_ms IS NOT NULL THEN
    v_at := p_now + greatest(p_retry_after_ms, 0) * interval '1 millisecond';
    IF p_job.phase = 'forward' AND p_job.deadline IS NOT NULL THEN
      v_at := least(v_at, p_job.deadline);
    END IF;
    UPDATE jobs SET status = 'pending', available_at = v_at, attempt = greatest(attempt - 1, 0),
                    lease_token = NULL, locked_by = NULL, updated_at = p_now
    WHERE id = p_job.id RETURNING * INTO v_job;
    RETURN v_job;
  END IF;

  IF p_job.phase = 'compensate' THEN
    UPDATE steps SET comp_attempts = p_job.attempt, comp_last_error = p_error
    WHERE job_id = p_job.id AND idx = p_job.current_step;
    v_exhausted := false;
  ELSE
    v_exhausted := p_permanent
      OR (v_step.max_attempts IS NOT NULL AND p_job.attempt >= v_step.max_attempts)
      OR (p_job.deadline IS NOT NULL AND p_job.deadline <= p_now);
    UPDATE steps SET attempts = p_job.attempt, last_error = p_error,
                     status = CASE WHEN v_exhausted THEN 'failed' ELSE status END
    WHERE job_id = p_job.id AND idx = p_job.current_step;
  END IF;

  IF v_exhausted THEN
    UPDATE jobs SET failed_step = current_step, last_error = p_error WHERE id = p_job.id RETURNING * INTO v_job;
    RETURN _forward_stop(v_job, v_job.current_step, true, true, 'failed', p_now, NULL, NULL, NULL, NULL);
  END IF;

  v_at := p_now + backoff_delay(p_job.attempt, v_step.backoff_base_ms, v_step.backoff_max_ms);
  IF p_job.phase = 'forward' AND p_job.deadline IS NOT NULL THEN
    v_at := least(v_at, p_job.deadline);
  END IF;
  UPDATE jobs SET status = 'pending', available_at = v_at, last_error = p_error,
                  lease_token = NULL, locked_by = NULL, updated_at = p_now
  WHERE id = p_job.id RETURNING * INTO v_job;
  RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _unit_failed(jobs, jsonb, boolean, integer, timestamptz) IS
  'Records a failed attempt: retry with backoff, "not yet" without counting, or end the forward path.';
