-- Metrics the worker's OpenTelemetry gauges read (src/telemetry/metrics.ts): one call per
-- database per metrics collection, never per step.

-- queue_metrics: per queue with unfinished jobs, how many can run now (pending and due, or
-- running with an expired lease: the same predicate as queue_stats.runnable), how many
-- wait for a later time (scheduled, backoff), how many are running under a live lease,
-- and how long the oldest runnable one has waited (ms, on the engine's clock; 0 when none).
-- Reads only unfinished jobs, through the jobs_claimable partial index (the planner is
-- kept off a sequential scan, which would read every finished job too).
CREATE OR REPLACE FUNCTION queue_metrics()
RETURNS TABLE (queue text, runnable bigint, scheduled bigint, running bigint, oldest_runnable_age_ms double precision)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
SET enable_seqscan = off
SET jit = off
AS $$
  WITH c AS MATERIALIZED (SELECT engine_now() AS now)
  SELECT j.queue,
         count(*) FILTER (WHERE j.available_at <= c.now AND (j.status = 'pending' OR j.available_at < c.now)),
         count(*) FILTER (WHERE j.status = 'pending' AND j.available_at > c.now),
         count(*) FILTER (WHERE j.status = 'running' AND j.available_at >= c.now),
         coalesce(extract(epoch FROM max(c.now - j.available_at)
                                 FILTER (WHERE j.available_at <= c.now
                                           AND (j.status = 'pending' OR j.available_at < c.now))) * 1000, 0)::double precision
  FROM jobs j CROSS JOIN c
  WHERE j.status IN ('pending', 'running')
  GROUP BY j.queue;
$$;
COMMENT ON FUNCTION queue_metrics() IS
  'Per queue with unfinished jobs: runnable now, scheduled later, running, and the oldest runnable job''s wait (ms).';
