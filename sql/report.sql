-- Reports of finished attempts, in batches. Both functions first lock every job of the
-- batch that is still held under its presented token, in id order (_lock_held, the order
-- lease_extend and lease_release use too), so reports and heartbeats never deadlock.
-- A report is idempotent: a batch retried after its answer was lost finds its jobs moved
-- on under the same token (or the continuation's derived token) and answers accepted
-- without applying anything twice. A stale worker (its lease expired and the unit was
-- claimed again) is answered accepted = false and changes nothing. Both wake the workers
-- of limited queues whose units they stopped (_notify_limited: room was freed).

-- step_complete: reports succeeded units. p_results[i] is the unit's result (JSON, stored
-- on the step; at most MAX_JSON_BYTES, and all the job's results together at most
-- MAX_JOB_RESULTS_BYTES), p_compensations[i] the compensation the worker's
-- step definition gives the step ({"name", "args"}; one set at enqueue wins). When the
-- job's next unit is runnable now and p_names (the reporting worker's handlers) covers it,
-- it is leased to the same worker in the same statement and returned in `next`, unless
-- its queue's fleet-wide limits do not allow it to start now (_queue_take_one) or the
-- report's continuations already carry MAX_CLAIM_RESULTS_BYTES of results.
CREATE OR REPLACE FUNCTION step_complete(
  p_job_ids       bigint[],
  p_tokens        uuid[],
  p_results       jsonb[]  DEFAULT NULL,
  p_compensations jsonb[]  DEFAULT NULL,
  p_worker        text     DEFAULT NULL,
  p_names         text[]   DEFAULT NULL,
  p_queues        text[]   DEFAULT NULL,
  p_lease_ms      integer  DEFAULT NULL
)
RETURNS TABLE (job_id bigint, accepted boolean, job_status text, next unit)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
-- Every statement here looks jobs and steps up by id. Plans are kept for the session
-- (force_generic_plan): a plan made per call for array parameters (PL/pgSQL's default,
-- kept whenever it looks cheaper than the generic one, which it always does for a short
-- array) cost more than the work of a one-unit report. Without seq scans, hash or merge
-- joins that plan stays an index walk even when it was made while the tables were empty
-- or their statistics stale (seen: a hash join over a seq scan of jobs, cached for the
-- session, on every report). JIT off: those settings inflate the cost of any other plan.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
  v_now   timestamptz := engine_now();
  v_lease interval    := _lease(p_lease_ms);
  v_held  bigint[];
  v_fast  bigint[];
  v_last  bigint[];
  v_bad   bigint;
  v_results boolean;
  v_in    record;
  v_job   jobs;
  v_done  text[];
  v_names text[]     := p_names;  -- the handlers continuations may be leased for
  v_bytes bigint := 0;  -- results carried by the continuations returned so far
