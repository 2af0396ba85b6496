-- The documented views are Stepping's stable plain-SQL API; the tables behind them are not.
-- Views are replaced in place on migrate (CREATE OR REPLACE): columns are only ever added
-- at the end, so views and grants of your own built on them survive upgrades. Each reads
-- the engine's clock once per query (the materialized `c`).

-- job_overview: one row per job. status adds 'compensating' (unfinished, running
-- compensations) to the table's statuses; the current_* columns describe the unit the job
-- is at (its step, or during compensation the step being compensated); output is the
-- result of the job's last step; rate_key, what a per-key rate limit counts it under.
CREATE OR REPLACE VIEW job_overview AS
SELECT j.id                                                  AS job_id,
       j.queue,
       j.priority,
       j.key,
       CASE WHEN j.phase = 'compensate' AND j.status IN ('pending', 'running') THEN 'compensating'
            ELSE j.status END                                AS status,
       j.phase,
       j.step_count,
       j.current_step,
       j.step_name                                           AS current_step_name,
       j.attempt                                             AS current_attempt,
       CASE WHEN j.status = 'pending' THEN j.available_at END AS run_at,
       CASE WHEN j.status = 'running' THEN j.available_at END AS lease_expires_at,
       -- The clock once per query (an InitPlan): see engine_now_stable.
       (j.status = 'running' AND j.available_at < (SELECT engine_now_stable())) AS lease_expired,
       j.locked_by,
       j.cancel_requested,
       j.failed_step,
       j.last_error ->> 'message'                            AS last_error,
       j.last_error                                          AS last_error_detail,
       j.deadline,
       j.created_at,
       j.updated_at,
       j.finished_at,
       o.result                                              AS output,
       j.rate_key
FROM jobs j
LEFT JOIN steps o ON o.job_id = j.id AND o.idx = j.step_count - 1;
COMMENT ON VIEW job_overview IS
  'One row per job: status (with compensating), current step, attempts, last error, lease, timestamps, output.';

-- step_overview: one row per step, with the live state of the job's current step, its
-- stored result and its compensation's state. skipped: never ran because the job ended.
-- The last step of a succeeded job is written only when it stored a result (see
-- step_complete); its state is the job row's.
CREATE OR REPLACE VIEW step_overview AS
SELECT s.job_id,
       s.idx                                                  AS step_index,
       s.name,
       CASE WHEN j.phase = 'forward' AND j.current_step = s.idx AND j.status = 'running' THEN 'running'
            WHEN j.phase = 'forward' AND j.current_step = s.idx AND j.status = 'pending' AND j.attempt > 0
              THEN 'retrying'
            WHEN j.status = 'succeeded' AND s.status = 'pending' THEN 'succeeded'
            ELSE s.status END                                 AS status,
       CASE WHEN j.phase = 'forward' AND j.current_step = s.idx
             AND (j.status IN ('pending', 'running') OR (j.status = 'succeeded' AND s.status = 'pending'))
            THEN j.attempt ELSE s.attempts END                AS attempts,
       s.max_attempts,
       s.last_error ->> 'message'                             AS last_error,
       s.last_error                                           AS last_error_detail,
       CASE WHEN j.status = 'succeeded' AND s.status = 'pending' THEN j.finished_at
            ELSE s.finished_at END                            AS finished_at,
       s.compensate_name,
       CASE WHEN j.phase = 'compensate' AND j.current_step = s.idx AND j.status = 'running' THEN 'running'
            ELSE s.comp_status END                            AS compensation_status,
       CASE WHEN j.phase = 'compensate' AND j.current_step = s.idx AND j.status IN ('pending', 'running')
            THEN j.attempt ELSE s.comp_attempts END           AS compensation_attempts,
       s.comp_last_error ->> 'message'                        AS compensation_last_error,
       s.comp_finished_at                                     AS compensation_finished_at,
       s.result
FROM steps s
JOIN jobs j ON j.id = s.job_id;
COMMENT ON VIEW step_overview IS
  'One row per step: status (running/retrying live, skipped), attempts, last error, result, and its compensation''s state.';

