-- Maintenance that needs one actor per database: expiring the deadlines of jobs nobody
-- claims, pruning finished jobs after their retention, deleting dead worker rows. Every
-- worker calls maintenance_run on a timer; the first to take the schema's advisory lock
-- does the work and the others return at once.

-- maintenance_run: one round of maintenance, each part bounded by p_batch rows
-- (1..MAX_MAINTENANCE_BATCH, default MAINTENANCE_BATCH), so no call holds locks for long;
-- a caller that sees a full batch calls again. Leadership is
-- pg_try_advisory_xact_lock(hashtextextended('stepping.maintenance:<schema>', 0)): a
-- transaction lock, released at commit, so it works through a transaction-pooling
-- PgBouncer (no session state) and a crashed leader never holds it. Without the lock the
-- call returns leader = false and does nothing.
--   expired: unfinished forward-phase jobs whose deadline has passed and that nobody holds
--     (pending, or running with an expired lease: its worker is gone) end their forward
--     path as step_claim would settle them (compensating when they can, else failed; a
--     pending cancel ends them cancelled). A job whose current step ran without a report
--     and has no compensation the engine knows is left to a live worker that runs that
--     step, if there is one (_end_needs_worker: its claim hands the unit over, and
--     the worker's failure report names the compensation of the step's definition).
--     Locks: each job row (SKIP LOCKED), then its steps, the order of every engine function.
--   pruned: job_prune(p_retention) of succeeded, compensated and cancelled jobs (failed
--     jobs wait for a person); none when p_prune is false. p_retention NULL: RETENTION_MS.
--   workers_removed: worker rows dead for three of their heartbeat periods.
CREATE OR REPLACE FUNCTION maintenance_run(
  p_retention interval DEFAULT NULL,
  p_prune     boolean  DEFAULT true,
  p_batch     integer  DEFAULT NULL
)
RETURNS TABLE (leader boolean, expired integer, pruned integer, workers_removed integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_now       timestamptz := engine_now();
  v_retention interval    := coalesce(p_retention, _default_retention_ms() * interval '1 millisecond');
  v_batch     integer     := coalesce(p_batch, _default_maintenance_batch());
  v_job       jobs;
  v_done      text[];
BEGIN
  IF v_retention < interval '0' THEN
    PERFORM _bad_input('maintenance_run: p_retention must not be negative');
  END IF;
  IF v_batch < 1 OR v_batch > _limit_max_maintenance_batch() THEN
    PERFORM _bad_input(format('maintenance_run: p_batch must be from 1 to %s', _limit_max_maintenance_batch()));
  END IF;
  leader := pg_catalog.pg_try_advisory_xact_lock(
              pg_catalog.hashtextextended('stepping.maintenance:' || _schema_name(), 0));
  expired := 0;
  pruned := 0;
  workers_removed := 0;
  IF NOT leader THEN
    RETURN NEXT;
    RETURN;
  END IF;

  FOR v_job IN
    SELECT * FROM jobs j
    WHERE j.deadline <= v_now AND j.status IN ('pending', 'running') AND j.phase = 'forward'
      AND (j.status = 'pending' OR j.available_at < v_now)
      AND ((j.cancel_requested AND NOT j.cancel_compensate) OR NOT _end_needs_worker(j, 0)
           OR NOT EXISTS (SELECT 1 FROM workers w
                          WHERE _worker_live(w.heartbeat_at, w.heartbeat_period_ms, v_now)
                            AND j.step_name = ANY (w.step_names) AND (w.queues IS NULL OR j.queue = ANY (w.queues))))
    ORDER BY j.deadline
    LIMIT v_batch
    FOR UPDATE SKIP LOCKED
  LOOP
    IF v_job.status = 'running' THEN
      -- Its worker's lease lapsed: drop the token so a late report from it is rejected.
      UPDATE jobs SET lease_token = NULL, locked_by = NULL WHERE id = v_job.id RETURNING * INTO v_job;
    END IF;
    IF v_job.cancel_requested THEN
      v_job := _forward_stop(v_job, v_job.current_step, _step_ran(v_job, 0), v_job.cancel_compensate, 'cancelled',
                             v_now, NULL, NULL, NULL, NULL);
    ELSE
      v_job := _forward_fail(v_job, jsonb_build_object('message', 'deadline passed', 'deadline', v_job.deadline),
                             _step_ran(v_job, 0), v_job.attempt, v_now);
    END IF;
    IF _is_final(v_job.status) THEN
      v_done := v_done || (v_job.id || ':' || v_job.status);
    END IF;
    expired := expired + 1;
  END LOOP;
  PERFORM _notify_done(v_done);

  IF coalesce(p_prune, true) THEN
    pruned := job_prune(v_retention, ARRAY['succeeded', 'compensated', 'cancelled'], v_batch);
  END IF;

  WITH d AS (DELETE FROM workers w WHERE NOT _worker_live(w.heartbeat_at, w.heartbeat_period_ms, v_now) RETURNING 1)
  SELECT count(*) INTO workers_removed FROM d;
  RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION maintenance_run(interval, boolean, integer) IS
  'One bounded round of leader-only maintenance: expire unclaimed jobs past their deadline, prune finished jobs, drop dead workers.';
