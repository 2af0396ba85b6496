-- Up Migration
-- The engine's own settings: one row, writable only by the schema's owner (no role is
-- granted more than SELECT). clock_offset shifts the engine's clock (engine_now()) so
-- tests can move time instead of sleeping; nothing a caller sets in a session can move it.
-- fingerprint identifies the installed engine code, so an up-to-date migrate is one query.
CREATE TABLE settings (
  singleton    boolean  PRIMARY KEY DEFAULT true CHECK (singleton),
  clock_offset interval NOT NULL DEFAULT interval '0',
  fingerprint  text
);
INSERT INTO settings DEFAULT VALUES;

-- What a worker receives for one leased unit (a step, or a step's compensation): returned
-- by step_claim and, as the continuation, by step_complete. results holds the stored
-- results of the job's steps that have one, as {"<step index>": result}.
CREATE TYPE unit AS (
  job_id      bigint,
  lease_token uuid,
  step_index  integer,
  phase       text,
  name        text,
  args        jsonb,
  attempt     integer,
  queue       text,
  step_count  integer,
  results     jsonb
);

-- A step's result (the handler's JSON return value), stored by the statement that
-- completes the step. Steps after the one that ended a job's forward path are 'skipped'.
-- Backoff and transactional now come from the worker's step definition unless given at
-- enqueue (NULL: the definition decides), so a producer that enqueues { name, args }
-- without importing the definition gets the definition's behaviour.
ALTER TABLE steps
  ADD COLUMN result jsonb,
  DROP COLUMN transactional,
  ALTER COLUMN backoff_base_ms DROP NOT NULL,
  ALTER COLUMN backoff_base_ms DROP DEFAULT,
  ALTER COLUMN backoff_max_ms DROP NOT NULL,
  ALTER COLUMN backoff_max_ms DROP DEFAULT,
  ADD CONSTRAINT steps_backoff_positive CHECK (backoff_base_ms > 0 AND backoff_max_ms > 0),
  DROP CONSTRAINT steps_status_check,
  ADD CONSTRAINT steps_status_check CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled', 'skipped'));

-- Down Migration
UPDATE steps SET status = 'pending' WHERE status = 'skipped';
ALTER TABLE steps
  DROP CONSTRAINT steps_status_check,
  ADD CONSTRAINT steps_status_check CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
  DROP CONSTRAINT steps_backoff_positive,
  ALTER COLUMN backoff_max_ms SET DEFAULT 3600000,
  ALTER COLUMN backoff_base_ms SET DEFAULT 1000,
  ADD COLUMN transactional boolean NOT NULL DEFAULT false,
  DROP COLUMN result;
UPDATE steps SET backoff_base_ms = coalesce(backoff_base_ms, 1000), backoff_max_ms = coalesce(backoff_max_ms, 3600000);
ALTER TABLE steps ALTER COLUMN backoff_base_ms SET NOT NULL, ALTER COLUMN backoff_max_ms SET NOT NULL;
DROP TYPE unit;
DROP TABLE settings;
