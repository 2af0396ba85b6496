/**
 * The fetcher of one database: knows when work may be waiting (NOTIFY on <schema>_ready,
 * a precise timer for the next scheduled unit, a slow poll as the fallback for lost
 * notifications) and claims it when the Dispatcher grants slots.
 *
 * Claim errors back off (200 ms doubling to 1 s, or 5 s without a listener); the listener's reconnect ends the
 * backoff at once (the server is back, and notifications sent meanwhile were lost). A
 * wake-up that arrives during the backoff is never dropped: it re-arms for the backoff's end.
 */
import type { Engine, LeasedUnit } from '../db/engine.js';
import type { NotificationHub } from '../db/notifications.js';
import type { Queryable } from '../db/queryable.js';
import { nextOnGrid } from '../timers.js';
import type { WorkerConfig } from './options.js';
import type { ClaimPlan, Slots } from './slots.js';
import { WakeTimer } from './wake-timer.js';

/**
 * Longest pause between claims after claim errors: short with a listener (the goal is to
 * resume within a second of the server answering again), longer for a polled database.
 */
const MAX_CLAIM_BACKOFF_MS = { listening: 1000, polled: 5000 } as const;

/**
 * Work is due but the claim got none: another claimer holds it this instant (its rows, or
 * the limit row of a limited queue, which a claim skips rather than waits for). Look again
 * after FIRST ms, doubling up to MAX while that goes on; a claim that gets work starts over.
 */
const DUE_NOW_RETRY_MS = { first: 5, max: 50 } as const;

/**
 * How long after a claim brought units of a queue with fleet-wide limits the worker claims
 * no more than its free slots: a unit kept in hand counts against the queue's limits from
 * its claim, holding room other workers could run it in.
 */
const FLEET_LIMITED_NO_PREFETCH_MS = 60_000;

/** What a Fetcher needs from its DatabaseWorker. */
export interface FetcherDeps {
  engine: Engine;
  /** Where engine calls go (many-databases mode: bounded by callTimeoutMs). */
  db: Queryable;
  config: WorkerConfig;
  slots: Slots;
  /** The database's LISTEN connection; null: none (poll adaptively). */
  hub: NotificationHub | null;
  /** Takes claimed units: `start` have their slots taken, `keep` are prefetched (no slot yet). */
  accept(start: LeasedUnit[], keep: LeasedUnit[]): void;
  error(error: Error, during: string): void;
  /** Asks the dispatcher to hand out free slots (`now`: in this turn of the event loop). */
  kick(now?: boolean): void;
  /**
   * Idle poll of a database that hears about new work another way (its listener, or the
   * server's activity watch): a safety net only, every periodMs on the database's grid
   * (see nextOnGrid). Null: pollIntervalMs with a listener, the adaptive poll without.
   */
  safetyPoll: { periodMs: () => number; offsetMs: () => number } | null;
  /** A claim statement leased `n` units (metrics). */
  claimed(n: number): void;
  /** True while the worker holds units of this database (their leases are among what is due). */
  holding(): boolean;
}

/** Wake-ups and claims of one database. */
export class Fetcher {
  private moreWork = true;
  private claiming = false;
  private started = false;
  private stopping = false;
  private listening = false;
  /** The server's activity watch covers this database (see multidb/activity-watch.ts). */
  private watched = false;
  private idlePolls = 0;
  private dueNowRetryMs: number = DUE_NOW_RETRY_MS.first;
  /**
   * The last look-up of the next due time left out queues whose per-queue cap (or every
   * slot) was taken: a slot freed anywhere wakes a claim instead of a timer.
   */
  private capsFull = false;
  private stopSlotWatch: (() => void) | null = null;
  private backoffUntil = 0;
  private errorDelayMs = 0;
  private lastClaimFull = false;
  private fleetLimitedSeenAt = -Infinity;
  /**
   * A short claim got some units but left no slot free (prefetch): look up the next due
   * time once the worker holds none.
   */
  private dueCheckPending = false;
  /**
   * The pending wake-up was set from a look-up made while this worker held units: what it
   * found due may be those units' own leases, which their heartbeats push back or their
   * reports end. Looked up again once the worker holds none (see noteIdle).
   */
  private wakeFromHeldLookup = false;
  private claimDone: Promise<void> = Promise.resolve();
  /** The last look-up of the next due time started without waiting for it (see stop). */
  private dueCheck: Promise<void> = Promise.resolve();
  private readonly timer = new WakeTimer(() => this.wake());
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(private readonly deps: FetcherDeps) {}

