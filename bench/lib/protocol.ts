/**
 * Messages between the benchmark (parent) and a worker child process. The worker runs in
 * its own process so that its RSS and CPU are the worker's alone.
 */
import type { GraphileBatching } from './params.js';
import type { StatementStat } from './query-counter.js';

/** The two libraries compared. */
export type LibraryName = 'stepping' | 'graphile';

/** What a child runs. */
export interface ChildSpec {
  library: LibraryName;
  connectionString: string;
  /** drain: run until `expectFinals` jobs finished and the database agrees; latency: run until told to stop. */
  mode: 'drain' | 'latency';
  expectFinals: number;
  concurrency: number;
  poolSize: number;
  pollIntervalMs: number;
  graphile: GraphileBatching;
  timeoutMs: number;
}

/** Parent to child. */
export type ToChild = { type: 'spec'; spec: ChildSpec } | { type: 'stop' };

/** What a child measured. */
export interface ChildResult {
  /** Worker start() call until it resolved. */
  startMs: number;
  /** Worker start() call until the last job's final handler returned. */
  handlersDoneMs: number;
  /** Worker start() call until the database showed no unfinished job (drain) or until stop (latency). */
  elapsedMs: number;
  /** Handler invocations. */
  handlerRuns: number;
  /** RSS after imports, before the library's pool and worker were made. */
  rssBaselineMb: number;
  /** Highest RSS sampled every 20 ms from start to the end of the run. */
  rssPeakMb: number;
  /** VmHWM from /proc/self/status at the end: the kernel's exact RSS peak of the process. */
  hwmMb: number;
  /** process.cpuUsage() over the run. */
  cpuUserMs: number;
  cpuSystemMs: number;
  /** Statements the library sent through its pool during the run (not the LISTEN-only connection of Stepping). */
  statements: number;
  statementsByText: StatementStat[];
}

/** Child to parent. */
export type FromChild =
  | { type: 'ready' }
  | { type: 'started' }
  | { type: 'hit'; seq: number; t: number }
  | { type: 'result'; result: ChildResult }
  | { type: 'failed'; message: string };
