/**
 * The engine's calls for jobs and steps: every state change is one call of a function in
 * sql/, and every read of job state goes through a documented view. Values always travel
 * as parameters; the schema is validated and quoted. (migrate, the LISTEN probe and the
 * CLI's catalog checks keep their own SQL, about the installation rather than jobs.)
 */
import { quoteIdent } from '../config.js';
import { translateDatabaseError, UnreadableResultError } from '../errors.js';
import type { QueueFigures } from '../telemetry/types.js';
import type { Queryable } from './queryable.js';

/** A unit of work (a step, or a step's compensation) leased to a worker: the SQL type `unit`. */
export interface LeasedUnit {
  jobId: string;
  leaseToken: string;
  stepIndex: number;
  phase: 'forward' | 'compensate';
  name: string;
  args: unknown;
  attempt: number;
  queue: string;
  stepCount: number;
  /** Stored results of the job's steps, by step index (only steps that returned a value). */
  results: Readonly<Record<number, unknown>>;
  /** The producer's W3C traceparent and tracestate stored with the job (null: none). */
  traceParent: string | null;
  traceState: string | null;
  /** The step's maxAttempts given at enqueue (null: the worker's definition decides). */
  maxAttempts: number | null;
  /** Milliseconds left until the job's deadline when the unit was leased (null: none, or a compensation). */
  deadlineInMs: number | null;
  /** The job was cancelled (a forward unit handed out only so the worker fails it unrun). */
  cancelRequested: boolean;
  /**
   * Its queue has fleet-wide limits (set by a claim): it counts against them from the
   * claim on, so a worker does not claim ahead there.
   */
  fleetLimited: boolean;
}

/** A compensation as the worker's step definition gives it, reported with the step's outcome. */
export interface CompensationCall {
  name: string;
  args: unknown;
}

/** A succeeded unit as reported to the engine. */
export interface SuccessReport {
  unit: LeasedUnit;
  /** The handler's return value as JSON text (checked for size by the caller), or null. */
  resultJson: string | null;
  compensation: CompensationCall | null;
}

/** What step_fail did. */
export type FailOutcome = 'retry' | 'not_yet' | 'failed' | 'compensating' | 'compensated' | 'cancelled';

/** A stored error: message, name and stack truncated to the limits of src/limits.ts. */
export interface ErrorRecord {
  message: string;
  name: string;
  stack?: string;
  attempt: number;
  at: string;
}

/** A failed attempt (or a "not yet") as reported to the engine; see _unit_failed in sql/transitions.sql. */
export interface FailureReport {
  jobId: string;
  leaseToken: string;
  error: ErrorRecord;
  permanent: boolean;
  /** "Not yet": run again after this many ms without counting the attempt. */
  retryAfterMs: number | null;
  /** The worker's definition's options, used when the step stored none at enqueue. */
  maxAttempts: number | null;
  backoffBaseMs: number;
  backoffMaxMs: number;
  compensation: CompensationCall | null;
}

/** The engine's answer to one report (success or failure). */
export interface ReportResult {
  jobId: string;
  accepted: boolean;
  jobStatus: string | null;
  /** After a success: the job's next unit, already leased to the reporting worker. */
  next: LeasedUnit | null;
  /** After a failure: what the engine did. */
  outcome: FailOutcome | null;
  nextRunAt: Date | null;
}

/** Who may be handed the job's next unit with a completion (the reporting worker). */
export interface Continuation {
  worker: string;
  names: string[];
  queues: string[] | null;
  leaseMs: number;
}

type Row = Record<string, unknown>;

/**
 * A `unit` from a claim row or a continuation's JSON object. `jobId` is passed for the
 * latter: JSON numbers lose bigint precision, the report's own job id does not.
 */
function unitFrom(r: Row, jobId = String(r.job_id)): LeasedUnit {
  const results: Record<number, unknown> = {};
  if (r.results !== null && typeof r.results === 'object') {
    for (const [k, v] of Object.entries(r.results as Row)) results[Number(k)] = v;
  }
  return {
    jobId,
    leaseToken: String(r.lease_token),
    stepIndex: Number(r.step_index),
    phase: r.phase as LeasedUnit['phase'],
    name: String(r.name),
    args: r.args,
    attempt: Number(r.attempt),
    queue: String(r.queue),
    stepCount: Number(r.step_count),
    results,
    traceParent: typeof r.trace_parent === 'string' ? r.trace_parent : null,
    traceState: typeof r.trace_state === 'string' ? r.trace_state : null,
    maxAttempts: typeof r.max_attempts === 'number' ? r.max_attempts : null,
    // bigint arrives as a string from a claim row and as a number inside a continuation's JSON.
    deadlineInMs:
      r.deadline_in_ms === null || r.deadline_in_ms === undefined ? null : Number(r.deadline_in_ms),
    cancelRequested: r.cancel_requested === true,
    fleetLimited: r.fleet_limited === true,
  };
}