  /** True when this database has a LISTEN connection subscribed. */
  get hasListener(): boolean {
    return this.listening;
  }

  /** True while a claim is running. */
  get claimInFlight(): boolean {
    return this.claiming;
  }

  /** True while a claim is running or more work may be waiting. */
  get busy(): boolean {
    return this.claiming || this.moreWork;
  }

  /** Subscribes to wake-ups (when there is a listener) and starts claiming. */
  async start(): Promise<void> {
    const { hub, engine, config } = this.deps;
    if (hub) {
      try {
        this.unsubscribe = await hub.subscribe(
          engine.readyChannel,
          (queue) => {
            if (config.queues === null || config.queues.includes(queue)) this.wake(true);
          },
          () => this.reconnected(),
        );
        this.listening = true;
      } catch (error) {
        // Without LISTEN the worker still runs: the poll finds the work, only later.
        this.deps.error(error as Error, 'listen');
      }
    }
    this.started = true;
    this.stopSlotWatch = this.deps.slots.onFreed(() => {
      if (!this.capsFull) return;
      this.capsFull = false;
      this.wake();
    });
    this.wake();
  }

  /**
   * Notes that work may be waiting; the dispatcher decides when this database claims.
   * `now`: a NOTIFY said so, dispatch in this turn.
   */
  wake(now = false): void {
    this.moreWork = true;
    this.deps.kick(now);
  }

  /**
   * LISTEN turned out to hear nothing (a transaction-pooling PgBouncer): poll as a database
   * without a listener does.
   */
  listenerUnavailable(): void {
    this.listening = false;
    this.wake();
  }

  /** A later probe arrived: LISTEN works after all (the subscription was kept meanwhile). */
  listenerAvailable(): void {
    if (this.stopping || this.unsubscribe === null) return;
    this.listening = true;
    this.idlePolls = 0;
    this.wake();
  }

  /**
   * Whether the activity watch covers this database; when it stops doing so, poll again.
   * When it covers it again, the watch has just read the server: like a listener's
   * reconnect, that ends a claim backoff at once (a database without a listener had
   * nothing else to end it, and resumed up to 5 s after an outage).
   */
  setWatched(watched: boolean): void {
    if (this.watched === watched) return;
    this.watched = watched;
    if (watched) {
      this.reconnected();
    } else {
      this.idlePolls = 0;
      this.wake();
    }
  }

  /** The listener reconnected: the server answers again and notifications may have been lost. */
  private reconnected(): void {
    this.errorDelayMs = 0;
    this.backoffUntil = 0;
    this.wake();
  }

  /** True when this database may have claimable work and is not claiming or backing off. */
  get wantsWork(): boolean {
    if (!this.started || this.stopping || this.claiming || !this.moreWork) return false;
    if (Date.now() < this.backoffUntil) {
      // Come back when the backoff ends; the wake-up that brought us here is not lost.
      this.timer.wakeAt(this.backoffUntil);
      return false;
    }
    return true;
  }

  /** True when the last claim came back full: more is waiting than was asked for. */
  get backlog(): boolean {
    return this.lastClaimFull;
  }

  /** True while claims ahead could hold a fleet-limited queue's room (see FLEET_LIMITED_NO_PREFETCH_MS). */
  get fleetLimited(): boolean {
    return Date.now() - this.fleetLimitedSeenAt < FLEET_LIMITED_NO_PREFETCH_MS;
  }

