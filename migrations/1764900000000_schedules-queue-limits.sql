-- Up Migration
-- Recurring schedules and fleet-wide queue limits (sql/schedules.sql, sql/limits.sql).

-- One row per recurring schedule. job is the enqueue template, as job_enqueue_batch takes
-- one job ({"steps": [...], "queue": ..., "priority": ..., ...}); each due run enqueues it
-- with the key schedule:<name>:<due time>. next_run_at is the next due time, computed by
-- the driver from cron and tz (NULL: the expression never fires again); the run that
-- enqueues a due time advances it in the same transaction, so a due time fires once.
CREATE TABLE schedules (
  name        text        PRIMARY KEY CONSTRAINT schedule_name_length CHECK (length(name) BETWEEN 1 AND 200),
  cron        text        NOT NULL CONSTRAINT schedule_cron_length CHECK (length(cron) BETWEEN 1 AND 200),
  tz          text        NOT NULL DEFAULT 'UTC' CONSTRAINT schedule_tz_length CHECK (length(tz) BETWEEN 1 AND 100),
  job         jsonb       NOT NULL,
  -- Missed runs after downtime: 0 runs the latest one once; N enqueues up to the N latest.
  backfill    integer     NOT NULL DEFAULT 0 CONSTRAINT schedule_backfill_range CHECK (backfill BETWEEN 0 AND 1000),
  paused      boolean     NOT NULL DEFAULT false,
  next_run_at timestamptz,
  last_run_at timestamptz,
  last_job_id bigint,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE NOT paused AND next_run_at IS NOT NULL;

-- Fleet-wide limits of a queue, enforced by step_claim (and the continuation a completion
-- leases): at most max_running units running at once, at most rate_count starts in any
-- rate_period_ms. A queue without a row pays nothing.
CREATE TABLE queue_limits (
  queue          text        PRIMARY KEY CONSTRAINT queue_limit_queue_length CHECK (length(queue) BETWEEN 1 AND 100),
  max_running    integer     CONSTRAINT queue_limit_max_running CHECK (max_running > 0),
  rate_count     integer     CONSTRAINT queue_limit_rate_count CHECK (rate_count > 0),
  rate_period_ms integer     CONSTRAINT queue_limit_rate_period CHECK (rate_period_ms > 0),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT queue_limit_rate_pair CHECK ((rate_count IS NULL) = (rate_period_ms IS NULL)),
  CONSTRAINT queue_limit_some CHECK (max_running IS NOT NULL OR rate_count IS NOT NULL)
);

-- The units of limited queues leased by a claim or a continuation: counting a limited
-- queue's running units joins these few rows to jobs, so the jobs table needs no extra
-- index (which every claim of every queue would pay for). Rows whose job stopped running
-- are removed by the next claim of the queue.
CREATE TABLE queue_running (
  queue  text   NOT NULL REFERENCES queue_limits (queue) ON DELETE CASCADE,
  job_id bigint NOT NULL,
  PRIMARY KEY (queue, job_id)
);

-- Start times of rate-limited queues (a sliding log): at most rate_count rows per queue
-- are younger than its period; older ones are removed by the next claim of the queue.
CREATE TABLE queue_starts (
  queue      text        NOT NULL REFERENCES queue_limits (queue) ON DELETE CASCADE,
  started_at timestamptz NOT NULL
);
CREATE INDEX queue_starts_queue ON queue_starts (queue, started_at);

-- Down Migration
DROP TABLE queue_starts;
DROP TABLE queue_running;
DROP TABLE queue_limits;
DROP TABLE schedules;
