/**
 * The dashboard's reads. Everything goes through the documented views (job_overview,
 * step_overview, queue_stats, and worker_overview / unrunnable_steps where the installed
 * version has them), so the operator role is enough. Values are parameters; the schema is
 * validated and quoted. Times are compared with the engine's clock, read once per page.
 */
import { quoteIdent } from '../config.js';
import { Engine } from '../db/engine.js';
import type { Queryable } from '../db/queryable.js';
import { translateDatabaseError } from '../errors.js';
import type { JobState, StepState } from '../stepping.js';
import { textOf } from '../text.js';

type Row = Record<string, unknown>;

/** Job statuses as job_overview shows them, in the order the dashboard lists them. */
export const DASHBOARD_STATUSES = [
  'pending',
  'running',
  'compensating',
  'failed',
  'succeeded',
  'compensated',
  'cancelled',
] as const;

/** A job_overview status. */
export type DashboardStatus = (typeof DASHBOARD_STATUSES)[number];

/** The window over which finished-per-minute rates are averaged. */
export const RATE_WINDOW_MS = 5 * 60_000;

/** One queue: jobs per status (queue_stats) and how fast jobs finished lately (job_overview.finished_at). */
export interface QueueSummary {
  queue: string;
  /** Jobs per job_overview status (missing statuses: 0). */
  counts: Record<DashboardStatus, number>;
  runnable: number;
  scheduled: number;
  /** How long the oldest runnable job has waited, or null when none waits. */
  oldestWaitMs: number | null;
  /** Jobs finished within RATE_WINDOW_MS, by outcome. */
  finished: number;
  succeeded: number;
  /** failed or compensated. */
  unsuccessful: number;
  /** Jobs finished within the last minute. */
  lastMinute: number;
}

/** A worker_overview row (see the ops contract). */
export interface WorkerRow {
  workerId: string;
  host: string | null;
  pid: number | null;
  /** null: every queue. */
  queues: string[] | null;
  /** How many queues the worker registered (queues holds at most the first NAMES_FETCHED). */
  queueCount: number;
  stepNames: string[];
  /** How many step names the worker registered (stepNames holds at most the first NAMES_FETCHED). */
  stepNameCount: number;
  concurrency: number | null;
  startedAt: Date | null;
  heartbeatAt: Date | null;
  alive: boolean;
  running: number;
}

/** Queues and step names of a worker the dashboard fetches; the rest is counted. */
export const NAMES_FETCHED = 50;

/** An unrunnable_steps row: runnable work no live worker can run. */
export interface UnrunnableRow {
  stepName: string;
  queue: string;
  jobs: number;
  oldestAgeMs: number | null;
}

/** Failed and retrying jobs at one step name. */
export interface FailingStep {
  stepName: string;
  failed: number;
  retrying: number;
  lastAt: Date | null;
  lastError: string | null;
  lastJobId: string;
}

/**
 * A job as the lists show it: the client's JobState (both read job_overview) without its
 * output (results can be large), with its status as text, its phase and two more times.
 */
export interface JobListRow extends Omit<JobState, 'status' | 'output'> {
  status: string;
  phase: string;
  updatedAt: Date;
  runAt: Date | null;
}

/** A stored error record (message, name, stack, attempt, at), as far as it has them. */
export interface ErrorDetail {
  message: string | null;
  name: string | null;
  stack: string | null;
  attempt: number | null;
  at: string | null;
}

/** One job, every column of job_overview the job page shows. */
export interface JobDetail extends JobListRow {
  priority: number;
  leaseExpiresAt: Date | null;
  leaseExpired: boolean;
  lockedBy: string | null;
  cancelRequested: boolean;
  failedStep: number | null;
  lastErrorDetail: ErrorDetail | null;
  deadline: Date | null;
  output: unknown;
}

/**
 * One step of a job: the client's StepState (both read step_overview) with the stored error
 * record and when its compensation finished.
 */
export interface StepDetail extends StepState {
  lastErrorDetail: ErrorDetail | null;
  compensationFinishedAt: Date | null;
}

/** Filters of the job list; null: not filtered. */
export interface JobFilter {
  status: DashboardStatus | null;
  queue: string | null;
  /** Jobs that have a step of this name. */
  step: string | null;
  /** Jobs whose key starts with this. */
  keyPrefix: string | null;
  /** Created at least this long ago. */
  minAgeMs: number | null;
  /** Created at most this long ago. */
  maxAgeMs: number | null;
}

