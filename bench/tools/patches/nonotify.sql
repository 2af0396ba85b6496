-- Prototype for bench/tools/sql-path.ts, against sql/ as of commit 181ca8e (not for production):
-- _notify_done as a no-op: the cost of the per-report 'id:status' NOTIFY.
CREATE OR REPLACE FUNCTION stepping._notify_done(p_done text[]) RETURNS void LANGUAGE plpgsql VOLATILE AS $$ BEGIN END; $$;
