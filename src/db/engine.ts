/**
 * The engine's SQL calls: the only module with SQL text for jobs and steps. Every state
 * change is one call of a function in sql/; values always travel as parameters.
 */
import { quoteIdent } from '../config.js';
import { translateDatabaseError } from '../errors.js';
import type { Queryable } from './queryable.js';

/** A unit of work (a step, or a step's compensation) leased to a worker. */
export interface LeasedUnit {
  jobId: string;
  leaseToken: string;
  stepIndex: number;
  phase: 'forward' | 'compensate';
  name: string;
  args: unknown;
  attempt: number;
  queue: string;
  priority: number;
  stepCount: number;
  transactional: boolean;
  deadline: Date | null;
}

/** Outcome of reporting a success. */
export interface CompleteResult {
  jobId: string;
  accepted: boolean;
  jobStatus: string | null;
  /** The job's next unit, already leased to the reporting worker. */
  next: LeasedUnit | null;
}

/** Outcome of reporting a failure. */
export interface FailResult {
  jobId: string;
  accepted: boolean;
  jobStatus: string | null;
  outcome: 'retry' | 'not_yet' | 'failed' | 'compensating' | 'compensated' | 'cancelled' | null;
  nextRunAt: Date | null;
}

/** A failed attempt as reported to the engine. */
export interface FailureReport {
  jobId: string;
  leaseToken: string;
  error: Record<string, unknown>;
  permanent: boolean;
  retryAfterMs: number | null;
}

type Row = Record<string, unknown>;

function unitFromRow(r: Row, prefix = ''): LeasedUnit {
  const get = (k: string) => r[prefix + k];
  return {
    jobId: String(r.job_id),
    leaseToken: String(get('lease_token')),
    stepIndex: Number(get('step_index')),
    phase: get('phase') as LeasedUnit['phase'],
    name: String(get('name')),
    args: get('args'),
    attempt: Number(get('attempt')),
    queue: String(get('queue')),
    priority: Number(get('priority')),
    stepCount: Number(get('step_count')),
    transactional: Boolean(get('transactional')),
    deadline: (get('deadline') as Date | null) ?? null,
  };
}

/** Typed access to the SQL functions of one schema. */
export class Engine {
  readonly schema: string;
  private readonly q: string;

  constructor(schema: string) {
    this.schema = schema;
    this.q = quoteIdent(schema);
  }

  /** Channel on which enqueue and retries announce runnable work (payload: queue name). */
  get readyChannel(): string {
    return `${this.schema}_ready`;
  }

  /** Channel on which finished jobs are announced (payload: `id:status,id:status,...`). */
  get doneChannel(): string {
    return `${this.schema}_done`;
  }

  /** Channel on which cancels of running jobs are announced (payload: job id). */
  get cancelChannel(): string {
    return `${this.schema}_cancel`;
  }

  private async run(db: Queryable, text: string, values: unknown[]): Promise<Row[]> {
    try {
      return (await db.query(text, values)).rows as Row[];
    } catch (error) {
      throw translateDatabaseError(error);
    }
  }

  /** Inserts jobs (a JSON array, see sql/enqueue.sql) in db's transaction. */
  async enqueueBatch(
    db: Queryable,
    jobsJson: string,
  ): Promise<{ jobId: string; created: boolean; duplicateRefused: boolean }[]> {
    const rows = await this.run(
      db,
      `SELECT job_id, created, duplicate_refused FROM ${this.q}.job_enqueue_batch($1::jsonb) ORDER BY ord`,
      [jobsJson],
    );
    return rows.map((r) => ({
      jobId: String(r.job_id),
      created: Boolean(r.created),
      duplicateRefused: Boolean(r.duplicate_refused),
    }));
  }

  async claim(
    db: Queryable,
    worker: string,
    names: string[],
    queues: string[] | null,
    limit: number,
    leaseMs: number,
  ): Promise<LeasedUnit[]> {
    const rows = await this.run(db, `SELECT * FROM ${this.q}.step_claim($1, $2, $3, $4, $5)`, [
      worker,
      names,
      queues,
      limit,
      leaseMs,
    ]);
    return rows.map((r) => unitFromRow(r));
  }

  /** Milliseconds until the next unit this worker could run is due (<= 0: now), or null. */
  async nextDueInMs(db: Queryable, names: string[], queues: string[] | null): Promise<number | null> {
    const rows = await this.run(db, `SELECT ${this.q}.next_due_in_ms($1, $2) AS ms`, [names, queues]);
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? null : Number(ms);
  }

