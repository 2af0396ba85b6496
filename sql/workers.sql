-- The worker registry: who is serving this database, what it can run, and whether it is
-- alive. Workers call these through the worker role; the views worker_overview,
-- live_workers and unrunnable_steps (views.sql) read them. A worker is live while its last heartbeat is
-- less than three of its own heartbeat periods old.

-- _worker_live: the liveness rule (the views write it out: see worker_overview).
CREATE OR REPLACE FUNCTION _worker_live(p_heartbeat_at timestamptz, p_period_ms integer, p_now timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT p_heartbeat_at > p_now - 3 * p_period_ms * interval '1 millisecond' $$;
COMMENT ON FUNCTION _worker_live(timestamptz, integer, timestamptz) IS
  'A worker is live while its last heartbeat is less than three heartbeat periods old.';

-- worker_register: inserts or refreshes this worker's row (a worker whose row aged out and
-- was deleted registers again, keeping its id). Every value is bounded here as well as in
-- the driver: id and host 1..MAX_WORKER_ID_LENGTH characters, at most MAX_WORKER_NAMES
-- step names and MAX_WORKER_QUEUES queues (NULL: every queue), each of the documented
-- length, concurrency >= 1, heartbeat period within [MIN, MAX]_WORKER_HEARTBEAT_MS.
CREATE OR REPLACE FUNCTION worker_register(
  p_id           text,
  p_host         text,
  p_pid          integer,
  p_queues       text[],
  p_names        text[],
  p_concurrency  integer,
  p_heartbeat_ms integer
)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  v_now timestamptz := engine_now();
BEGIN
  IF p_id IS NULL OR length(p_id) NOT BETWEEN 1 AND _limit_max_worker_id_length()
     OR p_host IS NULL OR length(p_host) NOT BETWEEN 1 AND _limit_max_worker_id_length() THEN
    PERFORM _bad_input(format('worker_register: p_id and p_host must be 1 to %s characters',
                              _limit_max_worker_id_length()));
  END IF;
  IF p_pid IS NULL OR p_pid < 0 OR p_concurrency IS NULL OR p_concurrency < 1 THEN
    PERFORM _bad_input('worker_register: p_pid must be >= 0 and p_concurrency >= 1');
  END IF;
  IF p_heartbeat_ms IS NULL
     OR p_heartbeat_ms NOT BETWEEN _limit_min_worker_heartbeat_ms() AND _limit_max_worker_heartbeat_ms() THEN
    PERFORM _bad_input(format('worker_register: p_heartbeat_ms must be from %s to %s',
                              _limit_min_worker_heartbeat_ms(), _limit_max_worker_heartbeat_ms()));
  END IF;
  IF p_names IS NULL OR cardinality(p_names) NOT BETWEEN 1 AND _limit_max_worker_names()
     OR EXISTS (SELECT 1 FROM unnest(p_names) n WHERE n IS NULL OR length(n) NOT BETWEEN 1 AND _limit_max_name_length()) THEN
    PERFORM _bad_input(format('worker_register: p_names must list 1 to %s step names of 1 to %s characters',
                              _limit_max_worker_names(), _limit_max_name_length()));
  END IF;
  IF p_queues IS NOT NULL AND (cardinality(p_queues) NOT BETWEEN 1 AND _limit_max_worker_queues()
     OR EXISTS (SELECT 1 FROM unnest(p_queues) q WHERE q IS NULL OR length(q) NOT BETWEEN 1 AND _limit_max_queue_length())) THEN
    PERFORM _bad_input(format('worker_register: p_queues must be NULL or list 1 to %s queues of 1 to %s characters',
                              _limit_max_worker_queues(), _limit_max_queue_length()));
  END IF;
  INSERT INTO workers AS w (id, host, pid, queues, step_names, concurrency, heartbeat_period_ms, started_at, heartbeat_at)
  VALUES (p_id, p_host, p_pid, p_queues, p_names, p_concurrency, p_heartbeat_ms, v_now, v_now)
  ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    step_names = excluded.step_names, concurrency = excluded.concurrency,
    heartbeat_period_ms = excluded.heartbeat_period_ms, heartbeat_at = v_now;
END;
$$;
COMMENT ON FUNCTION worker_register(text, text, integer, text[], text[], integer, integer) IS
  'Registers (or refreshes) a worker: host, pid, queues, step names, concurrency, heartbeat period.';

-- worker_heartbeat: marks the worker alive now. False when it has no row (it aged out and
-- maintenance deleted it): the worker then registers again.
CREATE OR REPLACE FUNCTION worker_heartbeat(p_id text) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
  WITH hb AS (UPDATE workers SET heartbeat_at = engine_now() WHERE id = p_id RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM hb);
$$;
COMMENT ON FUNCTION worker_heartbeat(text) IS 'Marks a registered worker alive now; false when it is not registered.';

-- worker_deregister: removes the worker's row (a clean stop). True when it had one.
CREATE OR REPLACE FUNCTION worker_deregister(p_id text) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
  WITH d AS (DELETE FROM workers WHERE id = p_id RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM d);
$$;
COMMENT ON FUNCTION worker_deregister(text) IS 'Removes a worker''s registration (clean stop); true when it had one.';
