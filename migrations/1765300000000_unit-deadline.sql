-- Up Migration
-- Each unit a forward step's worker receives carries the milliseconds left until the
-- job's deadline on the engine's clock (NULL: no deadline; compensations never get one),
-- so the worker aborts a step still running when the deadline passes instead of letting
-- it run on; the failure it reports then ends the forward path as a passed deadline does.
ALTER TYPE unit ADD ATTRIBUTE deadline_in_ms bigint;

-- Down Migration
ALTER TYPE unit DROP ATTRIBUTE deadline_in_ms;
