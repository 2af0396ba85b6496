/**
 * The Scheduler of one database: fires recurring schedules that are due. Each worker runs
 * one; they need no coordination, because schedule_fire enqueues a due time only while the
 * schedule still points at it and advances it in the same transaction (SKIP LOCKED), so
 * however many workers run, each due time enqueues one job. Sleeps until the next due time
 * on the engine's clock, at most pollIntervalMs (a clock shift, a lost NOTIFY), a minute
 * when the database has no active schedule, and wakes on <schema>_schedule when a
 * schedule changes.
 */
import type { NotificationHub } from '../db/notifications.js';
import type { Queryable } from '../db/queryable.js';
import type { DueSchedule } from '../db/schedules.js';
import { ConfigError } from '../errors.js';
import { CronSchedule } from '../schedules/cron.js';
import { type ScheduleDefinition, Schedules } from '../schedules/schedules.js';
import { WakeTimer } from './wake-timer.js';

/** Due schedules one look-up takes. */
const DUE_BATCH = 100;
/** Shortest sleep when something is due but could not be fired (another worker holds it). */
const MIN_SLEEP_MS = 50;
/**
 * Sleep when the database has no active schedule: a new one announces itself on the
 * listener; this only bounds a lost notification, or a database served without a listener
 * (many databases under a connection budget, where a poll per database costs a connection).
 */
const NO_SCHEDULE_SLEEP_MS = 60_000;

/** What a Scheduler needs from its DatabaseWorker. */
export interface SchedulerDeps {
  schema: string;
  /** Where its calls go (many-databases mode: bounded by callTimeoutMs). */
  db: Queryable;
  hub: NotificationHub | null;
  pollIntervalMs: number;
  /** Declarative schedules, upserted at start. */
  definitions: readonly ScheduleDefinition[];
  error(error: Error, during: string): void;
}

/** Fires the due schedules of one database. */
export class Scheduler {
  private readonly schedules: Schedules;
  private readonly timer = new WakeTimer(() => this.wake());
  private readonly parsed = new Map<string, CronSchedule>();
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(private readonly deps: SchedulerDeps) {
    this.schedules = new Schedules(deps.schema);
  }

  /** Upserts the declarative schedules (an invalid one fails the start), subscribes and fires what is due. */
  async start(): Promise<void> {
    for (const def of this.deps.definitions) {
      try {
        await this.schedules.define(this.deps.db, def);
      } catch (error) {
        // The worker role may fire schedules but not write them: a schedule enqueues any
        // job it names, and workers may not enqueue (README "Threat model").
        if ((error as { code?: unknown }).code === '42501') {
          throw new ConfigError(
            `the schedules option needs the ${this.deps.schema}_operator role (or the schema's owner): ` +
              `${this.deps.schema}_worker may fire schedules but not create or change them`,
            { cause: error },
          );
        }
        throw error;
      }
    }
    if (this.deps.hub) {
      try {
        this.unsubscribe = await this.deps.hub.subscribe(
          this.schedules.sql.channel,
          () => this.wake(),
          () => this.wake(),
        );
      } catch (error) {
        this.deps.error(error as Error, 'listen');
      }
    }
    this.wake();
  }

  /** Looks for due schedules now (again after the current look, if one is running). */
  wake(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = this.tick().finally(() => {
      this.ticking = null;
      if (this.again && !this.stopped) {
        this.again = false;
        this.wake();
      }
    });
  }

  private async tick(): Promise<void> {
    const { db, pollIntervalMs } = this.deps;
    let sleep = pollIntervalMs;
    try {
      // One query when nothing is due (the usual tick).
      let dueIn = await this.schedules.sql.nextDueInMs(db);
      if (dueIn !== null && dueIn <= 0) {
        let due = await this.schedules.sql.due(db, DUE_BATCH);
        while (due.length > 0 && !this.stopped) {
          for (const d of due) await this.fire(d);
          if (due.length < DUE_BATCH) break;
          due = await this.schedules.sql.due(db, DUE_BATCH);
        }
        dueIn = await this.schedules.sql.nextDueInMs(db);
      }
      // At most pollIntervalMs while schedules exist: the engine's clock may be shifted.
      sleep =
        dueIn === null
          ? // Many databases stretch pollIntervalMs past this (a look per database per minute
            // would cost 1,000 databases 17 statements and connections a second).
            Math.max(NO_SCHEDULE_SLEEP_MS, pollIntervalMs)
          : Math.min(Math.max(Math.ceil(dueIn), MIN_SLEEP_MS), pollIntervalMs);
    } catch (error) {
      this.deps.error(error as Error, 'schedule');
    }
    this.timer.wakeIn(sleep);
  }

  private async fire(d: DueSchedule): Promise<void> {
    try {
      const key = `${d.tz}\u0000${d.cron}`;
      let cron = this.parsed.get(key);
      if (!cron) {
        cron = new CronSchedule(d.cron, d.tz);
        this.parsed.set(key, cron);
      }
      const runs = cron.dueRuns(d.nextRunAt, d.now, d.backfill);
      await this.schedules.sql.fire(this.deps.db, d.name, d.nextRunAt, runs, cron.nextAfter(d.now));
    } catch (error) {
      // One broken schedule (e.g. a cron written by hand in SQL) must not stop the others.
      this.deps.error(error as Error, `schedule ${d.name}`);
    }
  }

  /** Stops firing; resolves when a look in progress has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer.stop();
    await this.ticking;
    await this.unsubscribe?.().catch(() => {});
    this.unsubscribe = null;
  }
}