  /**
   * Reserves up to `max` slots and claims into them, plus up to `extra` units to keep in
   * hand (prefetch), asynchronously; one statement takes at most batchSize units. Returns
   * how many slots it reserved. Called (through DatabaseWorker) by the Dispatcher.
   */
  startClaim(max: number, extra = 0): number {
    if (!this.wantsWork) return 0;
    const { slots, config } = this.deps;
    let plan = max > 0 ? slots.reserve(max, config.queues) : [];
    const reserved = plan.reduce((n, p) => n + p.n, 0);
    // Prefetch only without per-queue caps (a unit kept in hand must be able to start).
    const prefetch = config.queueLimits.size === 0 ? extra : 0;
    if (reserved === 0 && prefetch === 0) return 0;
    if (plan.length === 0) plan = [{ queues: config.queues, n: 0 }];
    this.claiming = true;
    // Cleared before claiming: a NOTIFY arriving meanwhile sets it again.
    this.moreWork = false;
    this.claimDone = this.claimPlan(plan, prefetch);
    return reserved;
  }

  private async claimPlan(plan: ClaimPlan[], prefetch: number): Promise<void> {
    const { engine, db, config, slots } = this.deps;
    let short = false;
    let failed = false;
    let claimed = 0;
    for (const [i, p] of plan.entries()) {
      // The first part carries the prefetch; one statement takes at most batchSize units.
      const limit = Math.min(p.n + (i === 0 ? prefetch : 0), config.batchSize);
      let units: LeasedUnit[] = [];
      try {
        if (limit > 0) {
          units = await engine.claim(db, config.workerId, config.names, p.queues, limit, config.leaseMs);
          this.deps.claimed(units.length);
          if (units.some((u) => u.fleetLimited)) this.fleetLimitedSeenAt = Date.now();
        }
      } catch (error) {
        if (!failed) this.deps.error(error as Error, 'claim');
        failed = true;
      }
      const toStart = Math.min(units.length, p.n);
      slots.unreserve(p, p.n - toStart);
      if (this.stopping && units.length > 0) {
        // stop() began while this claim was in flight: hand the units straight back.
        await engine.releaseLeases(db, units).catch(() => {});
        for (const unit of units.slice(0, toStart)) slots.release(unit.queue);
        units = [];
      }
      if (units.length > 0) this.deps.accept(units.slice(0, toStart), units.slice(toStart));
      claimed += units.length;
      if (limit > 0 && units.length === limit) this.moreWork = true;
      else short = true;
    }
    this.lastClaimFull = !failed && !short;
    if (failed) {
      const cap = this.listening ? MAX_CLAIM_BACKOFF_MS.listening : MAX_CLAIM_BACKOFF_MS.polled;
      this.errorDelayMs = Math.min(Math.max(this.errorDelayMs * 2, 200), cap);
      this.backoffUntil = Date.now() + this.errorDelayMs;
      this.moreWork = true;
    } else {
      this.errorDelayMs = 0;
      // Work was found: a polled database keeps its base poll (the lookups made while units
      // run would otherwise stretch it as if it were idle).
      if (claimed > 0) {
        this.idlePolls = 0;
        this.dueNowRetryMs = DUE_NOW_RETRY_MS.first;
      }
      if (short && !this.moreWork) {
        // Nothing more is due now: look up when something will be (a scheduled run, a
        // backoff, a rate limit's window), also while units just claimed run, so that free
        // slots are used then rather than when those handlers end. One statement per short
        // claim; only a claim that filled every slot leaves it for when the worker is idle.
        // (Not awaited when units were claimed: the next claim need not wait for it.)
        if (claimed === 0) await this.scheduleDueCheck();
        else if (slots.free() > 0) this.dueCheck = this.scheduleDueCheck();
        else this.dueCheckPending = true;
      } else {
        this.idlePolls = 0;
      }
    }
    this.claiming = false;
    this.deps.kick();
  }