function reportFrom(r: Row): ReportResult {
  const jobId = String(r.job_id);
  return {
    jobId,
    accepted: Boolean(r.accepted),
    jobStatus: (r.job_status as string | null) ?? null,
    next: r.next ? unitFrom(r.next as Row, jobId) : null,
    outcome: (r.outcome as FailOutcome | null | undefined) ?? null,
    nextRunAt: (r.next_run_at as Date | null | undefined) ?? null,
  };
}

/**
 * One row of job_enqueue_batch as enqueueBatch selects it, checked: a client's result hook
 * that renamed or dropped a column must fail loudly, never yield the job id "undefined" or
 * lose a refused duplicate. int8 arrives as a string (pg, postgres.js, Knex, TypeORM, and
 * Prisma through the adapter), or as a number or BigInt where a type parser makes it so.
 */
/** One row of job_enqueue_batch; jobId null only for the other jobs of a batch undone for a refused duplicate. */
function enqueuedFrom(r: Row): { jobId: string | null; created: boolean; duplicateRefused: boolean } {
  const unreadable = (column: string, expected: string) =>
    new UnreadableResultError(
      `stepping: enqueue could not read column "${column}" (${expected}) from the client's result ` +
        `(got ${column in r ? typeof r[column] : 'no such column'}; the row has ${
          Object.keys(r)
            .map((k) => JSON.stringify(k))
            .join(', ') || 'no columns'
        }): does a result hook of this client rename or convert columns? ` +
        "The jobs may have been inserted in the client's transaction: roll it back",
    );
  const id = r.id;
  const jobId =
    typeof id === 'string' && /^[1-9][0-9]*$/.test(id)
      ? id
      : (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) || (typeof id === 'bigint' && id > 0n)
        ? id.toString()
        : undefined;
  // (NULL: another job of a batch undone for a refused duplicate; see job_enqueue_batch.)
  if (jobId === undefined && !(id === null && r.created === false && r.refused === false))
    throw unreadable('id', 'a job id');
  if (typeof r.created !== 'boolean') throw unreadable('created', 'a boolean');
  if (typeof r.refused !== 'boolean') throw unreadable('refused', 'a boolean');
  return { jobId: jobId ?? null, created: r.created, duplicateRefused: r.refused };
}