BEGIN
  IF cardinality(p_job_ids) IS DISTINCT FROM cardinality(p_tokens)
     OR cardinality(p_results) > cardinality(p_job_ids)
     OR cardinality(p_compensations) > cardinality(p_job_ids) THEN
    PERFORM _bad_input('step_complete: p_job_ids and p_tokens differ in length, or p_results/p_compensations are longer');
  END IF;
  -- Check every result and compensation before changing anything: one bad entry fails the
  -- call, and the worker then reports that unit alone as a failure. (Most reports carry
  -- neither: then nothing is checked.)
  PERFORM _compensation_of(c) FROM unnest(p_compensations) c WHERE c IS NOT NULL;
  v_results := EXISTS (SELECT 1 FROM unnest(p_results) r WHERE r IS NOT NULL);
  IF v_results THEN
    SELECT t.id INTO v_bad FROM unnest(p_job_ids, p_results) AS t(id, res) WHERE NOT _json_fits(t.res) LIMIT 1;
    IF v_bad IS NOT NULL THEN
      PERFORM _bad_input(format('job %s: the step''s result is over %s bytes', v_bad, _limit_max_json_bytes()));
    END IF;
  END IF;

  -- All-last-steps fast path: a batch of nothing but jobs' last forward steps, held under
  -- their tokens, not cancelled and with no results (a drain of one-step jobs) is finished
  -- by one UPDATE that checks each token and locks each row as it writes it, in id order,
  -- instead of locking every row first: one WAL record and one row visit per job fewer.
  -- The batch is classified first without locks; any other unit sends the whole batch the
  -- way below, which locks every job first, in id order, so a report never takes its
  -- locks in another order than a heartbeat of the same jobs. (A job that changes between
  -- the look and the UPDATE, say cancelled, is not finished by it and goes that way too.)
  IF NOT v_results AND NOT EXISTS (
       SELECT 1 FROM unnest(p_job_ids, p_tokens) AS t(id, token) LEFT JOIN jobs j ON j.id = t.id
       WHERE j.id IS NULL OR j.lease_token IS DISTINCT FROM t.token OR j.status <> 'running'
          OR j.phase <> 'forward' OR j.cancel_requested OR j.current_step + 1 <> j.step_count) THEN
    v_fast := ARRAY(SELECT f.id FROM _job_finish(p_job_ids, 'succeeded', v_now, true, p_tokens) f ORDER BY f.id);
    IF cardinality(v_fast) = cardinality(p_job_ids) THEN
      RETURN QUERY SELECT f, true, 'succeeded'::text, NULL::unit FROM unnest(v_fast) f;
      PERFORM _notify_done(ARRAY(SELECT f || ':succeeded' FROM unnest(v_fast) f));
      PERFORM _notify_limited(v_fast);
      RETURN;
    END IF;
  END IF;
  -- (Jobs the UPDATE above finished are no longer running: _lock_held leaves them out.)
  v_held := ARRAY(SELECT l.id FROM _lock_held(p_job_ids, p_tokens) l(id));
  -- Every unit of a job carries the job's stored results (_unit_of), so their total is
  -- bounded: a unit always fits in one jsonb value (255 MB) and in a worker's memory.
  IF v_results THEN
  SELECT t.id INTO v_bad
  FROM unnest(p_job_ids, p_results) AS t(id, res) JOIN jobs j ON j.id = t.id
  WHERE t.res IS NOT NULL AND t.id = ANY (v_held) AND j.phase = 'forward'
    AND octet_length(t.res::text) + coalesce((SELECT sum(octet_length(s.result::text)) FROM steps s
                                              WHERE s.job_id = j.id AND s.idx <> j.current_step), 0)
        > _limit_max_job_results_bytes()
  LIMIT 1;
  IF v_bad IS NOT NULL THEN
    PERFORM _bad_input(format('job %s: the step''s result would bring the job''s results over %s bytes',
                              v_bad, _limit_max_job_results_bytes()));
  END IF;
  END IF;

  -- Fast path, set-based: the usual case of a job's last forward step, not cancelled (the
  -- job succeeds, so that step's compensation can never run and is not recorded).
  WITH fast AS (
    SELECT j.id, j.current_step, j.attempt, t.res
    FROM jobs j JOIN unnest(p_job_ids, p_results) AS t(id, res) ON t.id = j.id
    WHERE j.id = ANY (v_held) AND j.phase = 'forward' AND NOT j.cancel_requested
      AND j.current_step + 1 = j.step_count
  ), steps_done AS (
    -- Only a step with a result is written: step_overview shows the last step of a
    -- succeeded job as succeeded (attempts and time from the job row), which saves a row
    -- update per job on the hottest path.
    UPDATE steps s SET status = 'succeeded', attempts = f.attempt, finished_at = v_now, result = f.res
    FROM fast f WHERE s.job_id = f.id AND s.idx = f.current_step AND f.res IS NOT NULL
  )
  SELECT array_agg(f.id) INTO v_last FROM fast f;
  IF v_last IS NOT NULL THEN
    PERFORM _job_finish(v_last, 'succeeded', v_now, true);
  END IF;
  v_fast := v_fast || v_last;
  IF v_fast IS NOT NULL THEN
    v_done := ARRAY(SELECT f || ':succeeded' FROM unnest(v_fast) f);
    RETURN QUERY SELECT f, true, 'succeeded'::text, NULL::unit FROM unnest(v_fast) f;
  END IF;

  -- Continuations are leased below (_job_next_unit, which applies fleet-wide limits). A
  -- queue_limit_set under way (it holds the limits lock) may be adding a limit this
  -- statement cannot see yet: then nothing is leased on, and the next units wait pending
  -- for a claim, which waits for the new limit.
  IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(_limits_lock_key()) THEN
    v_names := '{}';
  END IF;
  FOR v_in IN SELECT t.id, t.token, t.res, _compensation_of(t.comp) AS comp
              FROM unnest(p_job_ids, p_tokens, p_results, p_compensations) AS t(id, token, res, comp)
              WHERE v_fast IS NULL OR t.id <> ALL (v_fast)
              ORDER BY t.id LOOP
    job_id := v_in.id; accepted := false; job_status := NULL; next := NULL;
    SELECT * INTO v_job FROM jobs WHERE id = v_in.id;
    IF v_in.id = ANY (v_held) THEN
      v_job := _unit_succeeded(v_job, v_in.res, v_in.comp, v_now, p_worker, v_names, p_queues, v_lease);
      IF v_job.lease_token = v_in.token THEN
        -- Nothing was leased on: mark the token as spent by a success (see _done_token).
        UPDATE jobs SET lease_token = _done_token(v_in.token) WHERE id = v_in.id RETURNING * INTO v_job;
      END IF;
      accepted := true;
      IF _is_final(v_job.status) THEN
        v_done := v_done || (v_job.id || ':' || v_job.status);
      END IF;
    ELSIF v_job.status = 'running' AND v_job.lease_token = _next_token(v_in.token)
          AND v_job.locked_by IS NOT DISTINCT FROM p_worker THEN
      accepted := true; -- applied before; its continuation is still ours
    ELSIF v_job.status <> 'running' AND v_job.lease_token = _done_token(v_in.token) THEN
      accepted := true; -- applied before; the job moved on without us
    END IF;
    IF accepted THEN
      IF v_job.status = 'running' AND v_job.locked_by IS NOT DISTINCT FROM p_worker THEN
        SELECT * INTO next FROM _unit_of(v_job);
        -- The continuations of one report carry at most MAX_CLAIM_RESULTS_BYTES of results
        -- together (as a claim's units do): one past that is given back, pending and
        -- runnable now, for a claim. (A start it took in a rate-limited queue stays counted:
        -- the queue starts fewer, never more.)
        IF next.results IS NOT NULL THEN
          v_bytes := v_bytes + octet_length(next.results::text);
          IF v_bytes > _limit_max_claim_results_bytes() THEN
            UPDATE jobs SET status = 'pending', attempt = attempt - 1, available_at = v_now,
                            lease_token = _done_token(v_in.token), locked_by = NULL
            WHERE id = v_in.id RETURNING * INTO v_job;
            PERFORM _notify_ready(v_job.queue);
            next := NULL;
          END IF;
        END IF;
      END IF;
      job_status := v_job.status;
    END IF;
    RETURN NEXT;
  END LOOP;
  PERFORM _notify_done(v_done);
  PERFORM _notify_limited(v_held || v_fast);
END;
$$;
COMMENT ON FUNCTION step_complete(bigint[], uuid[], jsonb[], jsonb[], text, text[], text[], integer) IS
  'Applies succeeded results whose lease token is current (idempotent; stale ones: accepted=false); may lease the next unit to the same worker.';

-- step_fail: reports failed attempts (or "not yet"), in a batch, under the same lease and
-- idempotency rules as step_complete. p_reports[i] is described at _unit_failed. outcome
-- says what the engine did: retry | not_yet | failed | compensating | compensated |
-- cancelled (for a report applied before, what the job is doing now).
CREATE OR REPLACE FUNCTION step_fail(p_job_ids bigint[], p_tokens uuid[], p_reports jsonb[])
RETURNS TABLE (job_id bigint, accepted boolean, job_status text, outcome text, next_run_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
-- Plans kept for the session, and index walks only: see step_complete.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
  v_now   timestamptz := engine_now();
  v_held  bigint[];
  v_in    record;
  v_job   jobs;
  v_phase text;
  v_done  text[];
BEGIN
  IF cardinality(p_job_ids) IS DISTINCT FROM cardinality(p_tokens)
     OR cardinality(p_job_ids) IS DISTINCT FROM cardinality(p_reports) THEN
    PERFORM _bad_input('step_fail: p_job_ids, p_tokens and p_reports differ in length');
  END IF;
  -- Validate every entry's compensation before changing anything (see step_complete).
  PERFORM _compensation_of(r -> 'compensate') FROM unnest(p_reports) r WHERE r ? 'compensate';
  v_held := ARRAY(SELECT l.id FROM _lock_held(p_job_ids, p_tokens) l(id));

  FOR v_in IN
    SELECT t.id, t.token, t.report FROM unnest(p_job_ids, p_tokens, p_reports) AS t(id, token, report)
    ORDER BY t.id
  LOOP
    job_id := v_in.id; accepted := false; job_status := NULL; outcome := NULL; next_run_at := NULL;
    SELECT * INTO v_job FROM jobs WHERE id = v_in.id;
    IF v_in.id = ANY (v_held) THEN
      v_phase := v_job.phase;
      v_job := _unit_failed(v_job, v_in.report, v_now);
      accepted := true;
      outcome := CASE
        WHEN _is_final(v_job.status) THEN v_job.status
        WHEN v_phase = 'forward' AND v_job.phase = 'compensate' THEN 'compensating'
        WHEN jsonb_typeof(v_in.report -> 'retry_after_ms') = 'number' THEN 'not_yet'
        ELSE 'retry' END;
      IF _is_final(v_job.status) THEN
        v_done := v_done || (v_job.id || ':' || v_job.status);
      END IF;
    ELSIF v_job.status <> 'running' AND v_job.lease_token = v_in.token THEN
      accepted := true; -- applied before (a retried report): say what the job does now
      outcome := CASE WHEN _is_final(v_job.status) THEN v_job.status
                      WHEN v_job.phase = 'compensate' THEN 'compensating' ELSE 'retry' END;
    END IF;
    IF accepted THEN
      job_status := v_job.status;
      next_run_at := CASE WHEN v_job.status = 'pending' THEN v_job.available_at END;
    END IF;
    RETURN NEXT;
  END LOOP;
  PERFORM _notify_done(v_done);
  PERFORM _notify_limited(v_held);
END;
$$;
COMMENT ON FUNCTION step_fail(bigint[], uuid[], jsonb[]) IS
  'Applies failed attempts whose lease token is current (idempotent): backoff retry, not-yet, or end of the forward path.';
