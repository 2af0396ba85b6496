-- _claim_settle: settles a job step_claim picked that was cancelled while its worker was
-- gone or passed its deadline, instead of handing it out; its current step is compensated
-- only if it had run before (attempts before this claim). Returns 'id:status' when the job
-- is now final (for _notify_done), else NULL.
CREATE OR REPLACE FUNCTION _claim_settle(p_job jobs, p_now timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_job jobs;
BEGIN
  IF p_job.cancel_requested THEN
    v_job := _forward_stop(p_job, p_job.current_step, _step_ran(p_job, 1), p_job.cancel_compensate, 'cancelled',
                           p_now, NULL, NULL, NULL, NULL);
  ELSE
    v_job := _forward_fail(p_job, jsonb_build_object('message', 'deadline passed', 'deadline', p_job.deadline),
                           _step_ran(p_job, 1), p_job.attempt - 1, p_now);
  END IF;
  RETURN CASE WHEN _is_final(v_job.status) THEN v_job.id || ':' || v_job.status END;
END;
$$;
COMMENT ON FUNCTION _claim_settle(jobs, timestamptz) IS
  'Settles a claimed job that was cancelled or passed its deadline; ''id:status'' when it is now final.';

-- _end_needs_worker: whether a forward unit past its job's deadline (or cancelled with
-- compensation) should be ended by a worker that runs its step, failing it unrun, rather
-- than settled in SQL: when its step ran before (an attempt that ended without a report:
-- its worker died; p_claims, the caller's own claims, not counted) and the engine knows
-- no compensation for it. Its
-- compensation may be named by the step's definition, which only a worker has; the
-- worker's failure report stores it, so the step that ran is compensated.
CREATE OR REPLACE FUNCTION _end_needs_worker(p_job jobs, p_claims integer) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT _step_ran(p_job, p_claims)
     AND EXISTS (SELECT 1 FROM steps s
                 WHERE s.job_id = p_job.id AND s.idx = p_job.current_step AND s.compensate_name IS NULL);
$$;
COMMENT ON FUNCTION _end_needs_worker(jobs, integer) IS
  'Whether a unit past its deadline is left to a worker of its step (it ran; its compensation is unknown here).';

-- _claim_lease: leases the jobs step_claim picked and locked (p_ids) to p_worker for
-- p_lease, each with a fresh random token and one more attempt, and returns their units in
-- claim order (priority, then id). A job that was cancelled while its worker was gone or
-- passed its deadline is settled instead of being returned (_claim_settle; a unit whose
-- compensation only the worker may know is returned for the worker to fail unrun, with
-- cancel_requested, or deadline_in_ms 0: _end_needs_worker); those now
-- final are announced (_notify_done, one NOTIFY per call). Locks: none beyond the
-- caller's. The one lease statement of both paths of step_claim; it runs under
-- step_claim's planner settings (a function's SET stays in force for what it calls).
CREATE OR REPLACE FUNCTION _claim_lease(p_ids bigint[], p_worker text, p_now timestamptz, p_lease interval)
RETURNS SETOF unit
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_row     record;
  v_settled text;
  v_done    text[];
BEGIN
  FOR v_row IN
    WITH leased AS (
      UPDATE jobs j SET status = 'running', available_at = p_now + p_lease,
                        lease_token = gen_random_uuid(), attempt = j.attempt + 1, locked_by = p_worker,
                        claimed_at = p_now, updated_at = p_now
      WHERE j.id = ANY (p_ids)
      RETURNING j
    )
    SELECT l.j AS job, u AS unit,
           (l.j).phase = 'forward'
           AND CASE WHEN (l.j).cancel_requested
                      THEN NOT ((l.j).cancel_compensate AND _end_needs_worker(l.j, 1))
                    WHEN (l.j).deadline <= p_now THEN NOT _end_needs_worker(l.j, 1)
                    ELSE false END AS settle
    FROM leased l CROSS JOIN LATERAL _unit_of(l.j) u
    ORDER BY (l.j).priority, (l.j).id
  LOOP
    IF v_row.settle THEN
      v_settled := _claim_settle(v_row.job, p_now);
      IF v_settled IS NOT NULL THEN
        v_done := v_done || v_settled;
      END IF;
    ELSE
      RETURN NEXT v_row.unit;
    END IF;
  END LOOP;
  PERFORM _notify_done(v_done);
