/**
 * The Scheduler of one database: fires recurring schedules that are due. Each worker runs
 * one; they need no coordination, because schedule_fire enqueues a due time only while the
 * schedule still points at it and advances it in the same transaction (SKIP LOCKED), so
 * however many workers run, each due time enqueues one job. Sleeps until the next due time
 * on the engine's clock, at most pollIntervalMs (a clock shift, a lost NOTIFY), a minute
 * when the database has no active schedule, and wakes on <schema>_schedule when a
 * schedule changes. A schedule it cannot fire (a cron or zone written in SQL that croner
 * refuses, a job the engine refuses) is reported and left alone for a pause that doubles
 * up to a minute, or until it changes; the others fire meanwhile.
 */
import type { NotificationHub } from '../db/notifications.js';
import type { Queryable } from '../db/queryable.js';
import type { DueSchedule } from '../db/schedules.js';
import { ConfigError } from '../errors.js';
import { CronSchedule } from '../schedules/cron.js';
import { type ScheduleDefinition, Schedules } from '../schedules/schedules.js';
import { nextOnGrid } from '../timers.js';
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
/** Pause after a schedule's first failed fire; it doubles with each failure, up to FAILED_MAX_PAUSE_MS. */
const FAILED_FIRST_PAUSE_MS = 1000;
const FAILED_MAX_PAUSE_MS = 60_000;

/** A schedule whose last fire failed: left alone until `retryAt` (Date.now() ms) while `key` holds. */
interface FailedFire {
  /** What was fired: its due time, cron and zone (a change of any ends the pause). */
  key: string;
  failures: number;
  retryAt: number;
}

function fireKey(d: DueSchedule): string {
  return `${d.nextRunAt.getTime()}\u0000${d.tz}\u0000${d.cron}`;
}

/** What a Scheduler needs from its DatabaseWorker. */
export interface SchedulerDeps {
  schema: string;
  /** Where its calls go (many-databases mode: bounded by callTimeoutMs). */
  db: Queryable;
  hub: NotificationHub | null;
  pollIntervalMs: number;
  /**
   * Many databases: with no schedule, look again on the database's grid (see nextOnGrid),
   * with its other periodic calls. Null: after the sleep.
   */
  idleGridOffsetMs: (() => number) | null;
  /** Declarative schedules, upserted at start. */
  definitions: readonly ScheduleDefinition[];
  error(error: Error, during: string): void;
}

/** Parsed cron expressions kept per database worker. */
const PARSED_CRON_CACHE = 500;

/** Fires the due schedules of one database. */
export class Scheduler {
  private readonly schedules: Schedules;
  private readonly timer = new WakeTimer(() => this.wake());
  private readonly parsed = new Map<string, CronSchedule>();
  /** Schedules whose last fire failed, by name. */
  private readonly failed = new Map<string, FailedFire>();
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(private readonly deps: SchedulerDeps) {
    this.schedules = new Schedules(deps.schema);
  }

  /** Upserts the declarative schedules (an invalid one fails the start), subscribes and fires what is due. */
  async start(): Promise<void> {
    // Upserted in turn, the last of two definitions with one name would replace the first
    // at every start, silently.
    const names = new Set<unknown>();
    for (const def of this.deps.definitions) {
      const name = (def as { name?: unknown } | null)?.name;
      if (names.has(name))
        throw new ConfigError(
          `the schedules option has two schedules named ${JSON.stringify(String(name).slice(0, 200))}: ` +
            'each name is one schedule (the last would replace the others at every start)',
        );
      names.add(name);
    }
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
          (name) => {
            // A changed schedule is tried again at once (a fixed job keeps cron and due time).
            this.failed.delete(name);
            this.wake();
          },
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
      let retryAt = Infinity;
      if (dueIn !== null && dueIn <= 0) {
        // Pages through every due schedule once, past those that cannot be fired.
        const waiting = new Set<string>();
        let after: DueSchedule | undefined;
        let complete = false;
        while (!this.stopped) {
          const due = await this.schedules.sql.due(db, DUE_BATCH, after);
          for (const d of due) {
            const waitUntil = await this.fire(d);
            if (waitUntil !== null) {
              waiting.add(d.name);
              retryAt = Math.min(retryAt, waitUntil);
            }
          }
          if (due.length < DUE_BATCH) {
            complete = true;
            break;
          }
          after = due.at(-1);
        }
        // A failure not seen among the due schedules is over (fired elsewhere, changed, removed).
        if (complete) for (const name of this.failed.keys()) if (!waiting.has(name)) this.failed.delete(name);
        // Those waiting out a failure must not keep the scheduler awake.
        dueIn = await this.schedules.sql.nextDueInMs(db, [...waiting]);
      }
      // At most pollIntervalMs while schedules exist: the engine's clock may be shifted.
      sleep =
        dueIn === null
          ? // Many databases stretch pollIntervalMs past this (a look per database per minute
            // would cost 1,000 databases 17 statements and connections a second).
            Math.max(NO_SCHEDULE_SLEEP_MS, pollIntervalMs)
          : Math.min(Math.max(Math.ceil(dueIn), MIN_SLEEP_MS), pollIntervalMs);
      sleep = Math.min(sleep, Math.max(retryAt - Date.now(), MIN_SLEEP_MS));
      const grid = this.deps.idleGridOffsetMs;
      if (dueIn === null && grid && retryAt === Infinity) {
        const now = Date.now();
        sleep = nextOnGrid(now, sleep, grid()) - now;
      }
    } catch (error) {
      this.deps.error(error as Error, 'schedule');
    }
    this.timer.wakeIn(sleep);
  }

  /**
   * Fires one due schedule. Returns null, or when the schedule may be tried again (Date.now()
   * ms) if its fire failed now or before.
   */
  private async fire(d: DueSchedule): Promise<number | null> {
    const key = fireKey(d);
    const failed = this.failed.get(d.name);
    if (failed && failed.key === key && failed.retryAt > Date.now()) return failed.retryAt;
    try {
      const cronKey = `${d.tz}\u0000${d.cron}`;
      let cron = this.parsed.get(cronKey);
      if (!cron) {
        cron = new CronSchedule(d.cron, d.tz);
        // Bounded: schedules come and go (and may each have their own expression); the
        // oldest parsed one is dropped, and parsed again if it is still used.
        if (this.parsed.size >= PARSED_CRON_CACHE) this.parsed.delete(this.parsed.keys().next().value!);
        this.parsed.set(cronKey, cron);
      }
      const runs = cron.dueRuns(d.nextRunAt, d.now, d.backfill);
      await this.schedules.sql.fire(this.deps.db, d.name, d.nextRunAt, runs, cron.nextAfter(d.now));
      this.failed.delete(d.name);
      return null;
    } catch (error) {
      // One broken schedule (e.g. a cron written by hand in SQL) must not stop the others,
      // nor be retried at every look: it waits, longer after each failure.
      const failures = failed && failed.key === key ? failed.failures + 1 : 1;
      const pause = Math.min(FAILED_FIRST_PAUSE_MS * 2 ** Math.min(failures - 1, 16), FAILED_MAX_PAUSE_MS);
      const retryAt = Date.now() + pause;
      this.failed.set(d.name, { key, failures, retryAt });
      this.deps.error(error as Error, `schedule ${d.name}`);
      return retryAt;
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
