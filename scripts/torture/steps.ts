/**
 * The steps module of the torture run's `stepping-worker` children. Every handler run
 * writes a `start` and an `end` row to torture.ledger of the job's own database, each in
 * its own transaction through a pool of this module; a transactional step also writes its
 * effect row through ctx.tx, inside the transaction that records the step done. A ledger
 * row the database cannot take at once (server away) is appended to this process's spool
 * file instead, and the driver imports it after the run: a handler never waits out an
 * outage, just as an application's handler would fail fast.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import path from 'node:path';

import pg from 'pg';

import { defineStep, PermanentError, type StepContext } from '../../src/index.js';
import {
  LEDGER_URLS_ENV,
  type RunOutcome,
  SPOOL_DIR_ENV,
  type SpooledRow,
  STALL_MARK,
  STEP,
  type StepArgs,
  WORKER_LABEL_ENV,
} from './protocol.js';

/** A ledger insert slower than this is given up and spooled (it may still commit: imports skip duplicates). */
const LEDGER_TIMEOUT_MS = 3000;

const workerLabel = process.env[WORKER_LABEL_ENV] ?? `pid${process.pid}`;
const spoolFile = path.join(process.env[SPOOL_DIR_ENV] ?? '.', `${workerLabel}-${process.pid}.jsonl`);
const pools = new Map<string, pg.Pool>();

/** The name of the database a job lives in (ctx.database ends with it). */
const databaseName = (database: string) => database.replace(/^.*\//, '');

/** The ledger pool of a database. */
function ledgerPool(name: string): pg.Pool {
  let pool = pools.get(name);
  if (pool) return pool;
  const urls = JSON.parse(process.env[LEDGER_URLS_ENV] ?? '{}') as Record<string, string>;
  const url = urls[name];
  if (!url) throw new Error(`torture steps: no ledger URL for database ${name} in $${LEDGER_URLS_ENV}`);
  const u = new URL(url);
  u.searchParams.set('application_name', `torture-ledger-${workerLabel}`);
  pool = new pg.Pool({
    connectionString: u.toString(),
    max: 4,
    connectionTimeoutMillis: LEDGER_TIMEOUT_MS,
    query_timeout: LEDGER_TIMEOUT_MS,
  });
  // A ledger connection dropped by a restart must not crash the worker.
  pool.on('error', () => {});
  pools.set(name, pool);
  return pool;
}

/** Stores one ledger row, or spools it when the database cannot take it now. */
async function record(
  runId: string,
  event: 'start' | 'end',
  ctx: StepContext,
  outcome: RunOutcome | null,
  detail: string | null,
): Promise<void> {
  const localAt = new Date();
  const database = databaseName(ctx.database);
  try {
    await ledgerPool(database).query(
      `INSERT INTO torture.ledger (run_id, event, job_id, step_index, phase, attempt, pid, worker, outcome, detail, local_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
      [
        runId,
        event,
        ctx.jobId,
        ctx.stepIndex,
        ctx.phase,
        ctx.attempt,
        process.pid,
        workerLabel,
        outcome,
        detail,
        localAt,
      ],
    );
  } catch {
    const row: SpooledRow = {
      database,
      runId,
      event,
      jobId: ctx.jobId,
      stepIndex: ctx.stepIndex,
      phase: ctx.phase,
      attempt: ctx.attempt,
      pid: process.pid,
      worker: workerLabel,
      outcome,
      detail,
      localAt: localAt.toISOString(),
    };
    // Synchronous: the row survives a SIGKILL right after this line.
    appendFileSync(spoolFile, `${JSON.stringify(row)}\n`);
  }
}

/** Works for `ms`, or until the signal fires (then rejects with its reason). */
function work(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The body shared by every torture step; `tx` says whether to write the effect row. */
async function runStep(args: StepArgs, ctx: StepContext, tx: boolean): Promise<void> {
  const runId = randomUUID();
  await record(runId, 'start', ctx, null, null);
  try {
    await work(args.ms, ctx.signal);
    if (ctx.phase === 'forward') {
      if (tx) {
        if (!ctx.tx) throw new Error(`torture steps: ${STEP.tx} ran without ctx.tx`);
        await ctx.tx.query(
          'INSERT INTO torture.effects (run_id, job_id, step_index, attempt, pid) VALUES ($1, $2, $3, $4, $5)',
          [runId, ctx.jobId, ctx.stepIndex, ctx.attempt, process.pid],
        );
      }
      if (args.perm)
        throw new PermanentError(`${args.tag} step ${ctx.stepIndex}: permanent failure by design`);
      if (args.always || ctx.attempt <= args.fail)
        throw new Error(`${args.tag} step ${ctx.stepIndex}: failure by design (attempt ${ctx.attempt})`);
    } else {
      if (args.cperm && ctx.attempt === 1)
        throw new PermanentError(`${args.tag} undo ${ctx.stepIndex}: permanent error in a compensation`);
      if (ctx.attempt <= (args.cfail ?? 0))
        throw new Error(`${args.tag} undo ${ctx.stepIndex}: failure by design (attempt ${ctx.attempt})`);
    }
  } catch (error) {
    const outcome: RunOutcome = ctx.signal.aborted
      ? 'aborted'
      : error instanceof PermanentError
        ? 'permanent'
        : 'fail';
    await record(runId, 'end', ctx, outcome, String((error as Error).message).slice(0, 300));
    throw error;
  }
  await record(runId, 'end', ctx, 'ok', null);
}

/**
 * Event-loop stalls of this worker process (a loaded machine): a stalled worker cannot
 * heartbeat, so its leases may lapse legitimately. Reported on stderr for the driver.
 */
const STALL_TICK_MS = 200;
const STALL_REPORT_MS = 1000;
let lastTick = Date.now();
setInterval(() => {
  const now = Date.now();
  if (now - lastTick > STALL_REPORT_MS) process.stderr.write(`${STALL_MARK} from=${lastTick} to=${now}\n`);
  lastTick = now;
}, STALL_TICK_MS).unref();

/** A plain step. */
export const tortureStep = defineStep(STEP.plain, (args: StepArgs, ctx) => runStep(args, ctx, false));

/** A transactional step: its effect row commits with the step's completion, or not at all. */
export const tortureTx = defineStep(STEP.tx, (args: StepArgs, ctx) => runStep(args, ctx, true), {
  transactional: true,
});

/** The compensation of both. */
export const tortureUndo = defineStep(STEP.undo, (args: StepArgs, ctx) => runStep(args, ctx, false));
