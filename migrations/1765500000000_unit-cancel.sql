-- Up Migration
-- Each forward unit says whether its job was cancelled. step_claim hands a worker the
-- unit of a job cancelled with compensation whose step ran before without a report (its
-- worker died) and has no compensation the engine knows: only a worker has the step's
-- definition, which may name one. The worker fails the unit unrun, and its failure report
-- names that compensation, so the step that ran is compensated. NULL for compensations.
ALTER TYPE unit ADD ATTRIBUTE cancel_requested boolean;

-- Down Migration
ALTER TYPE unit DROP ATTRIBUTE cancel_requested;
