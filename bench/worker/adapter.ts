/** What the worker child needs from each library: start a worker on a pool with a no-op handler. */
import type pg from 'pg';
import type { ChildSpec } from '../lib/protocol.js';

/** Called at the start of every handler run; `final` when it is the job's last step. */
export type OnRun = (seq: number | undefined, final: boolean) => void;

/** A started worker. */
export interface RunningWorker {
  /** Graceful stop; does not end the pool. */
  stop(): Promise<void>;
}

/** Starts a library's worker on `pool` (whose clients are counted). */
export type StartWorker = (spec: ChildSpec, pool: pg.Pool, onRun: OnRun) => Promise<RunningWorker>;
