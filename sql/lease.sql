-- _lock_held: locks the jobs still running under the given lease tokens, in id order (the
-- order step_complete and step_fail use, so a heartbeat and a report never deadlock), and
-- returns their ids.
CREATE OR REPLACE FUNCTION _lock_held(p_job_ids bigint[], p_tokens uuid[])
RETURNS SETOF bigint
LANGUAGE sql VOLATILE
AS $$
  SELECT j.id FROM jobs j JOIN unnest(p_job_ids, p_tokens) AS t(id, token)
    ON j.id = t.id AND j.lease_token = t.token
  WHERE j.status = 'running'
  ORDER BY j.id
  FOR UPDATE OF j;
$$;
COMMENT ON FUNCTION _lock_held(bigint[], uuid[]) IS 'Locks, in id order, the running jobs held under the given tokens; returns their ids.';

-- lease_extend: the heartbeat. Pushes the lease deadline of every listed unit still held
-- under that token to now + p_lease_ms; returns those rows (with cancel_requested, so a
-- worker learns of a cancel even if it missed the NOTIFY). A unit missing from the result
-- has lost its lease: its worker must stop it and its result will be rejected.
CREATE OR REPLACE FUNCTION lease_extend(p_job_ids bigint[], p_tokens uuid[], p_lease_ms integer DEFAULT 30000)
RETURNS TABLE (job_id bigint, cancel_requested boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
  UPDATE jobs j SET available_at = now() + p_lease_ms * interval '1 millisecond', updated_at = now()
  FROM _lock_held(p_job_ids, p_tokens) l(id) WHERE j.id = l.id
  RETURNING j.id, j.cancel_requested;
$$;
COMMENT ON FUNCTION lease_extend(bigint[], uuid[], integer) IS
  'Heartbeat: extends leases still held under the given tokens; returns the ones kept.';

-- lease_release: gives units back (graceful shutdown past its grace period). They are
-- pending and runnable at once, the attempt is not counted, workers are woken.
CREATE OR REPLACE FUNCTION lease_release(p_job_ids bigint[], p_tokens uuid[])
RETURNS TABLE (job_id bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
  v_job jobs;
BEGIN
  FOR v_job IN
    UPDATE jobs j SET status = 'pending', available_at = now(), attempt = greatest(j.attempt - 1, 0),
                      lease_token = NULL, locked_by = NULL, updated_at = now()
    FROM _lock_held(p_job_ids, p_tokens) l(id) WHERE j.id = l.id
    RETURNING j.*
  LOOP
    PERFORM _notify_ready(v_job.queue);
    job_id := v_job.id;
    RETURN NEXT;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION lease_release(bigint[], uuid[]) IS
  'Returns held units to the queue, runnable now, without counting the attempt.';