/** The JSON of a failure report, as sql/transitions.sql's _unit_failed reads it. */
function failureJson(f: FailureReport): string {
  return JSON.stringify({
    error: f.error,
    permanent: f.permanent,
    retry_after_ms: f.retryAfterMs,
    max_attempts: f.maxAttempts,
    backoff_base_ms: f.backoffBaseMs,
    backoff_max_ms: f.backoffMaxMs,
    compensate: f.compensation,
  });
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

  /** Channel hinting that a running job was cancelled (payload: job id; a hint, never trusted). */
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

  /** True when the schema holds a Stepping engine this driver can use. */
  async isMigrated(db: Queryable): Promise<boolean> {
    return (await this.readiness(db)).ready;
  }

  /**
   * isMigrated and the server's own name of the database (current_database(), which the
   * many-databases activity watch keys on), in one round trip: a worker starting a
   * thousand tenants asks both of each. With `withInserted`, also the database's
   * tup_inserted as pg_stat_database counts it (text: a bigint; null when not read), the
   * baseline the activity watch takes instead of a reading of its own.
   */
  async readiness(
    db: Queryable,
    withInserted = false,
  ): Promise<{ ready: boolean; name: string; inserted: string | null }> {
    const rows = await this.run(
      db,
      `SELECT pg_catalog.to_regprocedure($1) IS NOT NULL AS ready, pg_catalog.current_database() AS name` +
        (withInserted
          ? `, (SELECT pg_catalog.pg_stat_get_db_tuples_inserted(d.oid) FROM pg_catalog.pg_database d
                WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())::pg_catalog.text AS inserted`
          : ''),
      [`${this.q}.step_complete(bigint[],uuid[],jsonb[],jsonb[],text,text[],text[],integer)`],
    );
    const name = rows[0]?.name;
    const inserted = rows[0]?.inserted;
    return {
      ready: rows[0]?.ready === true,
      name: typeof name === 'string' ? name : '',
      inserted: typeof inserted === 'string' ? inserted : null,
    };
  }

  /**
   * Inserts jobs (a JSON array, see sql/enqueue.sql) in db's transaction. db may be the
   * caller's client, whose result hooks may rename columns (Kysely's CamelCasePlugin,
   * postgres.js `transform: postgres.camel`, Knex's postProcessResponse turn job_id into
   * jobId): the columns are selected under one-word lowercase aliases, which such
   * transforms leave alone, and every row is checked (enqueuedFrom) rather than trusted.
   */
  async enqueueBatch(
    db: Queryable,
    jobsJson: string,
  ): Promise<{ jobId: string | null; created: boolean; duplicateRefused: boolean }[]> {
    const rows = await this.run(
      db,
      `SELECT job_id AS id, created, coalesce(duplicate_refused, false) AS refused
       FROM ${this.q}.job_enqueue_batch($1::jsonb) ORDER BY ord`,
      [jobsJson],
    );
    return rows.map((r) => enqueuedFrom(r));
  }

  /** Leases up to `limit` runnable units this worker has handlers for. */
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
    return rows.map((r) => unitFrom(r));
  }

  /** Per queue with unfinished jobs: runnable, scheduled and running jobs, oldest runnable wait (ms). */
  async queueMetrics(db: Queryable): Promise<QueueFigures[]> {
    const rows = await this.run(db, `SELECT * FROM ${this.q}.queue_metrics()`, []);
    return rows.map((r) => ({
      queue: String(r.queue),
      runnable: Number(r.runnable),
      scheduled: Number(r.scheduled),
      running: Number(r.running),
      oldestRunnableAgeMs: Number(r.oldest_runnable_age_ms),
    }));
  }

  /** Milliseconds until the next unit this worker could run is due (<= 0: now), or null. */
  async nextDueInMs(db: Queryable, names: string[], queues: string[] | null): Promise<number | null> {
    const rows = await this.run(db, `SELECT ${this.q}.next_due_in_ms($1, $2) AS ms`, [names, queues]);
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? null : Number(ms);
  }

  /** Reports succeeded units; the answers come in the order of `done`. */
  async complete(
    db: Queryable,
    done: readonly SuccessReport[],
    continuation: Continuation | null,
  ): Promise<ReportResult[]> {
    const rows = await this.run(
      db,
      `SELECT r.job_id, r.accepted, r.job_status, to_jsonb(r.next) AS next
       FROM ${this.q}.step_complete($1::bigint[], $2::uuid[], $3::jsonb[], $4::jsonb[], $5, $6, $7, $8) r`,
      [
        done.map((d) => d.unit.jobId),
        done.map((d) => d.unit.leaseToken),
        // NULL instead of an array of NULLs (the usual batch: no results, no compensations).
        done.some((d) => d.resultJson !== null) ? done.map((d) => d.resultJson) : null,
        done.some((d) => d.compensation)
          ? done.map((d) => (d.compensation ? JSON.stringify(d.compensation) : null))
          : null,
        continuation?.worker ?? null,
        continuation?.names ?? null,
        continuation?.queues ?? null,
        continuation?.leaseMs ?? null,
      ],
    );
    const byId = new Map(rows.map((r) => [String(r.job_id), reportFrom(r)]));
    return done.map((d) => byId.get(d.unit.jobId) ?? rejected(d.unit.jobId));
  }

  /** Reports failed attempts; the answers come in the order of `failures`. */
  async fail(db: Queryable, failures: readonly FailureReport[]): Promise<ReportResult[]> {
    const rows = await this.run(
      db,
      `SELECT * FROM ${this.q}.step_fail($1::bigint[], $2::uuid[], $3::jsonb[])`,
      [failures.map((f) => f.jobId), failures.map((f) => f.leaseToken), failures.map(failureJson)],
    );
    const byId = new Map(rows.map((r) => [String(r.job_id), reportFrom(r)]));
    return failures.map((f) => byId.get(f.jobId) ?? rejected(f.jobId));
  }

  /** Heartbeat: returns the job ids whose leases are still held, with their cancel flags. */
  async extendLeases(
    db: Queryable,
    held: readonly { jobId: string; leaseToken: string }[],
    leaseMs: number,
  ): Promise<Map<string, boolean>> {
    const rows = await this.run(
      db,
      `SELECT job_id, cancel_requested FROM ${this.q}.lease_extend($1::bigint[], $2::uuid[], $3)`,
      [held.map((h) => h.jobId), held.map((h) => h.leaseToken), leaseMs],
    );
    return new Map(rows.map((r) => [String(r.job_id), Boolean(r.cancel_requested)]));
  }

  /** Gives units back to the queue (runnable now, attempt not counted). */
  async releaseLeases(
    db: Queryable,
    held: readonly { jobId: string; leaseToken: string }[],
  ): Promise<string[]> {
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

  async retry(db: Queryable, jobId: string, deadline: Date | null): Promise<void> {
    await this.run(db, `SELECT ${this.q}.job_retry($1, $2)`, [jobId, deadline]);
  }

  /** Deletes finished jobs; null options take the engine's defaults. */
  async prune(
    db: Queryable,
    olderThanMs: number | null,
    statuses: readonly string[],
    limit: number | null,
  ): Promise<number> {
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

/** The answer for a report the engine did not accept (stale lease, or given up). */
export function rejected(jobId: string): ReportResult {
  return { jobId, accepted: false, jobStatus: null, next: null, outcome: null, nextRunAt: null };
}
