-- NOTIFY helpers. Channel names carry the schema name; PostgreSQL folds identical
-- notifications of one transaction into one, so a bulk enqueue wakes each queue once.
-- Payloads carry ids, statuses and queue names only: anyone who can connect can LISTEN,
-- and receivers treat every notification as a hint to re-read the database, never as fact.

-- _notify_ready: wakes workers listening for work on p_queue (channel <schema>_ready).
CREATE OR REPLACE FUNCTION _notify_ready(p_queue text) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_catalog.pg_notify(_schema_name() || '_ready', p_queue); $$;
COMMENT ON FUNCTION _notify_ready(text) IS 'Wakes workers listening for work on p_queue (channel <schema>_ready).';

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