/** A page of the job list: newest first, keyset-paged by job id. */
export interface JobPageRequest {
  /** Jobs with a smaller id than this (the next, older page). */
  before: string | null;
  /** Jobs with a larger id than this (the previous, newer page). */
  after: string | null;
  limit: number;
}

/** A page of jobs, newest first, and whether older or newer ones match too. */
export interface JobPage {
  rows: JobListRow[];
  hasOlder: boolean;
  hasNewer: boolean;
}

/** How one database looks from the many-databases picker. */
export interface DatabaseSummary {
  migrated: boolean;
  pending: number;
  running: number;
  failed: number;
  oldestWaitMs: number | null;
}

/** Which of the newer views this installation has. */
export interface OptionalViews {
  workerOverview: boolean;
  unrunnableSteps: boolean;
}

const num = (v: unknown): number => Number(v ?? 0);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : textOf(v));
const dateOrNull = (v: unknown): Date | null =>
  v instanceof Date ? v : v == null ? null : new Date(textOf(v));
const textArray = (v: unknown): string[] | null => (Array.isArray(v) ? v.map((x) => String(x)) : null);

function errorDetail(v: unknown): ErrorDetail | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const e = v as Row;
  return {
    message: strOrNull(e.message),
    name: strOrNull(e.name),
    stack: strOrNull(e.stack),
    attempt: typeof e.attempt === 'number' ? e.attempt : null,
    at: strOrNull(e.at),
  };
}

function jobListRow(r: Row): JobListRow {
  return {
    jobId: String(r.job_id),
    queue: String(r.queue),
    key: strOrNull(r.key),
    rateKey: strOrNull(r.rate_key),
    status: String(r.status),
    phase: String(r.phase),
    stepCount: num(r.step_count),
    currentStep: num(r.current_step),
    currentStepName: textOf(r.current_step_name),
    currentAttempt: num(r.current_attempt),
    lastError: strOrNull(r.last_error),
    createdAt: dateOrNull(r.created_at) ?? new Date(0),
    updatedAt: dateOrNull(r.updated_at) ?? new Date(0),
    finishedAt: dateOrNull(r.finished_at),
    runAt: dateOrNull(r.run_at),
  };
}

/**
 * Columns of job_overview the lists read (never output: results can be large). job_id
 * stays a bigint (node-postgres returns it as a string): cast to text under its own name,
 * an `ORDER BY job_id` would sort it as text (10 before 9).
 */
const LIST_COLUMNS = `job_id, queue, key, status, phase, step_count, current_step, current_step_name,
  current_attempt, last_error, created_at, updated_at, finished_at, run_at, rate_key`;

/**
 * "Failing": failed jobs, and unfinished ones waiting to retry a unit whose attempt failed
 * (run_at is set only while pending; attempt counts failed attempts of the current unit,
 * "not yet" answers and released leases excluded).
 */
const FAILING = `(status = 'failed' OR (run_at IS NOT NULL AND current_attempt > 0))`;

/** The dashboard's typed reads of one schema. */
export class DashboardQueries {
  /** The engine's calls of this schema (job_overview/step_overview reads, cancel, retry). */
  readonly engine: Engine;
  private readonly q: string;

  constructor(readonly schema: string) {
    this.engine = new Engine(schema);
    this.q = quoteIdent(schema);
  }

  private async rows(db: Queryable, text: string, values: unknown[] = []): Promise<Row[]> {
    try {
      return (await db.query(text, values)).rows as Row[];
    } catch (error) {
      throw translateDatabaseError(error);
    }
  }

  /** The engine's clock (engine_now()), read once per page so every age on it agrees. */
  async now(db: Queryable): Promise<Date> {
    const rows = await this.rows(db, `SELECT ${this.q}.engine_now() AS now`);
    return dateOrNull(rows[0]?.now) ?? new Date();
  }

