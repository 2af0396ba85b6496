/**
 * What the torture driver, its producers and the workers' steps module agree on: step
 * names, step arguments, the job specs the driver stores next to each job, and the
 * tables of the ledger (schema `torture` in every torture database).
 */

/** Step names served by the steps module (steps.ts). */
export const STEP = {
  /** A plain step: sleeps, may fail, records its runs in the ledger. */
  plain: 'torture.step',
  /** A transactional step: also writes one effect row through ctx.tx. */
  tx: 'torture.tx',
  /** The compensation of both. */
  undo: 'torture.undo',
} as const;

/** Arguments of every torture step (and, unchanged, of its compensation). */
export interface StepArgs {
  /** The driver's tag of the job (`<db>:<seq>`), for reading logs. */
  readonly tag: string;
  /** How long the handler works (ms); aborted early when ctx.signal fires. */
  readonly ms: number;
  /** Forward attempts 1..fail throw a plain Error (retried). */
  readonly fail: number;
  /** Every forward attempt throws PermanentError (ends the forward path). */
  readonly perm?: boolean;
  /** Every forward attempt throws a plain Error (the step has maxAttempts: exhausted). */
  readonly always?: boolean;
  /** Compensation attempts 1..cfail throw a plain Error. */
  readonly cfail?: number;
  /** The first compensation attempt throws PermanentError, which must be retried anyway. */
  readonly cperm?: boolean;
}

/** Kinds of job, each with a known expected end. */
export type JobKind = 'plain' | 'transactional' | 'saga' | 'exhaust' | 'fail';

/** One step of a job spec. */
export interface StepSpec {
  /** Transactional step (torture.tx) rather than torture.step. */
  readonly tx: boolean;
  /** Has a compensation (torture.undo). */
  readonly comp: boolean;
  /** maxAttempts set on this call, if any. */
  readonly maxAttempts?: number;
  readonly args: StepArgs;
}

/** A job as the driver designed it, stored in torture.jobs in the enqueuing transaction. */
export interface JobSpec {
  readonly kind: JobKind;
  readonly steps: readonly StepSpec[];
  /** Index of the step whose failure ends the forward path; null when every step succeeds. */
  readonly failAt: number | null;
  /** The final job status this design must reach. */
  readonly expected: 'succeeded' | 'compensated' | 'failed';
}

/** Outcome recorded by a run's `end` ledger row. */
export type RunOutcome = 'ok' | 'fail' | 'permanent' | 'aborted';

/** The ledger tables, created in schema `torture` of each torture database. */
export const LEDGER_DDL = `
CREATE SCHEMA IF NOT EXISTS torture;
-- One row per job the driver committed, written in the enqueuing transaction: the job
-- exists exactly when this row does.
CREATE TABLE IF NOT EXISTS torture.jobs (
  job_id      bigint PRIMARY KEY,
  kind        text NOT NULL,
  expected    text NOT NULL,
  spec        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Two rows per handler run (start, end), each committed on its own by the handler.
-- local_at: the worker's clock when the event happened; at: the database clock when the
-- row was stored (the same machine's clock). A row the handler could not store at once
-- (server away) is spooled to a file and imported after the run, with at NULL.
CREATE TABLE IF NOT EXISTS torture.ledger (
  run_id      uuid NOT NULL,
  event       text NOT NULL CHECK (event IN ('start', 'end')),
  job_id      bigint NOT NULL,
  step_index  integer NOT NULL,
  phase       text NOT NULL,
  attempt     integer NOT NULL,
  pid         integer NOT NULL,
  worker      text NOT NULL,
  outcome     text,
  detail      text,
  local_at    timestamptz NOT NULL,
  at          timestamptz DEFAULT clock_timestamp(),
  -- A retried insert whose first try did commit must not count twice.
  PRIMARY KEY (run_id, event)
);
-- The effect of a transactional step, written through ctx.tx: must exist exactly once per
-- succeeded transactional step, and never for one that did not succeed. No unique
-- constraint on purpose: a duplicate is what the check looks for.
CREATE TABLE IF NOT EXISTS torture.effects (
  run_id      uuid NOT NULL,
  job_id      bigint NOT NULL,
  step_index  integer NOT NULL,
  attempt     integer NOT NULL,
  pid         integer NOT NULL,
  at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
`;

/** Environment variable naming the ledger databases for the steps module: JSON {dbName: url}. */
export const LEDGER_URLS_ENV = 'TORTURE_LEDGER_URLS';
/** Environment variable naming the directory of the workers' ledger spool files. */
export const SPOOL_DIR_ENV = 'TORTURE_SPOOL_DIR';

/** One ledger row as spooled to a file when the database could not take it. */
export interface SpooledRow {
  database: string;
  runId: string;
  event: 'start' | 'end';
  jobId: string;
  stepIndex: number;
  phase: string;
  attempt: number;
  pid: number;
  worker: string;
  outcome: RunOutcome | null;
  detail: string | null;
  localAt: string;
}

/** Environment variable with the worker's label (e.g. `w3`), stored in the ledger. */
export const WORKER_LABEL_ENV = 'TORTURE_WORKER';
/** Prefix of the stderr line a worker's steps module writes when its event loop stalled. */
export const STALL_MARK = 'torture-stall';
