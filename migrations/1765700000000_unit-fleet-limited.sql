-- Up Migration
-- Whether a unit a claim hands out is in a queue with a fleet-wide limit (queue_limits):
-- such a unit counts against the limit from its claim, so a worker does not claim ahead
-- (prefetch) there — a unit kept in hand would hold the queue's room without running.
-- NULL otherwise (and for continuations, which a worker starts at once).
ALTER TYPE unit ADD ATTRIBUTE fleet_limited boolean;

-- Down Migration
ALTER TYPE unit DROP ATTRIBUTE fleet_limited;
