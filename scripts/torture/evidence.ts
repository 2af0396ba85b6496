/**
 * Loads what the checks look at from one torture database: the driver's job designs
 * (torture.jobs), the engine's documented views (job_overview, step_overview), the
 * handlers' ledger and the transactional effects. Times become ms since the epoch.
 */
import pg from 'pg';

import type { JobSpec, RunOutcome, SpooledRow } from './protocol.js';

/** One handler run, from its start and end ledger rows. */
export interface Run {
  runId: string;
  jobId: string;
  phase: 'forward' | 'compensate';
  stepIndex: number;
  attempt: number;
  pid: number;
  worker: string;
  /**
   * When the handler was invoked, on the worker's clock (the same machine clock as the
   * server's): the true bounds of a handler's execution, whenever its rows were stored.
   * null: no start row.
   */
  start: number | null;
  /** When the handler finished; null: no end row (its process died or exited first). */
  end: number | null;
  /** When the start and end rows were stored (database clock); null: spooled and imported later. */
  startStored: number | null;
  endStored: number | null;
  outcome: RunOutcome | null;
  detail: string | null;
}

/** A step_overview row, as far as the checks need it. */
export interface StepRow {
  stepIndex: number;
  status: string;
  attempts: number;
  lastError: string | null;
  compensationStatus: string | null;
  compensationAttempts: number | null;
}

/** A job_overview row, as far as the checks need it. */
export interface JobRow {
  status: string;
  currentStep: number | null;
  currentAttempt: number | null;
  runAt: number | null;
  leaseExpiresAt: number | null;
  lockedBy: string | null;
  createdAt: number;
}

/** One committed effect row of a transactional step. */
export interface Effect {
  runId: string;
  stepIndex: number;
  attempt: number;
  pid: number;
  at: number;
}

/** Everything about one database. */
export interface DatabaseEvidence {
  name: string;
  designs: Map<string, { spec: JobSpec; createdAt: number }>;
  jobs: Map<string, JobRow>;
  steps: Map<string, StepRow[]>;
  runs: Map<string, Run[]>;
  effects: Map<string, Effect[]>;
}

