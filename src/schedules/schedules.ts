/**
 * Recurring schedules and fleet-wide queue limits as the client and the worker manage
 * them: validates definitions (cron and zone through croner, the job through the enqueue
 * checks), computes due times on the engine's clock, and calls sql/schedules.sql and
 * sql/limits.sql through ScheduleSql.
 */
import type { Queryable } from '../db/queryable.js';
import { ScheduleSql } from '../db/schedules.js';
import { serializeJob } from '../enqueue/serialize.js';
import { InvalidArgumentError } from '../errors.js';
import { MAX_INT, MAX_NAME_LENGTH } from '../limits.js';
import type { StepCall } from '../steps.js';
import { textOf } from '../text.js';
import { CronSchedule } from './cron.js';

/** Most missed runs a schedule may backfill after downtime. */
export const MAX_BACKFILL = 1000;

/** Options of a recurring schedule. */
export interface ScheduleOptions {
  /** IANA time zone the cron expression is read in (daylight saving included). Default `UTC`. */
  timeZone?: string;
  /**
   * Missed runs after downtime (or a clock jump): 0 (default) enqueues one run, for the
   * latest missed due time; N enqueues up to the N latest missed due times (0 to 1000).
   */
  backfill?: number;
  /** Create (or keep) the schedule paused. Default: a new schedule is active; an existing one keeps its state. */
  paused?: boolean;
  /** Queue of each enqueued job. Default `default`. */
  queue?: string;
  /** Priority of each enqueued job. */
  priority?: number;
  /** Deadline of each enqueued job, in ms from when it is enqueued. */
  timeoutMs?: number;
  /** Default maxAttempts for the job's steps. */
  maxAttempts?: number;
  /** The enqueued jobs' rate key (a per-key rate limit of their queue counts it). */
  rateKey?: string;
}

/** A schedule as the worker's `schedules` option and `stepping-worker --schedules` take it. */
export interface ScheduleDefinition extends ScheduleOptions {
  /** Unique name (1 to MAX_NAME_LENGTH characters); jobs get the key `schedule:<name>:<due ISO time>`. */
  name: string;
  /** Cron expression: 5 fields (minute hour day month weekday), or 6 with seconds first. */
  cron: string;
  /** The job each run enqueues. */
  steps: readonly StepCall[];
}

/** A schedule as listed (schedule_overview). */
export interface ScheduleState {
  name: string;
  cron: string;
  timeZone: string;
  queue: string;
  stepNames: string[];
  backfill: number;
  paused: boolean;
  nextRunAt: Date | null;
  lastRunAt: Date | null;
  lastJobId: string | null;
  lastJobStatus: string | null;
}

/** Fleet-wide limits of one queue; give at least one. */
export interface QueueLimit {
  /** At most this many units of the queue run at once, across every worker of the database. */
  maxRunning?: number;
  /**
   * At most `count` unit starts in any `periodMs`, across every worker of the database;
   * with `perKey`, for each rate key of the queue's jobs (the enqueue option `rateKey`;
   * jobs without one share one bucket) instead of for the whole queue.
   */
  rate?: { count: number; periodMs: number; perKey?: boolean };
}

/** A limited queue as listed (queue_limits_overview): how close it is to its limits. */
export interface QueueLimitState {
  queue: string;
  maxRunning: number | null;
  /** Units running now (live leases). */
  running: number;
  rateCount: number | null;
  ratePeriodMs: number | null;
  /** Starts in the last rate period (with a per-key rate: of all keys). */
  windowStarts: number;
  /** The rate counts each rate key separately. */
  ratePerKey: boolean;
  /** With a per-key rate: how many rate keys used their rate in the last period (else null). */
  keysAtLimit: number | null;
  /** Units due now and waiting. */
  ready: number;
  atLimit: boolean;
}

const SCHEDULE_OPTIONS = new Set([
  'timeZone',
  'backfill',
  'paused',
  'queue',
  'priority',
  'timeoutMs',
  'maxAttempts',
  'rateKey',
]);