END;
$$;
COMMENT ON FUNCTION _claim_lease(bigint[], text, timestamptz, interval) IS
  'Leases the jobs step_claim locked and returns their units in claim order; settles cancelled or overdue ones instead.';

-- _claim_budget: the leading ids of p_ids (claim order) whose units' results (as _unit_of
-- builds and PostgreSQL prints them) together fit in p_budget bytes (what is left of the
-- claim's MAX_CLAIM_RESULTS_BYTES), and the first when p_first (the claim has handed out
-- nothing yet, so a unit over the budget alone still goes): every unit but a job's first
-- step carries its job's results, so without
-- this one claim of hundreds of units could hand a worker gigabytes at once. Rows left
-- out stay locked by the caller until it commits, unchanged, and are claimable again after.
CREATE OR REPLACE FUNCTION _claim_budget(p_ids bigint[], p_budget bigint, p_first boolean) RETURNS bigint[]
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(array_agg(x.id ORDER BY x.ord), '{}')
  FROM (SELECT t.id, t.ord, sum(coalesce(b.bytes, 0)) OVER (ORDER BY t.ord) AS total
        FROM unnest(p_ids) WITH ORDINALITY AS t(id, ord)
        JOIN jobs j ON j.id = t.id
        LEFT JOIN LATERAL (SELECT octet_length(jsonb_object_agg(r.idx, r.result)::text) AS bytes FROM steps r
                           WHERE r.job_id = j.id AND r.result IS NOT NULL
                             AND (j.current_step > 0 OR j.phase = 'compensate')) b ON true) x
  WHERE (x.ord = 1 AND p_first) OR x.total <= p_budget;
$$;
COMMENT ON FUNCTION _claim_budget(bigint[], bigint, boolean) IS
  'The leading ids whose jobs'' results together fit in p_budget bytes (and the first when p_first).';

