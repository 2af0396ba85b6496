-- _lock_held: locks the jobs still running under the given lease tokens, in id order (the
-- order step_complete, step_fail, lease_extend and lease_release all use, so reports and
-- heartbeats never deadlock), and returns their ids.
CREATE OR REPLACE FUNCTION _lock_held(p_job_ids bigint[], p_tokens uuid[])
RETURNS SETOF bigint
-- PL/pgSQL, not SQL: a SQL function that cannot be inlined (this one locks) is parsed and
-- planned on every call; PL/pgSQL keeps its plan for the session.
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  RETURN QUERY
  SELECT j.id FROM jobs j JOIN unnest(p_job_ids, p_tokens) AS t(id, token)
    ON j.id = t.id AND j.lease_token = t.token
  WHERE j.status = 'running'
  ORDER BY j.id
  FOR UPDATE OF j;
END;
$$;
COMMENT ON FUNCTION _lock_held(bigint[], uuid[]) IS 'Locks, in id order, the running jobs held under the given tokens; returns their ids.';

-- lease_extend: the heartbeat. Pushes the lease deadline of every listed unit still held
-- under that token to now + p_lease_ms (clamped to the engine's lease range); returns those
-- rows with cancel_requested (forward units only: a compensation runs to its end whatever
-- the cancel), so a worker learns of a cancel from the database itself (a cancel NOTIFY
-- only makes it heartbeat at once). A unit missing from the result has lost its lease: its
-- worker must stop it, and its report will be rejected. A lease that already expired is not
-- brought back in a queue with a max_running limit: its room may have gone to another unit.
CREATE OR REPLACE FUNCTION lease_extend(p_job_ids bigint[], p_tokens uuid[], p_lease_ms integer DEFAULT NULL)
RETURNS TABLE (job_id bigint, cancel_requested boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
  WITH t AS (SELECT engine_now() AS now)
  UPDATE jobs j SET available_at = t.now + _lease(p_lease_ms), updated_at = t.now
  FROM _lock_held(p_job_ids, p_tokens) l(id), t WHERE j.id = l.id
    AND (j.available_at > t.now
         OR NOT EXISTS (SELECT 1 FROM queue_limits q WHERE q.queue = j.queue AND q.max_running IS NOT NULL))
  RETURNING j.id, j.cancel_requested AND j.phase = 'forward';
$$;
COMMENT ON FUNCTION lease_extend(bigint[], uuid[], integer) IS
  'Heartbeat: extends leases still held under the given tokens; returns the ones kept, with cancel_requested.';

-- lease_release: gives units back (graceful shutdown past its grace period). They are
-- pending and runnable at once, the attempt is not counted, the token is dropped (a late
-- report under it is rejected), workers are woken.
CREATE OR REPLACE FUNCTION lease_release(p_job_ids bigint[], p_tokens uuid[])
RETURNS TABLE (job_id bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
  v_now timestamptz := engine_now();
  v_job jobs;
BEGIN
  FOR v_job IN
    UPDATE jobs j SET status = 'pending', available_at = v_now, attempt = greatest(j.attempt - 1, 0),
                      lease_token = NULL, locked_by = NULL, updated_at = v_now
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
