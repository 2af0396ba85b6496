/**
 * Engine defaults, defined once: the driver, the worker and the SQL functions (as the
 * generated constants `_default_<name>()`, see src/db/migrate.ts) all read them from here.
 */

/** Queue of a job enqueued without one. */
export const DEFAULT_QUEUE = 'default';
/** Lease a claim takes when the worker names none; heartbeats renew it. */
export const DEFAULT_LEASE_MS = 30_000;
/** Retry backoff: delay before attempt n+1 = min(max, base * 2^(n-1)) * U[0.5, 1). */
export const DEFAULT_BACKOFF_BASE_MS = 1000;
export const DEFAULT_BACKOFF_MAX_MS = 3_600_000;
/** prune(): finished jobs older than this are deleted, this many per call. */
export const DEFAULT_PRUNE_AGE_MS = 7 * 24 * 3600 * 1000;
export const DEFAULT_PRUNE_LIMIT = 10_000;
/**
 * Workers: how often each registers its heartbeat in the workers table (dead after three
 * periods without one), and how often it runs maintenance_run (plus up to 20% jitter).
 * Finished jobs (succeeded, compensated, cancelled) are pruned by maintenance after the
 * retention; MAINTENANCE_BATCH jobs at most per call and per kind of work.
 */
export const DEFAULT_WORKER_HEARTBEAT_MS = 10_000;
export const DEFAULT_MAINTENANCE_INTERVAL_MS = 30_000;
export const DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000;
export const DEFAULT_MAINTENANCE_BATCH = 1000;
