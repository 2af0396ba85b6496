-- Up Migration
-- Rate limits per key (issue 14): a job may carry a rate key (a customer, a tenant, an
-- API account), and a queue's rate limit may count starts per rate key instead of for the
-- whole queue, so one key flooding the queue uses up its own rate only. Jobs without a
-- rate key share one bucket. job_enqueue_batch checks the key first (1 to MAX_KEY_LENGTH
-- characters of src/limits.ts, 500, written out here because migrations run before the
-- generated _limit_*() constants exist) and raises SP001 naming the field; the constraint
-- keeps the table honest whatever writes to it. A nullable column: jobs without a rate
-- key store one NULL bit.
ALTER TABLE jobs
  ADD COLUMN rate_key text CONSTRAINT jobs_rate_key_length CHECK (length(rate_key) BETWEEN 1 AND 500);

ALTER TABLE queue_limits
  ADD COLUMN rate_per_key boolean NOT NULL DEFAULT false,
  ADD CONSTRAINT queue_limit_rate_per_key CHECK (NOT rate_per_key OR rate_count IS NOT NULL);

-- The sliding log of starts records each start's rate key; a per-key queue counts the
-- starts of one key (an index probe of that key's few rows in the window).
ALTER TABLE queue_starts ADD COLUMN rate_key text;
DROP INDEX queue_starts_queue;
CREATE INDEX queue_starts_queue_key ON queue_starts (queue, rate_key, started_at);

-- Down Migration
DROP INDEX queue_starts_queue_key;
ALTER TABLE queue_starts DROP COLUMN rate_key;
CREATE INDEX queue_starts_queue ON queue_starts (queue, started_at);
ALTER TABLE queue_limits DROP CONSTRAINT queue_limit_rate_per_key, DROP COLUMN rate_per_key;
ALTER TABLE jobs DROP COLUMN rate_key;
