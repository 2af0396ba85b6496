/**
 * Every input limit of the engine, in one place. The driver checks these before any SQL
 * runs (so a rejected call leaves the caller's transaction usable); the SQL functions
 * check the same numbers again (SQLSTATE SP001 naming the field), so psql, triggers and
 * other languages get the same guarantees. The README's limits table lists them.
 */

/** Steps in one job. */
export const MAX_STEPS = 1000;
/** Characters in a step name (and a compensation's name). */
export const MAX_NAME_LENGTH = 200;
/** Characters in a queue name. */
export const MAX_QUEUE_LENGTH = 100;
/** Characters in a dedupe key. */
export const MAX_KEY_LENGTH = 500;
/**
 * Bytes of one JSON value (a step's args, a compensation's args, a step's result),
 * measured as PostgreSQL prints the stored jsonb: `octet_length(value::text)`.
 */
export const MAX_JSON_BYTES = 1024 * 1024;
/**
 * Bytes of all step results of one job together (as PostgreSQL prints them): every unit of
 * the job carries them to its worker (ctx.results).
 */
export const MAX_JOB_RESULTS_BYTES = 16 * 1024 * 1024;
/**
 * Bytes of earlier results one claim (or one report's continuations) hands a worker
 * together, measured as the stored results print: units beyond it stay pending for a later
 * claim, so a worker never holds hundreds of jobs' results from one answer. A claim always
 * takes its first unit, whatever its size (at most MAX_JOB_RESULTS_BYTES).
 */
export const MAX_CLAIM_RESULTS_BYTES = 32 * 1024 * 1024;
/** Nesting depth of one JSON value (arrays and objects). */
export const MAX_JSON_DEPTH = 100;
/** Priority range (lower runs first). */
export const MIN_PRIORITY = -1_000_000;
export const MAX_PRIORITY = 1_000_000;
/** Largest value of integer options (maxAttempts, backoff.baseMs, backoff.maxMs): PostgreSQL's integer. */
export const MAX_INT = 2_147_483_647;
/** runAt and deadline must lie in [MIN_DATE, MAX_DATE) (UTC). */
export const MIN_DATE = new Date('2000-01-01T00:00:00.000Z');
export const MAX_DATE = new Date('2200-01-01T00:00:00.000Z');
/** Longest delayMs / timeoutMs at enqueue: 100 years. */
export const MAX_DELAY_MS = 3_155_760_000_000;
/** retryLater / Retry-After delays are clamped to [0, MAX_RETRY_LATER_MS]: 7 days. */
export const MAX_RETRY_LATER_MS = 7 * 24 * 3600 * 1000;
/** Stored error records: characters kept of the message, the error's name and the stack. */
export const MAX_ERROR_MESSAGE_LENGTH = 2000;
export const MAX_ERROR_NAME_LENGTH = 200;
export const MAX_ERROR_STACK_LENGTH = 8000;
/** Units one step_claim call may lease. */
export const MAX_CLAIM_BATCH = 1000;
/** Lease length range (ms) accepted by step_claim, step_complete and lease_extend. */
export const MIN_LEASE_MS = 100;
export const MAX_LEASE_MS = 86_400_000;
/**
 * Characters of a job's stored W3C tracestate (OpenTelemetry): 512 is what the W3C Trace
 * Context recommendation asks vendors to propagate at least. A longer one is not stored
 * (the job keeps its traceparent); SQL refuses it with SP001, as does the jobs table's
 * CHECK (which repeats the number: migrations run before these constants exist).
 */
export const MAX_TRACE_STATE_LENGTH = 512;
/** Jobs one job_prune call may delete. */
export const MAX_PRUNE_BATCH = 100_000;
/**
 * Most bytes of JSON one enqueue or enqueueMany call sends: the args and compensation args
 * of all its jobs as PostgreSQL prints them, plus an allowance per step for names and
 * options. PostgreSQL refuses a jsonb value over 256 MiB (54000), and jsonb can take 4
 * times the printed size (a one-digit number in an array: 3 bytes printed, 12 stored).
 * Checked by the driver only (SQL receives the value already parsed).
 */
export const MAX_CALL_JSON_BYTES = 32 * 1024 * 1024;
/** Step names and queues one worker registration may list (worker_register). */
export const MAX_WORKER_NAMES = 10_000;
export const MAX_WORKER_QUEUES = 1000;
/** Characters in a worker id and in a worker's host name. */
export const MAX_WORKER_ID_LENGTH = 200;
/** Registry heartbeat period range (ms); a worker is dead after three periods without one. */
export const MIN_WORKER_HEARTBEAT_MS = 100;
export const MAX_WORKER_HEARTBEAT_MS = 3_600_000;
/** Jobs one maintenance_run call may expire, and prune, at most. */
export const MAX_MAINTENANCE_BATCH = 10_000;
/** Jobs one job_retry_many call may retry. */
export const MAX_RETRY_BATCH = 10_000;