  /**
   * The worker holds no unit of this database any more: look up the next due time if a
   * claim asked for it, or if the pending wake-up came from a look-up that saw this
   * worker's own leases. (Many databases: every quiet tenant woke a lease's length after
   * its jobs were done, to claim nothing, often on a new connection.)
   */
  noteIdle(): void {
    if (this.claiming || this.moreWork || this.stopping) return;
    if (this.wakeFromHeldLookup) {
      this.wakeFromHeldLookup = false;
      this.timer.clear();
      this.dueCheckPending = true;
    }
    if (this.dueCheckPending) this.dueCheck = this.scheduleDueCheck();
  }

  /** A retry or "not yet" of this database is due at `at`: wake no later than that. */
  wakeAt(at: number): void {
    this.timer.wakeAt(at);
  }

  private async scheduleDueCheck(): Promise<void> {
    this.dueCheckPending = false;
    if (this.stopping) return;
    await this.sleepUntilDue().catch((error: Error) => {
      if (this.stopping) return;
      this.deps.error(error, 'claim');
      this.timer.wakeIn(this.deps.config.pollIntervalMs);
    });
  }

  /**
   * Idle: sleep until the next scheduled unit is due, or the poll interval, whichever is
   * first. Without a listener the poll interval grows while the database stays idle.
   */
  private async sleepUntilDue(): Promise<void> {
    const { engine, db, config, slots } = this.deps;
    const holding = this.deps.holding();
    // With per-queue caps, a queue whose slots are all taken cannot claim now: its due work
    // is left out of the look-up (it read as "due now but not claimed", a retry every 50 ms,
    // two statements each, for as long as the queue stayed full), and the next freed slot
    // wakes a claim instead.
    let queues = config.queues;
    if (config.queueLimits.size > 0) {
      const served = config.queues ?? [...config.queueLimits.keys()];
      queues = served.filter((queue) => slots.hasRoom(queue));
      this.capsFull = queues.length < served.length;
    }
    const dueIn =
      queues !== null && queues.length === 0 ? null : await engine.nextDueInMs(db, config.names, queues);
    let poll = config.pollIntervalMs;
    const safety = this.deps.safetyPoll;
    if (safety && (this.listening || this.watched)) {
      const now = Date.now();
      poll = nextOnGrid(now, Math.max(poll, safety.periodMs()), safety.offsetMs()) - now;
    } else if (!this.listening) {
      poll = Math.min(poll * 2 ** Math.min(this.idlePolls, 10), Math.max(poll, config.idlePollMaxMs));
      this.idlePolls++;
    }
    let ms: number;
    if (dueIn !== null && dueIn <= 0) {
      // Due now but not claimed: another claimer holds it this instant; look again soon.
      ms = Math.min(this.dueNowRetryMs, poll);
      this.dueNowRetryMs = Math.min(this.dueNowRetryMs * 2, DUE_NOW_RETRY_MS.max);
    } else {
      ms = dueIn === null ? poll : Math.min(Math.ceil(dueIn) + 5, poll);
      if (holding && ms < poll) this.wakeFromHeldLookup = true;
    }
    this.timer.wakeIn(ms);
  }

  /** Resolves when the claim under way, and the look-up of the next due time it started, are done. */
  async settled(): Promise<void> {
    await this.claimDone;
    await this.dueCheck;
  }

  /** Stops claiming; a claim already sent hands its units back. Resolves when it has. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopSlotWatch?.();
    this.stopSlotWatch = null;
    this.timer.stop();
    await this.claimDone;
    // A look-up of the next due time not awaited by its claim: no statement after stop().
    await this.dueCheck;
    await this.unsubscribe?.().catch(() => {});
    this.unsubscribe = null;
    this.listening = false;
  }
}