-- _name_set: p_names as a jsonb object whose keys are the names, for a list longer than 16
-- (NULL for a shorter one). Claims compare each row they walk past with the worker's step
-- names; `= ANY (p_names)` does that one name at a time (an array parameter is not hashed),
-- so a worker with thousands of names behind many due jobs of other steps took seconds per
-- claim (3,000 names, 50,000 such jobs: 6–7 s); `set ? name` is a binary search (70–100 ms
-- there). A short list keeps `= ANY`, as cheap as it gets for a few names.
CREATE OR REPLACE FUNCTION _name_set(p_names text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN cardinality(p_names) > 16
              THEN (SELECT jsonb_object_agg(n, true) FROM unnest(p_names) n WHERE n IS NOT NULL) END;
$$;
COMMENT ON FUNCTION _name_set(text[]) IS 'A long list of step names as a jsonb set (keys), for O(log n) membership tests; NULL for a short list.';

-- step_claim: leases up to p_limit runnable units (steps or compensations) to p_worker.
-- Runnable: pending and due, or running with an expired lease (its worker died), whose
-- handler name is in p_names (a worker never claims what it cannot run) and whose queue
-- is in p_queues (NULL: every queue). Order: priority (lower first), then due time, so
-- recovered work comes before new work. Locks: the job rows, FOR UPDATE SKIP LOCKED, so
-- concurrent claimers never wait on or take the same job; and the limits lock, shared
-- (claims wait only while a queue_limit_set commits). Each lease gets a
-- fresh random token; reports must present it. A job past its deadline, or cancelled
-- while its worker was gone, is settled here instead of being handed out (_claim_settle).
-- Fleet-wide limits (sql/limits.sql): with no limited queue in scope (the queue_limits
-- table is read once) the claim is one scan below and the lease (_claim_lease). Otherwise
-- each limited queue's limit row is locked first (FOR UPDATE SKIP LOCKED: a row another
-- claimer holds makes this claim leave that queue alone) and its room counted; then one
-- scan in claim order, as without limits, skips the queues with no room and keeps at most
-- the room of each other limited queue (rows picked beyond it are not leased, and the
-- scan is repeated, without the queues that are now full, while the claim is short).
-- Either way the units handed out carry at most MAX_CLAIM_RESULTS_BYTES of their jobs'
-- results together (_claim_budget), so a claim can come back short of p_limit.
-- A per-key rate (rate_per_key) is counted the same way for each rate key: the scan skips
-- the keys that used their rate, so a key flooding the queue never holds back the others.
-- A unit of a limited queue says so (fleet_limited): it counts against the limits from now
-- on, so its worker does not claim ahead there.
CREATE OR REPLACE FUNCTION step_claim(
  p_worker   text,
  p_names    text[],
  p_queues   text[]  DEFAULT NULL,
  p_limit    integer DEFAULT 1,
  p_lease_ms integer DEFAULT NULL
)
RETURNS SETOF unit
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
-- Always walk jobs_claimable in claim order and stop after p_limit rows. With the stale
-- statistics of a freshly bulk-loaded table the planner would otherwise pick a bitmap
-- scan and sort every runnable row on each claim (measured: 27 ms against 2 ms at 40k rows).
SET enable_bitmapscan = off
SET enable_seqscan = off
-- Those settings inflate the cost of any plan that would scan; JIT would then compile
-- (hundreds of ms) a claim that runs in well under a millisecond.
SET jit = off
-- With those settings the only plan is that index walk, so planning it again on every
-- call (a custom plan per set of values, PL/pgSQL's default for its first calls and
-- whenever it judges them cheaper) buys nothing: it took half of a one-unit claim.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now    timestamptz := engine_now();
  v_lease  interval    := _lease(p_lease_ms);
  v_worker text        := left(coalesce(p_worker, ''), _limit_max_name_length());
  v_unit   unit;
  -- p_names as a set, when long (_name_set is a SQL function, planned on each call: 55 of
  -- a one-unit claim's 300 µs when called for a short list too).
  v_names  jsonb       := CASE WHEN cardinality(p_names) > 16 THEN _name_set(p_names) END;
  v_ids    bigint[];        -- the rows picked, without limits
  v_later  boolean;         -- some of them past their job's first step (they carry results)
  v_lq     text[];          -- limited queues in scope
  v_limits queue_limits[];  -- their limit rows
  v_locked boolean[];       -- false where another claimer holds the row (no room then)
  v_limit  queue_limits;
  v_room   integer[];       -- units each may still start in this claim
  v_full   text[];          -- those with no room: not scanned
  v_tq     text[];          -- queue and job of each unit leased in a limited queue
  v_tid    bigint[];
  v_pkq    text[];          -- per-key rate-limited queues whose limit row this claim holds
  v_pkc    integer[];       -- their rate_count
  v_kq     text[];          -- (queue, rate key or '') of each key with starts in the window
  v_kk     text[];
  v_kroom  integer[];       -- its room left (counting this claim's leases)
  v_kfull  jsonb[] := '{}'; -- [queue, rate key] of the keys with no room: not scanned
  v_nfull  integer;         -- queues and keys excluded by the last scan
  v_count  integer := 0;
  v_bytes  bigint  := 0;    -- results carried by the units handed out so far
  v_pass   integer := 0;
  v_i      integer;
BEGIN
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > _limit_max_claim_batch() THEN
    PERFORM _bad_input(format('step_claim needs p_limit from 1 to %s', _limit_max_claim_batch()));
  END IF;
  -- A limit being set now counts what this claim leases, or this claim sees the limit.
  PERFORM pg_catalog.pg_advisory_xact_lock_shared(_limits_lock_key());
  SELECT array_agg(l.queue ORDER BY l.queue) INTO v_lq FROM queue_limits l
  WHERE p_queues IS NULL OR l.queue = ANY (p_queues);

  IF v_lq IS NULL THEN
    -- One statement picks and locks the runnable rows in claim order; _claim_lease leases
    -- them and builds the units.
    -- (array_agg keeps the scan's order; _claim_lease orders the units again anyway. An
    -- ORDER BY here would sort what is sorted: measured 0.1 ms more per claim of 100.)
    SELECT array_agg(p.id), bool_or(p.later) INTO v_ids, v_later
    FROM (SELECT j.id, j.current_step > 0 OR j.phase = 'compensate' AS later
          FROM jobs j
          WHERE j.status IN ('pending', 'running') AND j.available_at <= v_now
            AND CASE WHEN v_names IS NULL THEN j.step_name = ANY (p_names) ELSE v_names ? j.step_name END
            AND (p_queues IS NULL OR j.queue = ANY (p_queues))
          ORDER BY j.priority, j.available_at, j.id
          LIMIT p_limit
          FOR UPDATE SKIP LOCKED) p;
    -- Units past a job's first step carry its results: keep the claim within its byte
    -- budget (a drain of first steps skips the look).
    IF v_later THEN
      v_ids := _claim_budget(v_ids, _limit_max_claim_results_bytes(), true);
    END IF;
    -- An empty claim (another worker took the work first) skips the lease statement.
    IF cardinality(v_ids) > 0 THEN
      RETURN QUERY SELECT * FROM _claim_lease(v_ids, v_worker, v_now, v_lease);
    END IF;
    RETURN;
  END IF;

  -- Limited queues in scope: lock their rows (in name order), count their room.
  FOR v_i IN 1 .. cardinality(v_lq) LOOP
    SELECT * INTO v_limit FROM queue_limits WHERE queue = v_lq[v_i] FOR UPDATE SKIP LOCKED;
    v_locked[v_i] := FOUND;
    v_limits[v_i] := v_limit;
    v_room[v_i] := CASE WHEN FOUND THEN _queue_room(v_limit, v_now, NULL) ELSE 0 END;
    IF FOUND AND v_limit.rate_per_key THEN
      v_pkq := v_pkq || v_limit.queue;
      v_pkc := v_pkc || v_limit.rate_count;
    END IF;
  END LOOP;
  LOOP
    v_full := ARRAY(SELECT t.q FROM unnest(v_lq, v_room) AS t(q, r) WHERE t.r <= 0);
    IF v_pkq IS NOT NULL THEN
      -- Each rate key's room: its starts in the window (_queue_room removed older ones)
      -- and this claim's leases so far. '' stands for no key ('' is not a valid key).
      SELECT array_agg(x.q), array_agg(x.k), array_agg(x.room),
             coalesce(array_agg(jsonb_build_array(x.q, nullif(x.k, ''))) FILTER (WHERE x.room <= 0), '{}')
      INTO v_kq, v_kk, v_kroom, v_kfull
      FROM (SELECT u.q, u.k, (max(l.c) - count(*))::integer AS room
            FROM (SELECT s.queue AS q, coalesce(s.rate_key, '') AS k FROM queue_starts s
                  WHERE s.queue = ANY (v_pkq)
                  UNION ALL
                  SELECT j.queue, coalesce(j.rate_key, '') FROM jobs j
                  WHERE j.id = ANY (v_tid) AND j.queue = ANY (v_pkq)) u
            JOIN unnest(v_pkq, v_pkc) AS l(q, c) ON l.q = u.q
            GROUP BY u.q, u.k) x;
    END IF;
    -- Another scan only when the last one left rows behind for a queue or key that is
    -- full now (excluded from this one); otherwise it would pick the same rows again.
    EXIT WHEN v_pass > 0 AND (v_count >= p_limit OR cardinality(v_full) + cardinality(v_kfull) = v_nfull);
    v_nfull := cardinality(v_full) + cardinality(v_kfull);
    v_pass := v_pass + 1;
    FOR v_unit IN
      SELECT * FROM _claim_lease(_claim_budget(ARRAY(
        WITH picked AS (
          SELECT j.id, j.queue, j.rate_key, j.priority, j.available_at FROM jobs j
          WHERE j.status IN ('pending', 'running') AND j.available_at <= v_now
            AND CASE WHEN v_names IS NULL THEN j.step_name = ANY (p_names) ELSE v_names ? j.step_name END
            AND (p_queues IS NULL OR j.queue = ANY (p_queues))
            AND j.queue <> ALL (v_full)
            AND (cardinality(v_kfull) = 0 OR jsonb_build_array(j.queue, j.rate_key) <> ALL (v_kfull))
          ORDER BY j.priority, j.available_at, j.id
          LIMIT p_limit - v_count
          FOR UPDATE SKIP LOCKED
        )
        SELECT p.id FROM (
          SELECT p.id, p.queue, p.rate_key, p.priority, p.available_at,
                 row_number() OVER (PARTITION BY p.queue ORDER BY p.priority, p.available_at, p.id) AS rn,
                 row_number() OVER (PARTITION BY p.queue, p.rate_key ORDER BY p.priority, p.available_at, p.id) AS rk
          FROM picked p) p
        LEFT JOIN unnest(v_lq, v_room) AS t(q, r) ON t.q = p.queue
        LEFT JOIN unnest(v_pkq, v_pkc) AS pk(q, c) ON pk.q = p.queue
        LEFT JOIN unnest(v_kq, v_kk, v_kroom) AS k(q, k, r) ON k.q = p.queue AND k.k = coalesce(p.rate_key, '')
        WHERE (t.q IS NULL OR p.rn <= t.r)
          AND (pk.q IS NULL OR p.rk <= coalesce(k.r, pk.c))
        -- Claim order, which the byte budget keeps the head of.
        ORDER BY p.priority, p.available_at, p.id), _limit_max_claim_results_bytes() - v_bytes, v_count = 0),
        v_worker, v_now, v_lease)
    LOOP
      v_count := v_count + 1;
      -- Every pass draws on the one byte budget of the claim.
      IF v_unit.results IS NOT NULL THEN
        v_bytes := v_bytes + octet_length(v_unit.results::text);
      END IF;
      v_i := array_position(v_lq, v_unit.queue);
      v_unit.fleet_limited := v_i IS NOT NULL;
      IF v_i IS NOT NULL THEN
        v_room[v_i] := v_room[v_i] - 1;
        v_tq := v_tq || v_unit.queue;
        v_tid := v_tid || v_unit.job_id;
      END IF;
      RETURN NEXT v_unit;
    END LOOP;
    -- Picked rows beyond a queue's (or key's) room were left unleased: the loop scans
    -- again without the queues and keys that are now full, while the claim is short.
  END LOOP;
  FOR v_i IN 1 .. cardinality(v_lq) LOOP
    IF v_locked[v_i] AND v_lq[v_i] = ANY (v_tq) THEN
      PERFORM _queue_started(v_limits[v_i], ARRAY(SELECT t.id FROM unnest(v_tq, v_tid) AS t(q, id) WHERE t.q = v_lq[v_i]),
                             v_now);
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION step_claim(text, text[], text[], integer, integer) IS
  'Leases up to p_limit runnable units the worker has handlers for (SKIP LOCKED, priority then due time), fresh token each.';

-- next_due_in_ms: milliseconds until the earliest unit this worker could run becomes due
-- (a scheduled run, a backoff, a lease that will expire; <= 0: due now), NULL when there
-- is none, so an idle worker sleeps exactly until then instead of polling. Measured on
-- the engine's clock, so worker clock skew does not matter. A unit of a limited queue
-- that is at its limit is due no earlier than the queue may have room (_queue_free_at).
-- Every claim that comes back short asks this, so its cost must not grow with the units
-- waiting for later: with no limited queue in scope it walks jobs_claimable once per
-- priority present (the first matching row in due-time order at each, bounded by the
-- best found so far), and in one pass over the rest past 32 priorities. (As a SQL
-- aggregate over every matching row, 3,000 jobs scheduled an hour ahead cost each short
-- claim a read of all 3,000, and 20,000 about 13 ms of server time.) With a limited queue
-- in scope a unit's due time depends on its queue's and key's room, and the look-up is
-- one aggregate over the matching rows.
CREATE OR REPLACE FUNCTION next_due_in_ms(p_names text[], p_queues text[] DEFAULT NULL)
RETURNS double precision
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
-- As step_claim: index walks only, one plan kept for the session, no JIT.
SET enable_bitmapscan = off
SET enable_seqscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_now   timestamptz := engine_now();
  -- p_names as a set when long (_name_set), called only then: it is re-planned per call.
  v_names jsonb := CASE WHEN cardinality(p_names) > 16 THEN _name_set(p_names) END;
  v_prio  integer;
  v_at    timestamptz;
  v_best  timestamptz;
  v_walks integer := 0;
  v_ms    double precision;
BEGIN
  IF EXISTS (SELECT FROM queue_limits l WHERE p_queues IS NULL OR l.queue = ANY (p_queues)) THEN
    WITH blocked AS MATERIALIZED (
      SELECT l.queue, _queue_free_at(l, v_now) AS free_at FROM queue_limits l
      WHERE p_queues IS NULL OR l.queue = ANY (p_queues)
    ),
    -- Rate keys of per-key queues that used their rate: free when their oldest start in
    -- the window leaves it. '' stands for no key.
    keys_blocked AS MATERIALIZED (
      SELECT l.queue, coalesce(s.rate_key, '') AS rate_key,
             min(s.started_at) + l.rate_period_ms * interval '1 millisecond' AS free_at
      FROM queue_limits l JOIN queue_starts s ON s.queue = l.queue
      WHERE l.rate_per_key AND (p_queues IS NULL OR l.queue = ANY (p_queues))
        AND s.started_at > v_now - l.rate_period_ms * interval '1 millisecond'
      GROUP BY l.queue, l.rate_count, l.rate_period_ms, coalesce(s.rate_key, '')
      HAVING count(*) >= l.rate_count
    )
    SELECT extract(epoch FROM min(greatest(j.available_at, b.free_at, kb.free_at)) - v_now) * 1000 INTO v_ms
    FROM jobs j LEFT JOIN blocked b ON b.queue = j.queue
    LEFT JOIN keys_blocked kb ON kb.queue = j.queue AND kb.rate_key = coalesce(j.rate_key, '')
    WHERE j.status IN ('pending', 'running')
      AND CASE WHEN v_names IS NULL THEN j.step_name = ANY (p_names) ELSE v_names ? j.step_name END
      AND (p_queues IS NULL OR j.queue = ANY (p_queues));
    RETURN v_ms;
  END IF;

  -- No limited queue in scope: a unit is due at its available_at.
  v_prio := (SELECT min(j.priority) FROM jobs j WHERE j.status IN ('pending', 'running'));
  WHILE v_prio IS NOT NULL LOOP
    IF v_walks = 32 THEN
      -- Many distinct priorities: the rest in one pass rather than two walks each.
      SELECT min(j.available_at) INTO v_at FROM jobs j
      WHERE j.status IN ('pending', 'running') AND j.priority >= v_prio
        AND j.available_at < coalesce(v_best, 'infinity')
        AND CASE WHEN v_names IS NULL THEN j.step_name = ANY (p_names) ELSE v_names ? j.step_name END
        AND (p_queues IS NULL OR j.queue = ANY (p_queues));
      v_best := least(v_best, v_at);
      EXIT;
    END IF;
    -- This priority's first matching row in due-time order, if earlier than the best yet.
    SELECT j.available_at INTO v_at FROM jobs j
    WHERE j.status IN ('pending', 'running') AND j.priority = v_prio
      AND j.available_at < coalesce(v_best, 'infinity')
      AND CASE WHEN v_names IS NULL THEN j.step_name = ANY (p_names) ELSE v_names ? j.step_name END
      AND (p_queues IS NULL OR j.queue = ANY (p_queues))
    ORDER BY j.available_at
    LIMIT 1;
    IF FOUND THEN
      v_best := v_at;
    END IF;
    v_walks := v_walks + 1;
    v_prio := (SELECT min(j.priority) FROM jobs j WHERE j.status IN ('pending', 'running') AND j.priority > v_prio);
  END LOOP;
  RETURN extract(epoch FROM v_best - v_now) * 1000;
END;
$$;
COMMENT ON FUNCTION next_due_in_ms(text[], text[]) IS
  'Milliseconds until a unit the worker can run becomes claimable (NULL when none), for precise idle sleeps; a few index probes without limits in scope.';