-- queue_stats: per queue and status, how many jobs, how many of them can run now, and
-- how long the oldest runnable one has waited (the lag a monitor should alert on).
CREATE OR REPLACE VIEW queue_stats AS
WITH c AS MATERIALIZED (SELECT engine_now() AS now)
SELECT j.queue,
       CASE WHEN j.phase = 'compensate' AND j.status IN ('pending', 'running') THEN 'compensating'
            ELSE j.status END                                                         AS status,
       count(*)                                                                       AS jobs,
       count(*) FILTER (WHERE j.status IN ('pending', 'running') AND j.available_at <= c.now
                          AND (j.status = 'pending' OR j.available_at < c.now))       AS runnable,
       count(*) FILTER (WHERE j.status = 'pending' AND j.available_at > c.now)        AS scheduled,
       max(c.now - j.available_at) FILTER (WHERE j.status IN ('pending', 'running')
                                             AND j.available_at <= c.now)             AS oldest_runnable_age
FROM jobs j
CROSS JOIN c
GROUP BY 1, 2;
COMMENT ON VIEW queue_stats IS
  'Per queue and status: job count, runnable now, scheduled later, and the oldest runnable job''s wait.';

-- worker_overview: every registered worker, live or gone (a gone one's row stays until
-- maintenance_run deletes it): alive while its last heartbeat is less than three of its
-- heartbeat periods old (the rule of _worker_live, written out: a view's reader needs
-- EXECUTE on every function it calls, and internal functions are granted to nobody);
-- running: units it holds now. queues NULL: every queue.
CREATE OR REPLACE VIEW worker_overview AS
WITH c AS MATERIALIZED (SELECT engine_now() AS now),
     held AS (SELECT j.locked_by, count(*)::integer AS running FROM jobs j
              WHERE j.status = 'running' AND j.locked_by IS NOT NULL GROUP BY j.locked_by)
SELECT w.id                                                                          AS worker_id,
       w.host,
       w.pid,
       w.queues,
       w.step_names,
       w.concurrency,
       w.started_at,
       w.heartbeat_at,
       w.heartbeat_at > c.now - 3 * w.heartbeat_period_ms * interval '1 millisecond' AS alive,
       coalesce(hd.running, 0)                                                       AS running,
       w.heartbeat_period_ms
FROM workers w
CROSS JOIN c
LEFT JOIN held hd ON hd.locked_by = w.id;
COMMENT ON VIEW worker_overview IS
  'Registered workers, live or gone: host, pid, queues, step names, concurrency, heartbeats, alive, units held.';

-- live_workers: the workers alive now (see worker_overview), with how long ago they beat.
CREATE OR REPLACE VIEW live_workers AS
WITH c AS MATERIALIZED (SELECT engine_now() AS now)
SELECT w.id                                         AS worker_id,
       w.host,
       w.pid,
       w.queues,
       w.step_names,
       w.concurrency,
       w.started_at,
       w.heartbeat_at,
       c.now - w.heartbeat_at                       AS heartbeat_age,
       w.heartbeat_period_ms
FROM workers w
CROSS JOIN c
WHERE w.heartbeat_at > c.now - 3 * w.heartbeat_period_ms * interval '1 millisecond';
COMMENT ON VIEW live_workers IS
  'Workers alive now (heartbeat within three periods): host, pid, queues, step names, concurrency, heartbeats.';

-- unrunnable_steps: per step name (a step's or a compensation's) and queue, the units that
-- could run now (pending and due, or running with an expired lease) but that no live
-- worker can run: none has a handler of that name while serving that queue. jobs: how
-- many wait; oldest_age: how long the oldest has been due. Empty when all is well.
-- Reads the workers table itself (not live_workers), so each view can be replaced alone.
CREATE OR REPLACE VIEW unrunnable_steps AS
WITH c AS MATERIALIZED (SELECT engine_now() AS now),
     waiting AS (
       SELECT j.step_name, j.queue, count(*) AS jobs, max(c.now - j.available_at) AS oldest_age
       FROM jobs j CROSS JOIN c
       WHERE j.status IN ('pending', 'running') AND j.available_at <= c.now
         AND (j.status = 'pending' OR j.available_at < c.now)
       GROUP BY j.step_name, j.queue
     )
SELECT wt.step_name, wt.queue, wt.jobs, wt.oldest_age
FROM waiting wt
CROSS JOIN c
WHERE NOT EXISTS (
  SELECT 1 FROM workers w
  WHERE w.heartbeat_at > c.now - 3 * w.heartbeat_period_ms * interval '1 millisecond'
    AND wt.step_name = ANY (w.step_names) AND (w.queues IS NULL OR wt.queue = ANY (w.queues))
);
COMMENT ON VIEW unrunnable_steps IS
  'Runnable step names (per queue) that no live worker can run, with how many jobs wait and the oldest wait.';
