/**
 * Messages between the benchmark (parent) and a worker child process. The worker runs in
 * its own process so that its RSS and CPU are the worker's alone, and on the Node binary
 * the run chose (the same for every library).
 */
import type { StatementStat } from './query-counter.js';
import type { Variant } from './variants.js';

export type { LibraryName } from './variants.js';

/** What a child runs. */
export interface ChildSpec {
  variant: Variant;
  connectionString: string;
  /** drain: run until `expectFinals` jobs finished and the database agrees (or capMs passed); latency: until told to stop. */
  mode: 'drain' | 'latency';
  expectFinals: number;
  /** Drain mode: stop after this many ms even if jobs are left (the rate is then handler runs / time). */
  capMs: number;
  /** Count statements in the driver (pg.Client.prototype.query); off only to measure the counter's own cost. */
  countStatements: boolean;
  timeoutMs: number;
}

/** Parent to child. */
export type ToChild = { type: 'spec'; spec: ChildSpec } | { type: 'stop' };

/** What a child measured. */
export interface ChildResult {
  /** The call that starts consuming (createWorker+start, run(), work()) until it resolved. */
  startMs: number;
  /** From that call until the last job's final handler returned. */
  handlersDoneMs: number;
  /** From that call until the database showed no unfinished job (drain), the cap, or stop (latency). */
  elapsedMs: number;
  /** True when the drain stopped at capMs with jobs left. */
  capped: boolean;
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
  /** Statements the library sent on every connection it opened (LISTEN connections included). */
  statements: number;
  statementsByText: StatementStat[];
  /** The Node.js version the child ran on. */
  node: string;
}

/** Child to parent. */
export type FromChild =
  | { type: 'ready' }
  | { type: 'started' }
  | { type: 'hit'; seq: number; t: number }
  | { type: 'result'; result: ChildResult }
  | { type: 'failed'; message: string };