  async complete(
    db: Queryable,
    done: { jobId: string; leaseToken: string }[],
    continueWith: { worker: string; names: string[]; queues: string[] | null; leaseMs: number } | null,
  ): Promise<CompleteResult[]> {
    const rows = await this.run(
      db,
      `SELECT * FROM ${this.q}.step_complete($1::bigint[], $2::uuid[], $3, $4, $5, $6)`,
      [
        done.map((d) => d.jobId),
        done.map((d) => d.leaseToken),
        continueWith?.worker ?? null,
        continueWith?.names ?? null,
        continueWith?.queues ?? null,
        continueWith?.leaseMs ?? 30000,
      ],
    );
    return rows.map((r) => ({
      jobId: String(r.job_id),
      accepted: Boolean(r.accepted),
      jobStatus: (r.job_status as string | null) ?? null,
      next: r.next_lease_token ? unitFromRow(r, 'next_') : null,
    }));
  }

  async fail(db: Queryable, failures: FailureReport[]): Promise<FailResult[]> {
    const rows = await this.run(
      db,
      `SELECT * FROM ${this.q}.step_fail($1::bigint[], $2::uuid[], $3::jsonb[], $4::boolean[], $5::integer[])`,
      [
        failures.map((f) => f.jobId),
        failures.map((f) => f.leaseToken),
        failures.map((f) => JSON.stringify(f.error)),
        failures.map((f) => f.permanent),
        failures.map((f) => f.retryAfterMs),
      ],
    );
    return rows.map((r) => ({
      jobId: String(r.job_id),
      accepted: Boolean(r.accepted),
      jobStatus: (r.job_status as string | null) ?? null,
      outcome: (r.outcome as FailResult['outcome']) ?? null,
      nextRunAt: (r.next_run_at as Date | null) ?? null,
    }));
  }

  /** Heartbeat: returns the job ids whose leases are still held, with their cancel flags. */
  async extendLeases(
    db: Queryable,
    held: { jobId: string; leaseToken: string }[],
    leaseMs: number,
  ): Promise<Map<string, boolean>> {
    const rows = await this.run(
      db,
      `SELECT job_id, cancel_requested FROM ${this.q}.lease_extend($1::bigint[], $2::uuid[], $3)`,
      [held.map((h) => h.jobId), held.map((h) => h.leaseToken), leaseMs],
    );
    return new Map(rows.map((r) => [String(r.job_id), Boolean(r.cancel_requested)]));
  }

  async releaseLeases(db: Queryable, held: { jobId: string; leaseToken: string }[]): Promise<string[]> {
    const rows = await this.run(db, `SELECT job_id FROM ${this.q}.lease_release($1::bigint[], $2::uuid[])`, [
      held.map((h) => h.jobId),
      held.map((h) => h.leaseToken),
    ]);
    return rows.map((r) => String(r.job_id));
  }

  async cancel(db: Queryable, jobId: string, compensate: boolean): Promise<string> {
    const rows = await this.run(db, `SELECT ${this.q}.job_cancel($1, $2) AS status`, [jobId, compensate]);
    return String(rows[0]?.status);
  }

  async retry(db: Queryable, jobId: string): Promise<void> {
    await this.run(db, `SELECT ${this.q}.job_retry($1)`, [jobId]);
  }

  async prune(db: Queryable, olderThanMs: number, statuses: string[], limit: number): Promise<number> {
    const rows = await this.run(
      db,
      `SELECT ${this.q}.job_prune($1 * interval '1 millisecond', $2::text[], $3) AS n`,
      [olderThanMs, statuses, limit],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async jobOverview(db: Queryable, jobId: string): Promise<Row | null> {
    const rows = await this.run(db, `SELECT * FROM ${this.q}.job_overview WHERE job_id = $1`, [jobId]);
    return rows[0] ?? null;
  }

  async stepOverview(db: Queryable, jobId: string): Promise<Row[]> {
    return await this.run(db, `SELECT * FROM ${this.q}.step_overview WHERE job_id = $1 ORDER BY step_index`, [
      jobId,
    ]);
  }

  async queueStats(db: Queryable): Promise<Row[]> {
    return await this.run(db, `SELECT * FROM ${this.q}.queue_stats ORDER BY queue, status`, []);
  }

  async listJobs(db: Queryable, status: string | null, limit: number): Promise<Row[]> {
    return await this.run(
      db,
      `SELECT * FROM ${this.q}.job_overview WHERE ($1::text IS NULL OR status = $1) ORDER BY job_id DESC LIMIT $2`,
      [status, limit],
    );
  }
}
