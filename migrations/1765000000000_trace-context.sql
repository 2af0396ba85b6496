-- Up Migration
-- The trace context of the enqueuing code (OpenTelemetry), carried by the job so that
-- every attempt's span can link back to it. Two nullable columns: a job enqueued without
-- tracing stores two NULL bits (the row's null bitmap already has room), and the claim
-- hands both to the worker with each unit.
-- trace_parent: a W3C traceparent (version-traceid-parentid-flags, lowercase hex; version
-- ff and all-zero ids are invalid). trace_state: the W3C tracestate header, printable
-- ASCII, only with a trace_parent, at most MAX_TRACE_STATE_LENGTH of src/limits.ts (512,
-- the length W3C asks vendors to propagate at least; written out here because migrations
-- run before the generated _limit_*() constants exist).
-- job_enqueue_batch checks both first and raises SP001 naming the field; these
-- constraints keep the table honest whatever writes to it.
ALTER TABLE jobs
  ADD COLUMN trace_parent text
    CONSTRAINT jobs_trace_parent_w3c
    CHECK (trace_parent ~ '^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$'),
  ADD COLUMN trace_state text,
  ADD CONSTRAINT jobs_trace_state_bounded
    CHECK (trace_state IS NULL
           OR (length(trace_state) BETWEEN 1 AND 512 AND trace_state ~ '^[ -~]*$' AND trace_parent IS NOT NULL));

-- Each unit a worker receives (step_claim, and step_complete's continuation) carries them.
ALTER TYPE unit ADD ATTRIBUTE trace_parent text, ADD ATTRIBUTE trace_state text;

-- job_enqueue gains p_trace_parent and p_trace_state (sql/enqueue.sql; defaulted, at the
-- end, so every existing call still works): migrate drops the old signature once the new
-- one exists, and carries the grants made on it over (src/db/migrate.ts, carryGrants).

-- Down Migration
ALTER TYPE unit DROP ATTRIBUTE trace_state, DROP ATTRIBUTE trace_parent;
ALTER TABLE jobs DROP COLUMN trace_state, DROP COLUMN trace_parent;
