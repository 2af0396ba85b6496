-- Internal transitions of the job state machine (docs/state-machine.md). Callers hold the
-- job row lock (FOR UPDATE, _lock_held, or an UPDATE of it) and have checked the lease
-- token; these functions then lock the job's step rows: always job before steps, the same
-- order as every public function, so no two engine calls can deadlock on one job.
-- Internal (_-prefixed) functions carry no SET search_path: they are only called from the
-- public SECURITY DEFINER functions, whose pinned path they inherit, and a SET clause
-- would stop the planner from inlining them and cost a settings save/restore per call.
-- After a report a job keeps the lease token of its last unit (a failure), or its
-- _done_token (a success), or moves to _next_token (a continuation); only a new claim or
-- a release replaces it otherwise. So a report retried after a lost answer can tell that
-- it was already applied, and a success can never be mistaken for a failure.

-- _unit_of(job): the unit (a step, or a step's compensation) a job row points at, as a
-- worker receives it: a compensation gets its compensate_args (or the step's args), and
-- every unit but a job's first step gets the stored results of the job's steps, and every
-- unit the producer's trace context (two columns of the job row, usually NULL) and the
-- step's max_attempts stored at enqueue (NULL: the worker's definition decides), and for a
-- forward step of a job with a deadline the milliseconds left until it (the worker aborts
-- the step then), and for a forward step whether its job was cancelled (see step_claim).
CREATE OR REPLACE FUNCTION _unit_of(p_job jobs) RETURNS SETOF unit
LANGUAGE sql STABLE
AS $$
  SELECT p_job.id, p_job.lease_token, p_job.current_step, p_job.phase, p_job.step_name,
         CASE WHEN p_job.phase = 'forward' THEN s.args ELSE coalesce(s.compensate_args, s.args) END,
         p_job.attempt, p_job.queue, p_job.step_count,
         CASE WHEN p_job.current_step > 0 OR p_job.phase = 'compensate' THEN
           (SELECT jsonb_object_agg(r.idx, r.result) FROM steps r
            WHERE r.job_id = p_job.id AND r.result IS NOT NULL) END,
         p_job.trace_parent, p_job.trace_state, s.max_attempts,
         CASE WHEN p_job.phase = 'forward' AND p_job.deadline IS NOT NULL THEN
           greatest(0, ceil(extract(epoch FROM p_job.deadline - engine_now()) * 1000))::bigint END,
         CASE WHEN p_job.phase = 'forward' THEN p_job.cancel_requested END,
         NULL::boolean -- fleet_limited: step_claim says, for the units it hands out
  FROM steps s WHERE s.job_id = p_job.id AND s.idx = p_job.current_step;
$$;
COMMENT ON FUNCTION _unit_of(jobs) IS 'The unit (step or compensation) a job row points at, as workers receive it, with earlier results.';

-- _compensation_of: a worker's compensation for a step ({"name", "args"}), checked against
-- the name and size limits; NULL stays NULL. Raises SP001 naming the problem.
CREATE OR REPLACE FUNCTION _compensation_of(p_comp jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE
AS $$
  SELECT CASE
    WHEN p_comp IS NULL OR jsonb_typeof(p_comp) = 'null' THEN NULL
    WHEN jsonb_typeof(p_comp) <> 'object' OR jsonb_typeof(p_comp -> 'name') IS DISTINCT FROM 'string'
      OR length(p_comp ->> 'name') NOT BETWEEN 1 AND _limit_max_name_length()
      THEN (_bad_input(format('a compensation must be {"name": 1 to %s characters, "args"}', _limit_max_name_length())))::jsonb
    WHEN NOT _json_fits(p_comp -> 'args')
      THEN (_bad_input(format('compensation args are over %s bytes', _limit_max_json_bytes())))::jsonb
    ELSE jsonb_build_object('name', p_comp -> 'name', 'args', coalesce(p_comp -> 'args', 'null'::jsonb))
  END;
$$;
COMMENT ON FUNCTION _compensation_of(jsonb) IS 'Validates a reported compensation {name, args} (SP001 when bad); NULL when none.';

-- _job_finish: puts jobs in a final status, set-based (the fast path of step_complete
-- finishes a whole batch in one statement). Steps that never ran are marked cancelled
-- (job cancelled) or skipped (job failed or compensated). Keeps the lease token; frees
-- the dedupe key (the unique index only covers unfinished jobs). The public function that
-- caused this announces it, one NOTIFY per call (_notify_done). With p_tokens (the
-- lock-free fast path of step_complete; only with 'succeeded'), only the jobs whose last
-- forward step is running under p_tokens[i], not cancelled, are finished, and each row
-- is locked as it is written, in id order (a nested loop over the sorted ids).
CREATE OR REPLACE FUNCTION _job_finish(p_ids bigint[], p_status text, p_now timestamptz,
                                       p_success_report boolean DEFAULT false, p_tokens uuid[] DEFAULT NULL)
RETURNS SETOF jobs
-- PL/pgSQL, not SQL: a SQL function is parsed and planned on every call (262 µs per call,
-- most of a one-unit report); PL/pgSQL keeps its plans for the session.
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  -- The job rows first, then their steps: the lock order of every engine call.
  RETURN QUERY
  UPDATE jobs j SET status = p_status, finished_at = p_now, updated_at = p_now, locked_by = NULL, available_at = p_now,
                    lease_token = CASE WHEN p_success_report THEN _done_token(j.lease_token) ELSE j.lease_token END
  FROM (SELECT t.id, t.token FROM unnest(p_ids, p_tokens) AS t(id, token) ORDER BY t.id) t
  WHERE j.id = t.id
    AND (p_tokens IS NULL
         OR (j.lease_token = t.token AND j.status = 'running' AND j.phase = 'forward' AND NOT j.cancel_requested
             AND j.current_step + 1 = j.step_count))
  RETURNING j.*;
  IF p_status <> 'succeeded' THEN
    UPDATE steps SET status = CASE WHEN p_status = 'cancelled' THEN 'cancelled' ELSE 'skipped' END
    WHERE job_id = ANY (p_ids) AND status = 'pending';
  END IF;
END;
$$;
COMMENT ON FUNCTION _job_finish(bigint[], text, timestamptz, boolean, uuid[]) IS
  'Puts jobs in a final status (set-based); steps that never ran become cancelled or skipped; with tokens, only held last steps.';

-- _job_finish_one: _job_finish for one job, returning its new row.
CREATE OR REPLACE FUNCTION _job_finish_one(p_job jobs, p_status text, p_now timestamptz) RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_job jobs;
BEGIN
  SELECT * INTO v_job FROM _job_finish(ARRAY[p_job.id], p_status, p_now);
  RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _job_finish_one(jobs, text, timestamptz) IS 'Puts one job in a final status; returns its row.';

-- Points a job at its next unit. When the reporting worker (p_worker) has a handler for it
-- and serves its queue, the unit is leased to that worker at once (attempt 1, the derived
-- token _next_token): the next step starts without a round trip through the queue.
-- Otherwise the job waits as pending, runnable now, and workers are woken. In a queue with
-- fleet-wide limits the unit is leased on only when the limits allow (_queue_take_one).
CREATE OR REPLACE FUNCTION _job_next_unit(p_job jobs, p_idx integer, p_phase text, p_name text, p_now timestamptz,
                                          p_worker text, p_names text[], p_queues text[], p_lease interval)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_job  jobs;
  v_take boolean := p_worker IS NOT NULL AND p_name = ANY (p_names)
                    AND (p_queues IS NULL OR p_job.queue = ANY (p_queues))
                    AND NOT (p_phase = 'forward' AND p_job.deadline IS NOT NULL AND p_job.deadline <= p_now);
BEGIN
  -- The limits check rides in this statement (a CASE, so _queue_take_one runs, and records
  -- a start, only when the unit would be leased on and its queue has a limit row): a
  -- queue without limits pays one index probe of the empty queue_limits, no statement.
  UPDATE jobs SET
    current_step = p_idx, phase = p_phase, step_name = p_name,
    attempt      = CASE WHEN t.take THEN 1 ELSE 0 END,
    status       = CASE WHEN t.take THEN 'running' ELSE 'pending' END,
    available_at = CASE WHEN t.take THEN p_now + p_lease ELSE p_now END,
    lease_token  = CASE WHEN t.take THEN _next_token(p_job.lease_token) ELSE p_job.lease_token END,
    locked_by    = CASE WHEN t.take THEN p_worker END,
    claimed_at   = CASE WHEN t.take THEN p_now ELSE claimed_at END,
    updated_at   = p_now
  FROM (SELECT CASE WHEN NOT v_take THEN false
                    WHEN NOT EXISTS (SELECT 1 FROM queue_limits l WHERE l.queue = p_job.queue) THEN true
                    ELSE _queue_take_one(p_job.queue, p_job.id, p_now) END AS take) t
  WHERE id = p_job.id
  RETURNING jobs.* INTO v_job;
  IF v_job.status = 'pending' THEN
    PERFORM _notify_ready(v_job.queue);
  END IF;
  RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _job_next_unit(jobs, integer, text, text, timestamptz, text, text[], text[], interval) IS
  'Moves a job to its next unit: leased to the reporting worker when it can run it, else pending and announced.';

-- Runs the next pending compensation, highest step index first. With none left the job
-- ends: cancelled when a cancel started the compensations, else compensated. (Only called
-- when a compensation is pending or one just succeeded, so there was always one.)
CREATE OR REPLACE FUNCTION _compensation_next(p_job jobs, p_now timestamptz, p_worker text, p_names text[],
                                              p_queues text[], p_lease interval)
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
                          p_worker, p_names, p_queues, p_lease);
  END IF;
  RETURN _job_finish_one(p_job, CASE WHEN p_job.cancel_requested THEN 'cancelled' ELSE 'compensated' END, p_now);
END;
$$;
COMMENT ON FUNCTION _compensation_next(jobs, timestamptz, text, text[], text[], interval) IS
  'Starts the next compensation in reverse step order, or ends the job (cancelled/compensated).';

-- _step_ran: whether the job's current forward step has run: an attempt counted (beyond
-- p_claims, the claims of the caller itself) or a "not yet" answered, which gives its
-- attempt back (steps.not_yet). Decides whether a cancel or a passed deadline compensates it.
CREATE OR REPLACE FUNCTION _step_ran(p_job jobs, p_claims integer) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT p_job.attempt > p_claims
      OR EXISTS (SELECT 1 FROM steps s WHERE s.job_id = p_job.id AND s.idx = p_job.current_step AND s.not_yet);
