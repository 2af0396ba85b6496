-- NOTIFY helpers. Channel names carry the schema name; PostgreSQL folds identical
-- notifications of one transaction into one, so a bulk enqueue wakes each queue once.
-- Payloads carry ids, statuses and queue names only: anyone who can connect can LISTEN,
-- and receivers treat every notification as a hint to re-read the database, never as fact.

-- _watch_wake: makes work this transaction made ready visible to the activity watch of
-- many-database workers, which wakes a database without a LISTEN connection when its
-- pg_stat_database.tup_inserted moves (src/multidb/activity-watch.ts). p_mark: the work
-- became ready by an update (a retry, released leases, a raised limit), which does not
-- move that count, so a row is inserted into wake_marks and deleted again (once per
-- transaction). Either way the backend's statistics are flushed as soon as the
-- transaction ends (PostgreSQL 15 and later): a backend that flushed less than a second
-- before holds its counts back until it has been idle for 10 s.
CREATE OR REPLACE FUNCTION _watch_wake(p_mark boolean) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_mark tid;
BEGIN
  IF p_mark AND current_setting('stepping.wake_marked', true) IS DISTINCT FROM 'on' THEN
    INSERT INTO wake_marks DEFAULT VALUES RETURNING ctid INTO v_mark;
    DELETE FROM wake_marks WHERE ctid = v_mark;
    -- Transaction-local: rolled back with the insert, and gone at the transaction's end.
    PERFORM pg_catalog.set_config('stepping.wake_marked', 'on', true);
  END IF;
  IF pg_catalog.to_regprocedure('pg_catalog.pg_stat_force_next_flush()') IS NOT NULL THEN
    PERFORM pg_catalog.pg_stat_force_next_flush();
  END IF;
END;
$$;
COMMENT ON FUNCTION _watch_wake(boolean) IS
  'Shows the activity watch (pg_stat_database.tup_inserted) new ready work at commit: a wake_marks row when p_mark, statistics flushed.';

-- _notify_queue: wakes workers listening for work on p_queue (channel <schema>_ready); an
-- enqueue, whose inserted rows the activity watch sees, calls it directly.
CREATE OR REPLACE FUNCTION _notify_queue(p_queue text) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_catalog.pg_notify(_schema_name() || '_ready', p_queue); $$;
COMMENT ON FUNCTION _notify_queue(text) IS 'Wakes workers listening for work on p_queue (channel <schema>_ready).';

-- _notify_ready: work on p_queue became ready without an insert: wakes the workers
-- listening (NOTIFY) and those whose activity watch covers this database (_watch_wake).
CREATE OR REPLACE FUNCTION _notify_ready(p_queue text) RETURNS void
LANGUAGE sql VOLATILE
AS $$
  SELECT _notify_queue(p_queue);
  SELECT _watch_wake(true);
$$;
COMMENT ON FUNCTION _notify_ready(text) IS
  'Wakes the workers of p_queue for work made ready by an update: NOTIFY, and a mark for the activity watch.';

-- _notify_done: one NOTIFY for all jobs a call finished ("id:status,id:status,..."), split
-- to stay under the 8000-byte payload limit; nothing when p_done is empty.
CREATE OR REPLACE FUNCTION _notify_done(p_done text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_chunk text := '';
  v_item  text;
BEGIN
  IF p_done IS NULL OR cardinality(p_done) = 0 THEN
    RETURN;
  END IF;
  -- The usual batch (up to a few hundred items) fits in one notification: one join.
  v_chunk := array_to_string(p_done, ',');
  IF length(v_chunk) <= 7000 THEN
    PERFORM pg_catalog.pg_notify(_schema_name() || '_done', v_chunk);
    RETURN;
  END IF;
  v_chunk := '';
  FOREACH v_item IN ARRAY p_done LOOP
    IF length(v_chunk) + length(v_item) > 7000 THEN
      PERFORM pg_catalog.pg_notify(_schema_name() || '_done', v_chunk);
      v_chunk := '';
    END IF;
    v_chunk := CASE WHEN v_chunk = '' THEN v_item ELSE v_chunk || ',' || v_item END;
  END LOOP;
  IF v_chunk <> '' THEN
    PERFORM pg_catalog.pg_notify(_schema_name() || '_done', v_chunk);
  END IF;
END;
$$;
COMMENT ON FUNCTION _notify_done(text[]) IS 'Announces finished jobs on <schema>_done, one notification per 7000 bytes of "id:status" items.';

-- _notify_cancel: hints the worker running a job that it may have been cancelled; the
-- worker confirms with a heartbeat (lease_extend returns cancel_requested) before acting.
CREATE OR REPLACE FUNCTION _notify_cancel(p_job_id bigint) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_catalog.pg_notify(_schema_name() || '_cancel', p_job_id::text); $$;
COMMENT ON FUNCTION _notify_cancel(bigint) IS 'Hints (channel <schema>_cancel) that a running job was cancelled; workers confirm in the database.';