const ms = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Reads one database's evidence. */
export async function loadEvidence(name: string, url: string): Promise<DatabaseEvidence> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const designs = new Map<string, { spec: JobSpec; createdAt: number }>();
    for (const r of (
      await client.query(
        `SELECT job_id::text AS id, spec, extract(epoch FROM created_at) * 1000 AS at FROM torture.jobs`,
      )
    ).rows) {
      designs.set(r.id as string, { spec: r.spec as JobSpec, createdAt: Number(r.at) });
    }
    const jobs = new Map<string, JobRow>();
    for (const r of (
      await client.query(
        `SELECT job_id::text AS id, status, current_step, current_attempt, locked_by,
                extract(epoch FROM run_at) * 1000 AS run_at,
                extract(epoch FROM lease_expires_at) * 1000 AS lease_at,
                extract(epoch FROM created_at) * 1000 AS created_at
         FROM stepping.job_overview`,
      )
    ).rows) {
      jobs.set(r.id as string, {
        status: r.status as string,
        currentStep: ms(r.current_step),
        currentAttempt: ms(r.current_attempt),
        runAt: ms(r.run_at),
        leaseExpiresAt: ms(r.lease_at),
        lockedBy: (r.locked_by as string | null) ?? null,
        createdAt: Number(r.created_at),
      });
    }
    const steps = new Map<string, StepRow[]>();
    for (const r of (
      await client.query(
        `SELECT job_id::text AS id, step_index, status, attempts, last_error, compensation_status, compensation_attempts
         FROM stepping.step_overview ORDER BY job_id, step_index`,
      )
    ).rows) {
      push(steps, r.id as string, {
        stepIndex: Number(r.step_index),
        status: r.status as string,
        attempts: Number(r.attempts),
        lastError: (r.last_error as string | null) ?? null,
        compensationStatus: (r.compensation_status as string | null) ?? null,
        compensationAttempts: ms(r.compensation_attempts),
      });
    }
    const byRun = new Map<string, Run>();
    for (const r of (
      await client.query(
        `SELECT run_id::text AS run_id, event, job_id::text AS job_id, step_index, phase, attempt, pid, worker,
                outcome, detail, extract(epoch FROM at) * 1000 AS at, extract(epoch FROM local_at) * 1000 AS local_at
         FROM torture.ledger`,
      )
    ).rows) {
      let run = byRun.get(r.run_id as string);
      if (!run) {
        run = {
          runId: r.run_id as string,
          jobId: r.job_id as string,
          phase: r.phase as Run['phase'],
          stepIndex: Number(r.step_index),
          attempt: Number(r.attempt),
          pid: Number(r.pid),
          worker: r.worker as string,
          start: null,
          end: null,
          startStored: null,
          endStored: null,
          outcome: null,
          detail: null,
        };
        byRun.set(run.runId, run);
      }
      if (r.event === 'start') {
        run.start = Number(r.local_at);
        run.startStored = ms(r.at);
      } else {
        run.end = Number(r.local_at);
        run.endStored = ms(r.at);
        run.outcome = r.outcome as RunOutcome;
        run.detail = (r.detail as string | null) ?? null;
      }
    }
    const runs = new Map<string, Run[]>();
    for (const run of byRun.values()) push(runs, run.jobId, run);
    for (const list of runs.values()) list.sort((a, b) => (a.start ?? a.end ?? 0) - (b.start ?? b.end ?? 0));
    const effects = new Map<string, Effect[]>();
    for (const r of (
      await client.query(
        `SELECT run_id::text AS run_id, job_id::text AS job_id, step_index, attempt, pid,
                extract(epoch FROM at) * 1000 AS at FROM torture.effects`,
      )
    ).rows) {
      push(effects, r.job_id as string, {
        runId: r.run_id as string,
        stepIndex: Number(r.step_index),
        attempt: Number(r.attempt),
        pid: Number(r.pid),
        at: Number(r.at),
      });
    }
    return { name, designs, jobs, steps, runs, effects };
  } finally {
    await client.end();
  }
}

/** Imports the workers' spool files (rows written while the server was away) into the ledgers. */
export async function importSpool(dir: string, urls: Readonly<Record<string, string>>): Promise<number> {
  const { readdir, readFile } = await import('node:fs/promises');
  const rows: SpooledRow[] = [];
  for (const file of await readdir(dir).catch(() => [] as string[])) {
    if (!file.endsWith('.jsonl')) continue;
    for (const line of (await readFile(`${dir}/${file}`, 'utf8')).split('\n')) {
      // A process killed mid-write leaves a torn last line: that row never existed.
      if (line.trim() === '') continue;
      try {
        rows.push(JSON.parse(line) as SpooledRow);
      } catch {
        continue;
      }
    }
  }
  let imported = 0;
  for (const [name, url] of Object.entries(urls)) {
    const mine = rows.filter((r) => r.database === name);
    if (mine.length === 0) continue;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rowCount } = await client.query(
        `INSERT INTO torture.ledger (run_id, event, job_id, step_index, phase, attempt, pid, worker, outcome, detail, local_at, at)
         SELECT r.run_id, r.event, r.job_id, r.step_index, r.phase, r.attempt, r.pid, r.worker, r.outcome, r.detail, r.local_at, NULL
         FROM jsonb_to_recordset($1::jsonb) AS r(run_id uuid, event text, job_id bigint, step_index integer, phase text,
              attempt integer, pid integer, worker text, outcome text, detail text, local_at timestamptz)
         ON CONFLICT DO NOTHING`,
        [
          JSON.stringify(
            mine.map((r) => ({
              run_id: r.runId,
              event: r.event,
              job_id: r.jobId,
              step_index: r.stepIndex,
              phase: r.phase,
              attempt: r.attempt,
              pid: r.pid,
              worker: r.worker,
              outcome: r.outcome,
              detail: r.detail,
              local_at: r.localAt,
            })),
          ),
        ],
      );
      imported += rowCount ?? 0;
    } finally {
      await client.end();
    }
  }
  return imported;
}