$$;
COMMENT ON FUNCTION _step_ran(jobs, integer) IS
  'Whether a job''s current forward step ran (an attempt beyond the caller''s own claims, or a "not yet").';

-- Ends the forward path at step p_from: marks for compensation every step before it that
-- has one (they all succeeded) and p_from itself when p_include_from (it ran, and may have
-- done part of its work), then runs them in reverse. Without p_compensate, or with nothing
-- to compensate, the job just ends in p_final.
CREATE OR REPLACE FUNCTION _forward_stop(p_job jobs, p_from integer, p_include_from boolean, p_compensate boolean,
                                         p_final text, p_now timestamptz, p_worker text, p_names text[],
                                         p_queues text[], p_lease interval)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  IF p_compensate THEN
    UPDATE steps SET comp_status = 'pending'
    WHERE job_id = p_job.id AND compensate_name IS NOT NULL
      AND (idx < p_from OR (idx = p_from AND p_include_from));
    IF FOUND THEN
      RETURN _compensation_next(p_job, p_now, p_worker, p_names, p_queues, p_lease);
    END IF;
  END IF;
  RETURN _job_finish_one(p_job, p_final, p_now);
END;
$$;
COMMENT ON FUNCTION _forward_stop(jobs, integer, boolean, boolean, text, timestamptz, text, text[], text[], interval) IS
  'Ends a job''s forward path: compensations in reverse order when there are any, else the final status.';

