/** What the worker child needs from each library: start a worker with a no-op handler. */
import type { ChildSpec } from '../lib/protocol.js';

/** Called at the start of every handler run; `final` when it is the job's last step. */
export type OnRun = (seq: number | undefined, final: boolean) => void;

/** A started worker. */
export interface RunningWorker {
  /** Graceful stop; closes the library's own connections. */
  stop(): Promise<void>;
}

/**
 * A library's worker, in two phases: prepare() does what a process does once before
 * serving (connect a client object, check the schema), start() begins consuming jobs
 * and is what the benchmark times.
 */
export interface WorkerStarter {
  prepare?(spec: ChildSpec): Promise<void>;
  start(spec: ChildSpec, onRun: OnRun): Promise<RunningWorker>;
}