function checkCount(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}, got ${String(value)}`);
  return value;
}

/** The schedule and queue-limit operations on one schema. */
export class Schedules {
  readonly sql: ScheduleSql;

  constructor(schema: string) {
    this.sql = new ScheduleSql(schema);
  }

  /**
   * Creates or replaces a schedule. An existing schedule with the same cron and zone
   * keeps its next due time (so restarting workers with the same declarative schedules
   * does not skip a missed run). Returns true when it was created.
   */
  async define(db: Queryable, def: ScheduleDefinition): Promise<boolean> {
    if (typeof def !== 'object' || def === null) throw new InvalidArgumentError('a schedule is an object');
    const { name, cron, steps, ...options } = def;
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH)
      throw new InvalidArgumentError(`a schedule name has 1 to ${MAX_NAME_LENGTH} characters`);
    for (const key of Object.keys(options)) {
      if (!SCHEDULE_OPTIONS.has(key))
        throw new InvalidArgumentError(
          `unknown schedule option "${key.slice(0, 40)}" (known: ${[...SCHEDULE_OPTIONS].join(', ')})`,
        );
    }
    const tz = options.timeZone ?? 'UTC';
    const parsed = new CronSchedule(cron, tz);
    const backfill = checkCount(options.backfill ?? 0, 'backfill', 0, MAX_BACKFILL);
    if (options.paused !== undefined && typeof options.paused !== 'boolean')
      throw new InvalidArgumentError('paused must be a boolean');
    const job = serializeJob(steps, {
      ...(options.queue !== undefined ? { queue: options.queue } : {}),
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      ...(options.rateKey !== undefined ? { rateKey: options.rateKey } : {}),
    });
    const now = await this.sql.now(db);
    return await this.sql.upsert(db, {
      name,
      cron,
      tz,
      job,
      nextRunAt: parsed.nextAfter(now),
      backfill,
      paused: options.paused ?? null,
    });
  }

  /** Deletes a schedule (jobs it enqueued stay); true when it existed. */
  async remove(db: Queryable, name: string): Promise<boolean> {
    return await this.sql.remove(db, name);
  }

  /** Pauses a schedule: it enqueues nothing until resumed. True when it exists. */
  async pause(db: Queryable, name: string): Promise<boolean> {
    return await this.sql.pause(db, name, true, null);
  }

  /** Resumes a schedule from its next due time after now (runs due while paused are skipped). */
  async resume(db: Queryable, name: string): Promise<boolean> {
    const def = await this.sql.definition(db, name);
    if (!def) return false;
    const next = new CronSchedule(def.cron, def.tz).nextAfter(await this.sql.now(db));
    return await this.sql.pause(db, name, false, next);
  }

  /** Every schedule, by name. */
  async list(db: Queryable): Promise<ScheduleState[]> {
    return (await this.sql.list(db)).map((r) => ({
      name: String(r.name),
      cron: String(r.cron),
      timeZone: String(r.tz),
      queue: String(r.queue),
      stepNames: (r.step_names as string[] | null) ?? [],
      backfill: Number(r.backfill),
      paused: r.paused === true,
      nextRunAt: (r.next_run_at as Date | null) ?? null,
      lastRunAt: (r.last_run_at as Date | null) ?? null,
      lastJobId: r.last_job_id === null ? null : textOf(r.last_job_id),
      lastJobStatus: (r.last_job_status as string | null) ?? null,
    }));
  }

  /** Sets (replaces) a queue's fleet-wide limits. */
  async setQueueLimit(db: Queryable, queue: string, limit: QueueLimit): Promise<void> {
    if (typeof limit !== 'object' || limit === null)
      throw new InvalidArgumentError('a queue limit is { maxRunning?, rate?: { count, periodMs } }');
    const maxRunning =
      limit.maxRunning === undefined ? null : checkCount(limit.maxRunning, 'maxRunning', 1, MAX_INT);
    let rateCount: number | null = null;
    let ratePeriodMs: number | null = null;
    let ratePerKey = false;
    if (limit.rate !== undefined) {
      if (typeof limit.rate !== 'object' || limit.rate === null)
        throw new InvalidArgumentError('rate is { count, periodMs, perKey? }');
      rateCount = checkCount(limit.rate.count, 'rate.count', 1, MAX_INT);
      ratePeriodMs = checkCount(limit.rate.periodMs, 'rate.periodMs', 1, MAX_INT);
      if (limit.rate.perKey !== undefined && typeof limit.rate.perKey !== 'boolean')
        throw new InvalidArgumentError(`rate.perKey must be true or false, got ${String(limit.rate.perKey)}`);
      ratePerKey = limit.rate.perKey === true;
    }
    if (maxRunning === null && rateCount === null)
      throw new InvalidArgumentError(
        'a queue limit needs maxRunning or rate (clearQueueLimit removes limits)',
      );
    await this.sql.setLimit(db, queue, { maxRunning, rateCount, ratePeriodMs, ratePerKey });
  }

  /** Removes a queue's fleet-wide limits; true when it had some. */
  async clearQueueLimit(db: Queryable, queue: string): Promise<boolean> {
    return await this.sql.clearLimit(db, queue);
  }

  /** Every limited queue with its usage now. */
  async queueLimits(db: Queryable): Promise<QueueLimitState[]> {
    return (await this.sql.limits(db)).map((r) => ({
      queue: String(r.queue),
      maxRunning: r.max_running === null ? null : Number(r.max_running),
      running: Number(r.running),
      rateCount: r.rate_count === null ? null : Number(r.rate_count),
      ratePeriodMs: r.rate_period_ms === null ? null : Number(r.rate_period_ms),
      windowStarts: Number(r.window_starts),
      ratePerKey: r.rate_per_key === true,
      keysAtLimit: r.keys_at_limit === null || r.keys_at_limit === undefined ? null : Number(r.keys_at_limit),
      ready: Number(r.ready),
      atLimit: r.at_limit === true,
    }));
  }
}
