-- Prototype for bench/tools/sql-path.ts, against sql/ as of commit 181ca8e (not for production):
-- fillfactor 80 on jobs and steps: room for HOT updates.
ALTER TABLE stepping.jobs SET (fillfactor = 80);
ALTER TABLE stepping.steps SET (fillfactor = 80);
