-- Up Migration
-- Whether a step's compensation came from a worker's failure or "not yet" report (its
-- step definition's compensate, computed without a result) rather than from enqueue or
-- a success. A later success of the step replaces it: the compensation of a step that
-- succeeded is computed from its result.
ALTER TABLE steps ADD COLUMN compensate_from_failure boolean NOT NULL DEFAULT false;

-- Down Migration
ALTER TABLE steps DROP COLUMN compensate_from_failure;