-- The forward path fails at the job's current step (permanent error, attempts exhausted,
-- deadline passed): the step is marked failed with p_attempts attempts and the error,
-- then the job compensates (including this step when p_include_from: it ran) or fails.
CREATE OR REPLACE FUNCTION _forward_fail(p_job jobs, p_error jsonb, p_include_from boolean, p_attempts integer,
                                         p_now timestamptz)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_job jobs;
BEGIN
  UPDATE steps SET status = 'failed', attempts = p_attempts, last_error = p_error
  WHERE job_id = p_job.id AND idx = p_job.current_step;
  UPDATE jobs SET failed_step = current_step, last_error = p_error, updated_at = p_now
  WHERE id = p_job.id RETURNING * INTO v_job;
  RETURN _forward_stop(v_job, v_job.current_step, p_include_from, true, 'failed', p_now, NULL, NULL, NULL, NULL);
END;
$$;
COMMENT ON FUNCTION _forward_fail(jobs, jsonb, boolean, integer, timestamptz) IS
  'Fails the forward path at the current step and starts compensating (or ends the job failed).';

-- The job's current unit succeeded: record it (with its result, and the compensation the
-- worker's definition gives it unless one was set at enqueue) and move on: next step, next
-- compensation, or the end. A cancel requested while the step ran takes effect here.
CREATE OR REPLACE FUNCTION _unit_succeeded(p_job jobs, p_result jsonb, p_comp jsonb, p_now timestamptz,
                                           p_worker text, p_names text[], p_queues text[], p_lease interval)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_next_name text;
