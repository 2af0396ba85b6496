/**
 * SQL calls for recurring schedules and fleet-wide queue limits (sql/schedules.sql,
 * sql/limits.sql), and their views. Values travel as parameters; the schema is quoted.
 */
import { quoteIdent } from '../config.js';
import { translateDatabaseError } from '../errors.js';
import type { Queryable } from './queryable.js';

type Row = Record<string, unknown>;

/** A schedule whose next run is due, as schedule_due returns it. */
export interface DueSchedule {
  name: string;
  cron: string;
  tz: string;
  nextRunAt: Date;
  backfill: number;
  /** The engine's clock when read. */
  now: Date;
}

/** What schedule_upsert stores. */
export interface ScheduleRow {
  name: string;
  cron: string;
  tz: string;
  /** The job template as job_enqueue_batch takes one job. */
  job: Record<string, unknown>;
  nextRunAt: Date | null;
  backfill: number;
  paused: boolean | null;
}

/** Limits of a queue as queue_limit_set takes them. */
export interface QueueLimitRow {
  maxRunning: number | null;
  rateCount: number | null;
  ratePeriodMs: number | null;
  ratePerKey: boolean;
}

/** Typed access to the schedule and queue-limit functions of one schema. */
export class ScheduleSql {
  private readonly q: string;

  constructor(readonly schema: string) {
    this.q = quoteIdent(schema);
  }

  /** Channel on which schedule changes are announced (payload: the schedule's name). */
  get channel(): string {
    return `${this.schema}_schedule`;
  }

  private async run(db: Queryable, text: string, values: unknown[]): Promise<Row[]> {
    try {
      return (await db.query(text, values)).rows as Row[];
    } catch (error) {
      throw translateDatabaseError(error);
    }
  }

  /** The engine's clock. */
  async now(db: Queryable): Promise<Date> {
    const rows = await this.run(db, `SELECT ${this.q}.engine_now() AS now`, []);
    return rows[0]!.now as Date;
  }

  /** Creates or replaces a schedule; true when it was created. */
  async upsert(db: Queryable, s: ScheduleRow): Promise<boolean> {
    const rows = await this.run(
      db,
      `SELECT ${this.q}.schedule_upsert($1, $2, $3, $4::jsonb, $5, $6, $7) AS created`,
      [s.name, s.cron, s.tz, JSON.stringify(s.job), s.nextRunAt, s.backfill, s.paused],
    );
    return rows[0]?.created === true;
  }

  /** Deletes a schedule; true when it existed. */
  async remove(db: Queryable, name: string): Promise<boolean> {
    const rows = await this.run(db, `SELECT ${this.q}.schedule_remove($1) AS ok`, [name]);
    return rows[0]?.ok === true;
  }

  /** Pauses or resumes a schedule; true when it exists. */
  async pause(db: Queryable, name: string, paused: boolean, nextRunAt: Date | null): Promise<boolean> {
    const rows = await this.run(db, `SELECT ${this.q}.schedule_pause($1, $2, $3) AS ok`, [
      name,
      paused,
      nextRunAt,
    ]);
    return rows[0]?.ok === true;
  }

  /** cron and tz of one schedule (null: none). */
  async definition(db: Queryable, name: string): Promise<{ cron: string; tz: string } | null> {
    const rows = await this.run(db, `SELECT cron, tz FROM ${this.q}.schedule_overview WHERE name = $1`, [
      name,
    ]);
    return rows[0] ? { cron: String(rows[0].cron), tz: String(rows[0].tz) } : null;
  }

  /** Active schedules due now, in (nextRunAt, name) order; `after`: those after that one. */
  async due(db: Queryable, limit: number, after?: { nextRunAt: Date; name: string }): Promise<DueSchedule[]> {
    const rows = await this.run(db, `SELECT * FROM ${this.q}.schedule_due($1, $2, $3)`, [
      limit,
      after?.nextRunAt ?? null,
      after?.name ?? null,
    ]);
    return rows.map((r) => ({
      name: String(r.name),
      cron: String(r.cron),
      tz: String(r.tz),
      nextRunAt: r.next_run_at as Date,
      backfill: Number(r.backfill),
      now: r.now as Date,
    }));
  }

  /** Enqueues due runs and advances the schedule; null when another scheduler did. */
  async fire(
    db: Queryable,
    name: string,
    from: Date,
    runs: Date[],
    next: Date | null,
  ): Promise<number | null> {
    const rows = await this.run(db, `SELECT ${this.q}.schedule_fire($1, $2, $3, $4) AS n`, [
      name,
      from,
      runs,
      next,
    ]);
    const n = rows[0]?.n;
    return n === null || n === undefined ? null : Number(n);
  }

  /** Milliseconds until the next active schedule not named in `skip` is due (<= 0: now), or null. */
  async nextDueInMs(db: Queryable, skip: readonly string[] = []): Promise<number | null> {
    const rows = await this.run(db, `SELECT ${this.q}.schedule_next_due_in_ms($1) AS ms`, [skip]);
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? null : Number(ms);
  }

  /** Every schedule (schedule_overview), by name. */
  async list(db: Queryable): Promise<Row[]> {
    return await this.run(
      db,
      `SELECT name, cron, tz, queue, step_names, backfill, paused, next_run_at, last_run_at, last_job_id,
              last_job_status
       FROM ${this.q}.schedule_overview ORDER BY name`,
      [],
    );
  }

  /** Sets a queue's fleet-wide limits. */
  async setLimit(db: Queryable, queue: string, l: QueueLimitRow): Promise<void> {
    await this.run(db, `SELECT ${this.q}.queue_limit_set($1, $2, $3, $4, $5)`, [
      queue,
      l.maxRunning,
      l.rateCount,
      l.ratePeriodMs,
      l.ratePerKey,
    ]);
  }

  /** Removes a queue's limits; true when it had some. */
  async clearLimit(db: Queryable, queue: string): Promise<boolean> {
    const rows = await this.run(db, `SELECT ${this.q}.queue_limit_clear($1) AS ok`, [queue]);
    return rows[0]?.ok === true;
  }

  /** Every limited queue (queue_limits_overview), by queue. */
  async limits(db: Queryable): Promise<Row[]> {
    return await this.run(
      db,
      `SELECT queue, max_running, running, rate_count, rate_period_ms, window_starts, ready, at_limit,
              rate_per_key, keys_at_limit
       FROM ${this.q}.queue_limits_overview ORDER BY queue`,
      [],
    );
  }
}
