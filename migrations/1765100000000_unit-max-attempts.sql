-- Up Migration
-- Each unit a worker receives carries the step's max_attempts as stored at enqueue (NULL:
-- the worker's step definition decides). A worker that finds a forward unit claimed more
-- times than that (its earlier attempts ended without a report: the worker died, hung past
-- its lease or lost its connection, every time) fails it for good instead of running it
-- again, so a step that crashes its worker cannot crash every worker forever.
ALTER TYPE unit ADD ATTRIBUTE max_attempts integer;

-- Down Migration
ALTER TYPE unit DROP ATTRIBUTE max_attempts;
