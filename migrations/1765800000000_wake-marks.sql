-- Up Migration
-- A row inserted here (and deleted in the same transaction) when work becomes ready by an
-- update rather than an insert (a retry, released leases, a raised limit, a unit handed
-- back): many-database workers wake a database without a LISTEN connection when its
-- pg_stat_database.tup_inserted moves (src/multidb/activity-watch.ts), which updates do
-- not move. Unlogged and without columns: it carries nothing and writes no WAL.
CREATE UNLOGGED TABLE wake_marks ();

-- Down Migration
DROP TABLE wake_marks;
