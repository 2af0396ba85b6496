-- stepping.now(): the one clock of the engine. Every lease, backoff and schedule reads
-- time through it, so a test can shift it with the setting stepping.time_offset
-- (e.g. SET stepping.time_offset = '10 minutes') instead of sleeping.
CREATE OR REPLACE FUNCTION now() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT pg_catalog.now()
       + coalesce(nullif(pg_catalog.current_setting('stepping.time_offset', true), '')::interval, interval '0');
$$;
COMMENT ON FUNCTION now() IS
  'The engine''s clock: transaction time plus the stepping.time_offset setting (tests only).';

-- Backoff before attempt n+1 after n failed attempts: min(max, base * 2^(n-1)) scaled by
-- a random factor in [0.5, 1) (equal jitter), so retries spread out but still grow.
CREATE OR REPLACE FUNCTION backoff_delay(p_attempt integer, p_base_ms integer, p_max_ms integer)
RETURNS interval
LANGUAGE sql VOLATILE
AS $$
  SELECT (least(p_max_ms::float8, p_base_ms::float8 * power(2::float8, least(greatest(p_attempt - 1, 0), 60)))
          * (0.5 + random() * 0.5)) * interval '1 millisecond';
$$;
COMMENT ON FUNCTION backoff_delay(integer, integer, integer) IS
  'Retry delay after p_attempt failures: min(max, base*2^(attempt-1)) times a jitter factor in [0.5, 1).';

-- NOTIFY helpers. Channel names carry the schema name; PostgreSQL folds identical
-- notifications of one transaction into one, so a bulk enqueue wakes each queue once.
-- Like the _-prefixed transitions they run under the calling function's search_path.
CREATE OR REPLACE FUNCTION _notify_ready(p_queue text) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_catalog.pg_notify(pg_catalog.current_schema() || '_ready', p_queue); $$;
COMMENT ON FUNCTION _notify_ready(text) IS 'Wakes workers listening for work on p_queue (channel <schema>_ready).';

-- One NOTIFY for all jobs a call finished ("id:status,id:status,..."), split to stay
-- under the 8000-byte payload limit; nothing when p_done is empty.
CREATE OR REPLACE FUNCTION _notify_done(p_done text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  v_chunk text := '';
  v_item  text;
BEGIN
  IF p_done IS NULL THEN
    RETURN;
  END IF;
  FOREACH v_item IN ARRAY p_done LOOP
    IF length(v_chunk) + length(v_item) > 7000 THEN
      PERFORM pg_catalog.pg_notify(pg_catalog.current_schema() || '_done', v_chunk);
      v_chunk := '';
    END IF;
    v_chunk := CASE WHEN v_chunk = '' THEN v_item ELSE v_chunk || ',' || v_item END;
  END LOOP;
  IF v_chunk <> '' THEN
    PERFORM pg_catalog.pg_notify(pg_catalog.current_schema() || '_done', v_chunk);
  END IF;
END;
$$;
COMMENT ON FUNCTION _notify_done(text[]) IS 'Announces finished jobs on <schema>_done, one notification per 7000 bytes of "id:status" items.';

CREATE OR REPLACE FUNCTION _notify_cancel(p_job_id bigint) RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_catalog.pg_notify(pg_catalog.current_schema() || '_cancel', p_job_id::text); $$;
COMMENT ON FUNCTION _notify_cancel(bigint) IS 'Tells the worker running a job that it was cancelled (channel <schema>_cancel).';
