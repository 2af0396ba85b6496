-- Up Migration
-- Live workers: each worker process registers itself per database it serves, heartbeats
-- on a slow period, and deregisters on stop. A row whose heartbeat is older than three of
-- its own periods is dead (the views ignore it; maintenance_run deletes it).
CREATE TABLE workers (
  id                  text        PRIMARY KEY,
  host                text        NOT NULL,
  pid                 integer     NOT NULL,
  -- NULL: every queue.
  queues              text[],
  step_names          text[]      NOT NULL,
  concurrency         integer     NOT NULL,
  heartbeat_period_ms integer     NOT NULL,
  started_at          timestamptz NOT NULL,
  heartbeat_at        timestamptz NOT NULL
);

-- maintenance_run finds unclaimed jobs past their deadline without scanning the hot set;
-- only jobs that carry a deadline have an entry.
CREATE INDEX jobs_deadline_unfinished ON jobs (deadline)
  WHERE deadline IS NOT NULL AND status IN ('pending', 'running') AND phase = 'forward';

-- Down Migration
DROP INDEX jobs_deadline_unfinished;
DROP TABLE workers;
