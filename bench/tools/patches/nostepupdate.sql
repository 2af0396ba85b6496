-- Prototype for bench/tools/sql-path.ts, against sql/ as of commit 181ca8e (not for production):
-- step_complete's fast path without its steps update (a succeeded last step leaves the steps row as enqueued).
SET search_path = stepping;
CREATE OR REPLACE FUNCTION step_complete(
  p_job_ids  bigint[],
  p_tokens   uuid[],
  p_worker   text    DEFAULT NULL,
  p_names    text[]  DEFAULT NULL,
  p_queues   text[]  DEFAULT NULL,
  p_lease_ms integer DEFAULT 30000
)
RETURNS TABLE (job_id bigint, accepted boolean, job_status text,
               next_lease_token uuid, next_step_index integer, next_phase text, next_name text, next_args jsonb,
               next_attempt integer, next_queue text, next_priority integer, next_step_count integer,
               next_transactional boolean, next_deadline timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
  v_now  timestamptz := now();
  v_in   record;
  v_job  jobs;
  v_u    record;
  v_done text[];
  v_fast bigint[];
BEGIN
  IF cardinality(p_job_ids) IS DISTINCT FROM cardinality(p_tokens) THEN
    RAISE EXCEPTION 'stepping: p_job_ids and p_tokens differ in length' USING ERRCODE = 'SP001';
  END IF;
  -- Fast path, set-based: the usual case of a job's last forward step, not cancelled,
  -- reported under its current token. Same effect as _unit_succeeded + _job_finish.
  WITH locked AS (
    SELECT j.id, j.current_step, j.attempt FROM jobs j
    JOIN unnest(p_job_ids, p_tokens) AS t(id, token) ON j.id = t.id AND j.lease_token = t.token
    WHERE j.status = 'running' AND j.phase = 'forward' AND NOT j.cancel_requested
      AND j.current_step + 1 = j.step_count
    ORDER BY j.id
    FOR UPDATE OF j
  ), finished AS (
    UPDATE jobs j SET status = 'succeeded', finished_at = v_now, updated_at = v_now,
                      lease_token = NULL, locked_by = NULL, available_at = v_now
    FROM locked l WHERE j.id = l.id
    RETURNING j.id
  )
  SELECT array_agg(f.id) INTO v_fast FROM finished f;
  IF v_fast IS NOT NULL THEN
    v_done := ARRAY(SELECT f || ':succeeded' FROM unnest(v_fast) f);
    RETURN QUERY SELECT f, true, 'succeeded'::text, NULL::uuid, NULL::integer, NULL::text, NULL::text, NULL::jsonb,
                        NULL::integer, NULL::text, NULL::integer, NULL::integer, NULL::boolean, NULL::timestamptz
                 FROM unnest(v_fast) f;
  END IF;

  FOR v_in IN SELECT t.id, t.token FROM unnest(p_job_ids, p_tokens) AS t(id, token)
              WHERE v_fast IS NULL OR t.id <> ALL (v_fast)
              ORDER BY t.id LOOP
    SELECT * INTO v_job FROM jobs
    WHERE id = v_in.id AND lease_token = v_in.token AND status = 'running'
    FOR UPDATE;
    job_id := v_in.id;
    IF NOT FOUND THEN
      accepted := false; job_status := NULL; next_lease_token := NULL; next_step_index := NULL;
      next_phase := NULL; next_name := NULL; next_args := NULL; next_attempt := NULL; next_queue := NULL;
      next_priority := NULL; next_step_count := NULL; next_transactional := NULL; next_deadline := NULL;
      RETURN NEXT;
      CONTINUE;
    END IF;
    v_job := _unit_succeeded(v_job, v_now, p_worker, p_names, p_queues, p_lease_ms);
    IF v_job.status IN ('succeeded', 'failed', 'compensated', 'cancelled') THEN
      v_done := v_done || (v_job.id || ':' || v_job.status);
    END IF;
    accepted := true; job_status := v_job.status;
    next_lease_token := NULL; next_step_index := NULL; next_phase := NULL; next_name := NULL; next_args := NULL;
    next_attempt := NULL; next_queue := NULL; next_priority := NULL; next_step_count := NULL;
    next_transactional := NULL; next_deadline := NULL;
    IF v_job.status = 'running' AND v_job.locked_by IS NOT DISTINCT FROM p_worker THEN
      SELECT * INTO v_u FROM _unit_of(v_job);
      next_lease_token := v_u.lease_token; next_step_index := v_u.step_index; next_phase := v_u.phase;
      next_name := v_u.name; next_args := v_u.args; next_attempt := v_u.attempt; next_queue := v_u.queue;
      next_priority := v_u.priority; next_step_count := v_u.step_count;
      next_transactional := v_u.transactional; next_deadline := v_u.deadline;
    END IF;
    RETURN NEXT;
  END LOOP;
  PERFORM _notify_done(v_done);
END;
$$;
;
RESET search_path;
