-- job_cancel: stops a job. Pending: ends at once (cancelled, or compensating when
-- p_compensate). Running: flags the job and NOTIFYs <schema>_cancel; the running step's
-- result, whatever it is, then ends the job (compensating first when asked). A job that
-- is compensating runs its compensations to the end; a finished job cannot be cancelled.
-- Returns the job's status after the call. Locks the job row, then its steps.
CREATE OR REPLACE FUNCTION job_cancel(p_job_id bigint, p_compensate boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_job jobs;
BEGIN
  SELECT * INTO v_job FROM jobs WHERE id = p_job_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stepping: no job %', p_job_id USING ERRCODE = 'SP003';
  END IF;
  IF v_job.status NOT IN ('pending', 'running') THEN
    RAISE EXCEPTION 'stepping: job % is already %; only unfinished jobs can be cancelled', p_job_id, v_job.status
      USING ERRCODE = 'SP004';
  END IF;
  IF v_job.phase = 'compensate' THEN
    RAISE EXCEPTION 'stepping: job % is compensating; compensations always run to the end', p_job_id
      USING ERRCODE = 'SP004';
  END IF;
  UPDATE jobs SET cancel_requested = true, cancel_compensate = coalesce(p_compensate, false), updated_at = now()
  WHERE id = p_job_id RETURNING * INTO v_job;
  IF v_job.status = 'running' THEN
    PERFORM _notify_cancel(p_job_id);
    RETURN 'running';
  END IF;
  -- Pending: a step that already made attempts may have done part of its work.
  v_job := _forward_stop(v_job, v_job.current_step, v_job.attempt > 0, v_job.cancel_compensate, 'cancelled',
                         now(), NULL, NULL, NULL, NULL);
  IF v_job.status = 'cancelled' THEN
    PERFORM _notify_done(ARRAY[v_job.id || ':cancelled']);
  END IF;
  RETURN CASE WHEN v_job.phase = 'compensate' AND v_job.status IN ('pending', 'running')
              THEN 'compensating' ELSE v_job.status END;
END;
$$;
COMMENT ON FUNCTION job_cancel(bigint, boolean) IS
  'Cancels an unfinished job: pending at once, running after its current step; optionally compensating.';

-- job_retry: resumes a failed job from the step that failed, with that step's attempts
-- reset. Steps before it are not run again. Only failed jobs can be retried.
CREATE OR REPLACE FUNCTION job_retry(p_job_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_job  jobs;
  v_name text;
BEGIN
  SELECT * INTO v_job FROM jobs WHERE id = p_job_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stepping: no job %', p_job_id USING ERRCODE = 'SP003';
  END IF;
  IF v_job.status <> 'failed' THEN
    RAISE EXCEPTION 'stepping: job % is %; only failed jobs can be retried', p_job_id, v_job.status
      USING ERRCODE = 'SP004';
  END IF;
  UPDATE steps SET status = 'pending', attempts = 0
  WHERE job_id = p_job_id AND idx = v_job.current_step
  RETURNING name INTO v_name;
  BEGIN
    UPDATE jobs SET status = 'pending', phase = 'forward', step_name = v_name, attempt = 0,
                    available_at = now(), failed_step = NULL, finished_at = NULL, updated_at = now(),
                    cancel_requested = false, cancel_compensate = false
    WHERE id = p_job_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'stepping: job % cannot be retried: another unfinished job holds its key %', p_job_id, v_job.key
      USING ERRCODE = 'SP002';
  END;
  PERFORM _notify_ready(v_job.queue);
  RETURN p_job_id;
END;
$$;
COMMENT ON FUNCTION job_retry(bigint) IS 'Resumes a failed job from its failed step (attempts reset); other statuses are an error.';

-- job_prune: deletes finished jobs (and their steps) that finished more than p_older_than
-- ago, at most p_limit per call so a large prune never holds locks for long. Failed jobs
-- are kept unless listed in p_statuses: they are waiting for a person.
CREATE OR REPLACE FUNCTION job_prune(
  p_older_than interval DEFAULT interval '7 days',
  p_statuses   text[]   DEFAULT ARRAY['succeeded', 'compensated', 'cancelled'],
  p_limit      integer  DEFAULT 10000
)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_ids bigint[];
BEGIN
  SELECT array_agg(id) INTO v_ids FROM (
    SELECT id FROM jobs
    WHERE finished_at < now() - p_older_than AND status = ANY (p_statuses)
      AND status NOT IN ('pending', 'running')
    ORDER BY finished_at
    LIMIT p_limit
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
  'Deletes up to p_limit jobs finished before now()-p_older_than in the given statuses; returns how many.';
