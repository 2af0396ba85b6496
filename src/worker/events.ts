/** The worker's typed events, for logging and metrics. */

/** Identifies a unit of work in events. */
export interface UnitEvent {
  database: string;
  jobId: string;
  stepIndex: number;
  name: string;
  phase: 'forward' | 'compensate';
  attempt: number;
  queue: string;
}

/** Event name → payload. */
export interface WorkerEventMap {
  'step:started': UnitEvent;
  'step:succeeded': UnitEvent & { durationMs: number };
  'step:failed': UnitEvent & {
    durationMs: number;
    error: Error;
    /** What the engine did: retry (after backoff), not_yet (retryLater), or ended the forward path. */
    outcome: string;
    nextRunAt: Date | null;
  };
  'step:retry-scheduled': UnitEvent & { nextRunAt: Date | null; notYet: boolean };
  /** The unit's lease was lost (expired and claimed again, or the job changed): its result is discarded. */
  'step:lease-lost': UnitEvent;
  'job:succeeded': { database: string; jobId: string };
  'job:failed': { database: string; jobId: string };
  'job:compensated': { database: string; jobId: string };
  'job:cancelled': { database: string; jobId: string };
  /** A database is being served (multi-database mode); listening: it has a LISTEN connection. */
  'database:up': { database: string; listening: boolean };
  /** A database could not be served (down, refusing, no schema); retried after retryInMs. */
  'database:down': { database: string; error: Error; retryInMs: number };
  /** A database left the list and was drained. */
  'database:removed': { database: string };
  /**
   * A maintenance_run call (sql/maintenance.sql) ended. leader false: another worker held
   * the database's maintenance lock, and this call did nothing.
   */
  maintenance: {
    database: string;
    leader: boolean;
    expired: number;
    pruned: number;
    workersRemoved: number;
    durationMs: number;
  };
  /** A database call failed; the worker retries with backoff. */
  error: { database: string; error: Error; during: string };
}

/** Event names. */
export type WorkerEventName = keyof WorkerEventMap;