  /** Whether worker_overview and unrunnable_steps exist (versions before them lack both). */
  async optionalViews(db: Queryable): Promise<OptionalViews> {
    const rows = await this.rows(
      db,
      `SELECT to_regclass($1) IS NOT NULL AS workers, to_regclass($2) IS NOT NULL AS unrunnable`,
      [`${this.q}.worker_overview`, `${this.q}.unrunnable_steps`],
    );
    return { workerOverview: rows[0]?.workers === true, unrunnableSteps: rows[0]?.unrunnable === true };
  }

  /**
   * The `limit` queues with the most runnable (then the most) jobs, with their counts
   * (queue_stats) and finish rates over RATE_WINDOW_MS before `now`, and how many queues
   * there are in all: a producer may make any number of queues, and the page must stay small.
   */
  async queues(db: Queryable, now: Date, limit: number): Promise<{ queues: QueueSummary[]; total: number }> {
    const stats = await this.rows(
      db,
      `WITH s AS MATERIALIZED (SELECT * FROM ${this.q}.queue_stats),
            top AS (SELECT queue FROM s GROUP BY queue
                    ORDER BY sum(runnable) DESC, sum(jobs) DESC, queue LIMIT $1)
       SELECT s.queue, s.status, s.jobs::float8 AS jobs, s.runnable::float8 AS runnable,
              s.scheduled::float8 AS scheduled,
              (extract(epoch FROM s.oldest_runnable_age) * 1000)::float8 AS oldest_ms,
              (SELECT count(DISTINCT queue) FROM s)::float8 AS total
       FROM s JOIN top USING (queue)`,
      [limit],
    );
    const shown = [...new Set(stats.map((r) => String(r.queue)))];
    // A constant lower bound, so the scan can use the index on finished_at.
    const rates = await this.rows(
      db,
      `SELECT queue,
              count(*)::float8 AS finished,
              count(*) FILTER (WHERE status = 'succeeded')::float8 AS succeeded,
              count(*) FILTER (WHERE status IN ('failed', 'compensated'))::float8 AS unsuccessful,
              count(*) FILTER (WHERE finished_at > $1::timestamptz - interval '1 minute')::float8 AS last_minute
       FROM ${this.q}.job_overview
       WHERE finished_at > $1::timestamptz - $2 * interval '1 millisecond' AND queue = ANY ($3::text[])
       GROUP BY queue`,
      [now, RATE_WINDOW_MS, shown],
    );
    const byQueue = new Map<string, QueueSummary>();
    const summary = (queue: string): QueueSummary => {
      let s = byQueue.get(queue);
      if (!s) {
        const counts = Object.fromEntries(DASHBOARD_STATUSES.map((st) => [st, 0])) as Record<
          DashboardStatus,
          number
        >;
        s = {
          queue,
          counts,
          runnable: 0,
          scheduled: 0,
          oldestWaitMs: null,
          finished: 0,
          succeeded: 0,
          unsuccessful: 0,
          lastMinute: 0,
        };
        byQueue.set(queue, s);
      }
      return s;
    };
    for (const r of stats) {
      const s = summary(String(r.queue));
      const status = String(r.status);
      if (status in s.counts) s.counts[status as DashboardStatus] += num(r.jobs);
      s.runnable += num(r.runnable);
      s.scheduled += num(r.scheduled);
      const oldest = numOrNull(r.oldest_ms);
      if (oldest !== null) s.oldestWaitMs = Math.max(s.oldestWaitMs ?? 0, oldest);
    }
    for (const r of rates) {
      const s = summary(String(r.queue));
      s.finished = num(r.finished);
      s.succeeded = num(r.succeeded);
      s.unsuccessful = num(r.unsuccessful);
      s.lastMinute = num(r.last_minute);
    }
    const queues = [...byQueue.values()].sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0));
    return { queues, total: Math.max(queues.length, num(stats[0]?.total)) };
  }

  /** Registered workers (worker_overview), live ones first. Call only when optionalViews says it exists. */
  async workers(db: Queryable, limit: number): Promise<WorkerRow[]> {
    const rows = await this.rows(
      db,
      // A registration may list 10,000 names of 200 characters: the page gets the first few
      // and the counts, so a rogue worker row cannot make each refresh hundreds of MB.
      `SELECT worker_id, host, pid, queues[1:$2] AS queues, coalesce(cardinality(queues), 0) AS queue_count,
              step_names[1:$2] AS step_names, coalesce(cardinality(step_names), 0) AS step_name_count,
              concurrency, started_at, heartbeat_at, alive, running
       FROM ${this.q}.worker_overview
       ORDER BY alive DESC, heartbeat_at DESC NULLS LAST, worker_id
       LIMIT $1`,
      [limit, NAMES_FETCHED],
    );
    return rows.map((r) => ({
      workerId: String(r.worker_id),
      host: strOrNull(r.host),
      pid: numOrNull(r.pid),
      queues: textArray(r.queues),
      queueCount: num(r.queue_count),
      stepNames: textArray(r.step_names) ?? [],
      stepNameCount: num(r.step_name_count),
      concurrency: numOrNull(r.concurrency),
      startedAt: dateOrNull(r.started_at),
      heartbeatAt: dateOrNull(r.heartbeat_at),
      alive: r.alive === true,
      running: num(r.running),
    }));
  }

  /** Step names and queues with runnable work no live worker can run (unrunnable_steps). */
  async unrunnable(db: Queryable, limit: number): Promise<UnrunnableRow[]> {
    const rows = await this.rows(
      db,
      `SELECT step_name, queue, jobs::float8 AS jobs, (extract(epoch FROM oldest_age) * 1000)::float8 AS oldest_ms
       FROM ${this.q}.unrunnable_steps
       ORDER BY jobs DESC, step_name, queue
       LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      stepName: String(r.step_name),
      queue: String(r.queue),
      jobs: num(r.jobs),
      oldestAgeMs: numOrNull(r.oldest_ms),
    }));
  }

  /**
   * Step names with failed or retrying jobs, most recently failing first. The newest job
   * of each is looked up alone: aggregating every failing job's error into an array held
   * them all in the server's memory, per step, on every refresh.
   */
  async failingSteps(db: Queryable, limit: number): Promise<FailingStep[]> {
    const rows = await this.rows(
      db,
      `WITH counted AS (
         SELECT current_step_name AS step_name,
                count(*) FILTER (WHERE status = 'failed')::float8 AS failed,
                count(*) FILTER (WHERE status <> 'failed')::float8 AS retrying,
                max(updated_at) AS last_at
         FROM ${this.q}.job_overview
         WHERE ${FAILING}
         GROUP BY current_step_name
         ORDER BY max(updated_at) DESC, current_step_name
         LIMIT $1)
       SELECT c.step_name, c.failed, c.retrying, c.last_at, newest.last_error, newest.job_id::text AS last_job_id
       FROM counted c
       CROSS JOIN LATERAL (
         SELECT o.last_error, o.job_id
         FROM ${this.q}.job_overview o
         WHERE ${FAILING} AND o.current_step_name = c.step_name
         ORDER BY o.updated_at DESC, o.job_id DESC
         LIMIT 1) newest
       ORDER BY c.last_at DESC, c.step_name`,
      [limit],
    );
    return rows.map((r) => ({
      stepName: textOf(r.step_name),
      failed: num(r.failed),
      retrying: num(r.retrying),
      lastAt: dateOrNull(r.last_at),
      lastError: strOrNull(r.last_error),
      lastJobId: String(r.last_job_id),
    }));
  }

  /** The latest failed or retrying jobs. */
  async recentFailures(db: Queryable, limit: number): Promise<JobListRow[]> {
    const rows = await this.rows(
      db,
      `SELECT ${LIST_COLUMNS} FROM ${this.q}.job_overview WHERE ${FAILING}
       ORDER BY updated_at DESC, job_id DESC LIMIT $1`,
      [limit],
    );
    return rows.map(jobListRow);
  }

  /** The newest jobs (walks the primary key backwards). */
  async latestJobs(db: Queryable, limit: number): Promise<JobListRow[]> {
    const rows = await this.rows(
      db,
      `SELECT ${LIST_COLUMNS} FROM ${this.q}.job_overview ORDER BY job_id DESC LIMIT $1`,
      [limit],
    );
    return rows.map(jobListRow);
  }

  /** A page of jobs matching `filter`, newest first; ages count back from `now`. */
  async jobs(db: Queryable, filter: JobFilter, page: JobPageRequest, now: Date): Promise<JobPage> {
    const newer = page.after !== null && page.before === null;
    const ago = (ms: number | null) => (ms === null ? null : new Date(now.getTime() - ms));
    // Two static texts rather than a computed ORDER BY, so the scan can walk the primary key.
    const rows = await this.rows(
      db,
      `SELECT ${LIST_COLUMNS}
       FROM ${this.q}.job_overview j
       WHERE ($1::text IS NULL OR j.status = $1)
         AND ($2::text IS NULL OR j.queue = $2)
         AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM ${this.q}.step_overview s
                                          WHERE s.job_id = j.job_id AND s.name = $3))
         AND ($4::text IS NULL OR starts_with(j.key, $4))
         AND ($5::timestamptz IS NULL OR j.created_at <= $5)
         AND ($6::timestamptz IS NULL OR j.created_at >= $6)
         AND ($7::bigint IS NULL OR j.job_id < $7)
         AND ($8::bigint IS NULL OR j.job_id > $8)
       ORDER BY j.job_id ${newer ? 'ASC' : 'DESC'}
       LIMIT $9`,
      [
        filter.status,
        filter.queue,
        filter.step,
        filter.keyPrefix,
        ago(filter.minAgeMs),
        ago(filter.maxAgeMs),
        newer ? null : page.before,
        newer ? page.after : null,
        page.limit + 1,
      ],
    );
    const more = rows.length > page.limit;
    const list = rows.slice(0, page.limit).map(jobListRow);
    if (newer) list.reverse();
    return {
      rows: list,
      hasOlder: newer ? true : more,
      hasNewer: newer ? more : page.before !== null,
    };
  }

  /** One job (job_overview), or null. */
  async job(db: Queryable, jobId: string): Promise<JobDetail | null> {
    const r = await this.engine.jobOverview(db, jobId);
    if (!r) return null;
    return {
      ...jobListRow(r),
      priority: num(r.priority),
      leaseExpiresAt: dateOrNull(r.lease_expires_at),
      leaseExpired: r.lease_expired === true,
      lockedBy: strOrNull(r.locked_by),
      cancelRequested: r.cancel_requested === true,
      failedStep: numOrNull(r.failed_step),
      lastErrorDetail: errorDetail(r.last_error_detail),
      deadline: dateOrNull(r.deadline),
      output: r.output ?? null,
    };
  }

  /** The job's steps (step_overview), in order. */
  async steps(db: Queryable, jobId: string): Promise<StepDetail[]> {
    const rows = await this.engine.stepOverview(db, jobId);
    return rows.map((r) => ({
      stepIndex: num(r.step_index),
      name: String(r.name),
      status: String(r.status),
      attempts: num(r.attempts),
      maxAttempts: numOrNull(r.max_attempts),
      lastError: strOrNull(r.last_error),
      lastErrorDetail: errorDetail(r.last_error_detail),
      finishedAt: dateOrNull(r.finished_at),
      compensateName: strOrNull(r.compensate_name),
      compensationStatus: strOrNull(r.compensation_status),
      compensationAttempts: num(r.compensation_attempts),
      compensationLastError: strOrNull(r.compensation_last_error),
      compensationFinishedAt: dateOrNull(r.compensation_finished_at),
      result: r.result ?? null,
    }));
  }

  /** Whether the database is migrated, and its jobs in a few numbers (the picker's line). */
  async summary(db: Queryable): Promise<DatabaseSummary> {
    const empty = { pending: 0, running: 0, failed: 0, oldestWaitMs: null };
    if (!(await this.engine.isMigrated(db))) return { migrated: false, ...empty };
    const rows = await this.rows(
      db,
      `SELECT coalesce(sum(jobs) FILTER (WHERE status = 'pending'), 0)::float8 AS pending,
              coalesce(sum(jobs) FILTER (WHERE status IN ('running', 'compensating')), 0)::float8 AS running,
              coalesce(sum(jobs) FILTER (WHERE status = 'failed'), 0)::float8 AS failed,
              (extract(epoch FROM max(oldest_runnable_age)) * 1000)::float8 AS oldest_ms
       FROM ${this.q}.queue_stats`,
    );
    const r = rows[0] ?? {};
    return {
      migrated: true,
      pending: num(r.pending),
      running: num(r.running),
      failed: num(r.failed),
      oldestWaitMs: numOrNull(r.oldest_ms),
    };
  }
}