BEGIN
  IF p_job.phase = 'compensate' THEN
    UPDATE steps SET comp_status = 'succeeded', comp_attempts = p_job.attempt, comp_finished_at = p_now
    WHERE job_id = p_job.id AND idx = p_job.current_step;
    RETURN _compensation_next(p_job, p_now, p_worker, p_names, p_queues, p_lease);
  END IF;

  -- A compensation an earlier failed or "not yet" attempt stored (computed without a
  -- result) gives way to the one of this success, computed from its result; one set at
  -- enqueue stays.
  UPDATE steps SET status = 'succeeded', attempts = p_job.attempt, finished_at = p_now, result = p_result,
                   compensate_args = CASE WHEN compensate_name IS NULL OR compensate_from_failure
                                          THEN p_comp -> 'args' ELSE compensate_args END,
                   compensate_name = CASE WHEN compensate_name IS NULL OR compensate_from_failure
                                          THEN p_comp ->> 'name' ELSE compensate_name END,
                   compensate_from_failure = false
  WHERE job_id = p_job.id AND idx = p_job.current_step;
  IF p_job.cancel_requested THEN
    RETURN _forward_stop(p_job, p_job.current_step, true, p_job.cancel_compensate, 'cancelled', p_now,
                         p_worker, p_names, p_queues, p_lease);
  END IF;
  IF p_job.current_step + 1 >= p_job.step_count THEN
    RETURN _job_finish_one(p_job, 'succeeded', p_now);
  END IF;
  SELECT name INTO v_next_name FROM steps WHERE job_id = p_job.id AND idx = p_job.current_step + 1;
  RETURN _job_next_unit(p_job, p_job.current_step + 1, 'forward', v_next_name, p_now,
                        p_worker, p_names, p_queues, p_lease);
END;
$$;
COMMENT ON FUNCTION _unit_succeeded(jobs, jsonb, jsonb, timestamptz, text, text[], text[], interval) IS
  'Records a succeeded step (result, compensation) or compensation and advances the job.';

-- _report_number: a number field of a failure report, clamped to [p_min, p_max]; NULL when
-- absent or not a JSON number (a report never makes the engine raise a conversion error).
CREATE OR REPLACE FUNCTION _report_number(p_report jsonb, p_key text, p_min bigint, p_max bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN jsonb_typeof(p_report -> p_key) = 'number'
              THEN least(greatest((p_report ->> p_key)::numeric, p_min), p_max)::bigint END;
$$;
COMMENT ON FUNCTION _report_number(jsonb, text, bigint, bigint) IS 'A clamped number field of a report, NULL when absent or not a number.';

-- The job's current unit failed, or asked to run later. p_report:
--   {"error": {...}, "permanent": bool, "retry_after_ms": n, "max_attempts": n,
--    "backoff_base_ms": n, "backoff_max_ms": n, "compensate": {"name", "args"}}
-- where max_attempts, backoff and compensate are the worker's step definition's (values
-- stored at enqueue take precedence). Forward steps: a permanent error, exhausted
-- max_attempts or a passed deadline end the forward path (compensating when possible);
-- otherwise the step waits its backoff, never past the deadline. Compensations are retried
-- until they succeed. retry_after_ms means "not yet": run again after that delay (clamped
-- to [0, MAX_RETRY_LATER_MS]) without counting the attempt or recording an error.
CREATE OR REPLACE FUNCTION _unit_failed(p_job jobs, p_report jsonb, p_now timestamptz)
RETURNS jobs
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_step      steps;
  v_job       jobs;
  v_error     jsonb   := _error_record(p_report -> 'error');
  v_later     bigint  := _report_number(p_report, 'retry_after_ms', 0, _limit_max_retry_later_ms());
  v_max       bigint  := _report_number(p_report, 'max_attempts', 1, _limit_max_int());
  v_permanent boolean := coalesce(jsonb_typeof(p_report -> 'permanent') = 'boolean'
                                  AND (p_report ->> 'permanent')::boolean, false);
  v_comp      jsonb   := _compensation_of(p_report -> 'compensate');
  v_at        timestamptz;
BEGIN
  SELECT * INTO v_step FROM steps WHERE job_id = p_job.id AND idx = p_job.current_step FOR UPDATE;
  IF p_job.phase = 'forward' AND v_comp IS NOT NULL
     AND (v_step.compensate_name IS NULL OR v_step.compensate_from_failure) THEN
    -- The failing step's own compensation, from the worker's definition (without a
    -- result); a later success of the step replaces it (_unit_succeeded).
    UPDATE steps SET compensate_name = v_comp ->> 'name', compensate_args = v_comp -> 'args',
                     compensate_from_failure = true
    WHERE job_id = p_job.id AND idx = p_job.current_step;
  END IF;

  IF p_job.phase = 'forward' AND p_job.cancel_requested THEN
    UPDATE steps SET attempts = p_job.attempt, last_error = CASE WHEN v_later IS NULL THEN v_error ELSE last_error END
    WHERE job_id = p_job.id AND idx = p_job.current_step;
    RETURN _forward_stop(p_job, p_job.current_step, true, p_job.cancel_compensate, 'cancelled', p_now,
                         NULL, NULL, NULL, NULL);
  END IF;

  IF v_later IS NOT NULL THEN
    IF p_job.phase = 'forward' AND v_step.not_yet IS NOT TRUE THEN
      -- The attempt is given back below; this remembers that the step ran (_step_ran).
      UPDATE steps SET not_yet = true WHERE job_id = p_job.id AND idx = p_job.current_step;
    END IF;
    v_at := p_now + v_later * interval '1 millisecond';
    IF p_job.phase = 'forward' AND p_job.deadline IS NOT NULL THEN
      v_at := least(v_at, p_job.deadline);
    END IF;
    UPDATE jobs SET status = 'pending', available_at = v_at, attempt = greatest(attempt - 1, 0),
                    locked_by = NULL, updated_at = p_now
    WHERE id = p_job.id RETURNING * INTO v_job;
    RETURN v_job;
  END IF;

  IF p_job.phase = 'compensate' THEN
    UPDATE steps SET comp_attempts = p_job.attempt, comp_last_error = v_error
    WHERE job_id = p_job.id AND idx = p_job.current_step;
  ELSIF v_permanent
     OR p_job.attempt >= coalesce(v_step.max_attempts, v_max, _limit_max_int())
     OR (p_job.deadline IS NOT NULL AND p_job.deadline <= p_now) THEN
    RETURN _forward_fail(p_job, v_error, true, p_job.attempt, p_now);
  ELSE
    UPDATE steps SET attempts = p_job.attempt, last_error = v_error
    WHERE job_id = p_job.id AND idx = p_job.current_step;
  END IF;

  v_at := p_now + backoff_delay(
    p_job.attempt,
    coalesce(v_step.backoff_base_ms,
             _report_number(p_report, 'backoff_base_ms', 1, _limit_max_int())::integer, _default_backoff_base_ms()),
    coalesce(v_step.backoff_max_ms,
             _report_number(p_report, 'backoff_max_ms', 1, _limit_max_int())::integer, _default_backoff_max_ms()));
  IF p_job.phase = 'forward' AND p_job.deadline IS NOT NULL THEN
    v_at := least(v_at, p_job.deadline);
  END IF;
  UPDATE jobs SET status = 'pending', available_at = v_at, last_error = v_error, locked_by = NULL, updated_at = p_now
  WHERE id = p_job.id RETURNING * INTO v_job;
  RETURN v_job;
END;
$$;
COMMENT ON FUNCTION _unit_failed(jobs, jsonb, timestamptz) IS
  'Records a failed attempt: retry with backoff, "not yet" without counting, or end the forward path.';
