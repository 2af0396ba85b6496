/**
 * Serves one database by composing its Fetcher (wake-ups and claims), LeaseKeeper
 * (heartbeats) and BatchCompleter (reports): runs each claimed unit's handler, settles its
 * outcome, and runs the job's next unit in the same slot when the engine leased it to us.
 * Shares the worker's concurrency Slots with the other databases.
 */
import type pg from 'pg';

import { CallDeadline, type Misbehaviour } from '../db/deadline.js';
import { Engine, type LeasedUnit } from '../db/engine.js';
import { describeConnection, ListenCheck } from '../db/listen-check.js';
import { NotificationHub } from '../db/notifications.js';
import type { Queryable } from '../db/queryable.js';
import type { DatabaseTelemetry } from '../telemetry/worker.js';
import { BatchCompleter } from './completer.js';
import { type Outcome, runUnit } from './executor.js';
import { Fetcher } from './fetcher.js';
import { type HeldUnit, LeaseKeeper } from './lease-keeper.js';
import type { WorkerConfig } from './options.js';
import { Permits } from './permits.js';
import { RateMeter } from './rate.js';
import { WorkerPresence } from './registry.js';
import { Scheduler } from './scheduler.js';
import { type Emit, settle, type SettleDeps, unitEvent } from './settle.js';
import type { Slots } from './slots.js';

export type { Emit } from './settle.js';

/**
 * Units claimed ahead ("prefetched") are kept for at most about this long's worth of the
 * handler rate seen lately, and never more than MAX_KEPT: enough to hide a claim's round
 * trip behind the handlers, few enough not to hoard work other workers could run.
 */
const PREFETCH_HORIZON_MS = 500;
const MAX_KEPT = 500;

/** Least time between two scheduler looks caused by activity-watch wake-ups. */
const SCHEDULER_WAKE_MS = 2000;

/**
 * Many databases: after the registry beat and maintenance on a database's grid instant
 * (see ManyDatabasesMode.gridOffsetMs), its safety poll, then its schedule look: each
 * finds the connection the one before used still open (a pool keeps an idle one 250 ms)
 * instead of all three opening one at the same instant.
 */
const SAFETY_POLL_LAG_MS = 60;
const SCHEDULE_LOOK_LAG_MS = 120;

/** How a DatabaseWorker behaves as one of many databases under a connection budget. */
export interface ManyDatabasesMode {
  /** Idle poll period when a listener or the activity watch covers the database. */
  safetyPollMs: () => number;
  /** Stretches the registry beat and maintenance periods with the number of databases. */
  spread: (periodMs: number) => number;
  /**
   * This database's offset on the grid its periodic calls keep (see nextOnGrid): the
   * registry beat, maintenance, safety poll and schedule look of one database come together
   * on one connection, and the databases' offsets are spread over the period.
   */
  gridOffsetMs: () => number;
  /** This worker inserted a row of its own (its registration): no work for the activity watch to wake on. */
  ownInsert: (delta: number) => void;
  /**
   * Units to claim beyond the slots granted: a tenant's few jobs come in one claim on one
   * connection instead of one claim per slot grant (the slots are shared by every tenant).
   */
  claimAhead: number;
  /** Longest wait for one engine call in this database (see db/deadline.ts). */
  callTimeoutMs: number;
  /**
   * An engine call did not answer in time, or answered with a message too long to hold:
   * set the database aside (called once per DatabaseWorker).
   */
  misbehaved(error: Misbehaviour): void;
}

/** One database's claim loop and everything in flight from it. */
export class DatabaseWorker {
  private readonly engine: Engine;
  /**
   * Where the worker's own calls go: the pool, or in many-databases mode the pool with
   * every call bounded by the deadline (handlers get the pool itself: their queries are
   * theirs to bound).
   */
  private readonly db: Queryable;
  private readonly deadline: CallDeadline | null;
  private cutOff: Misbehaviour | null = null;
  private readonly hub: NotificationHub | null;
  private readonly fetcher: Fetcher;
  private readonly keeper: LeaseKeeper;
  private readonly completer: BatchCompleter;
  /** Live-worker registration and this worker's share of maintenance. */
  private readonly presence: WorkerPresence;
  private readonly scheduler: Scheduler;
  /**
   * Units claimed for a job whose previous unit is still settling here (its report is
   * applied, its events not yet emitted): started once that one is done, so one job's
   * units never overlap in this worker and its events come in causal order.
   */
  private readonly waiting = new Map<string, LeasedUnit>();
  /** Units claimed ahead of free slots, held (heart-beaten) until a slot starts them. */
  private readonly kept: HeldUnit[] = [];
  /** Handlers finished per second, which sizes the prefetch. */
  private readonly finished = new RateMeter();
  /** Pool connections transactional handlers may hold at once: all but one. */
  private readonly transactions: Permits;
  private stopping = false;
  /** The wait before the next LISTEN probe, after one was lost; ended by stop(). */
  private reprobeTimer: NodeJS.Timeout | undefined;
  private endReprobeWait: () => void = () => {};
  private schedulerWokenAt = 0;
  private unsubscribeCancel: (() => Promise<void>) | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly telemetry: DatabaseTelemetry;

  constructor(
    private readonly config: WorkerConfig,
    private readonly pool: pg.Pool,
    /** Stable identifier of this database for ctx.database and events (never credentials). */
    readonly database: string,
    private readonly slots: Slots,
    private readonly emit: Emit,
    /** Asks the dispatcher to hand out free slots (work may be waiting, or a slot freed). */
    private readonly kick: (now?: boolean) => void,
    /** Connection settings for the LISTEN connection; null: no listener, poll adaptively. */
    listenConfig: pg.ClientConfig | null,
    /** Null: the only database of its worker. */
    private readonly many: ManyDatabasesMode | null = null,
  ) {
    this.engine = new Engine(config.schema);
    this.deadline = many
      ? new CallDeadline(pool, many.callTimeoutMs, (e) => {
          this.cutOff = e;
          many.misbehaved(e);
        })
      : null;
    this.db = this.deadline ? this.deadline.pool() : pool;
    this.transactions = new Permits(
      Math.max(1, ((pool.options as pg.PoolConfig).max ?? config.poolSize) - 1),
    );
    this.hub = listenConfig ? new NotificationHub(listenConfig) : null;
    this.hub?.onError((error) => this.emit('error', { database, error, during: 'listen' }));
    const error = (e: Error, during: string) => this.emit('error', { database, error: e, during });
    this.telemetry = config.telemetry.forDatabase(database, this.engine, this.db);
    this.fetcher = new Fetcher({
      engine: this.engine,
      db: this.db,
      config,
      slots,
      hub: this.hub,
      accept: (start, keep) => this.accept(start, keep),
      error,
      kick,
      safetyPoll: many
        ? { periodMs: many.safetyPollMs, offsetMs: () => many.gridOffsetMs() + SAFETY_POLL_LAG_MS }
        : null,
      claimed: (n) => this.telemetry.claimed(n),
      holding: () => this.keeper.size > 0,
    });
    this.keeper = new LeaseKeeper(this.engine, this.db, config.leaseMs, config.heartbeatMs, (e) =>
      error(e, 'heartbeat'),
    );
    this.scheduler = new Scheduler({
      ...config,
      // Many databases: every database's scheduler polling would cost a statement (often a
      // connection) each per pollIntervalMs; wake-ups come from the activity watch instead.
      pollIntervalMs: many ? Math.max(config.pollIntervalMs, many.safetyPollMs()) : config.pollIntervalMs,
      idleGridOffsetMs: many ? () => many.gridOffsetMs() + SCHEDULE_LOOK_LAG_MS : null,
      db: this.db,
      hub: this.hub,
      definitions: config.schedules,
      error,
    });
    this.completer = new BatchCompleter(
      this.engine,
      this.db,
      () => this.continuation(),
      config.leaseMs,
      (e) => error(e, 'report'),
    );
    this.presence = new WorkerPresence(config, this.db, database, emit, many, many?.ownInsert);
    this.settleDeps = {
      engine: this.engine,
      completer: this.completer,
      continuation: () => this.continuation(),
      emit,
      database,
      dueAt: (at) => this.fetcher.wakeAt(at),
      deadline: this.deadline,
    };
  }

  /** What settle needs, made once (not per unit). */
  private readonly settleDeps: SettleDeps;

  /** Who may be handed a job's next unit: this worker, unless it is stopping. */
  private continuation() {
    if (this.stopping) return null;
    const { workerId, names, queues, leaseMs } = this.config;
    return { worker: workerId, names, queues, leaseMs };
  }

  /** Many databases: why its engine calls were cut off (null: they were not). */
  get misbehaviour(): Misbehaviour | null {
    return this.cutOff;
  }

  /** True while this database has work in hand: units held, a claim running, or more waiting. */
  get busy(): boolean {
    return this.keeper.size > 0 || this.fetcher.busy;
  }

  /**
   * True while this database uses its connections: units running or being reported (not
   * only kept for a free slot), or a claim under way. Its idle connections stay its own.
   */
  get usingConnections(): boolean {
    return this.keeper.size > this.kept.length || this.fetcher.claimInFlight;
  }

  /** Units held now (running or waiting to be reported). */
  get running(): number {
    return this.keeper.size + this.waiting.size;
  }

  /** True when this database has a LISTEN connection subscribed. */
  get hasListener(): boolean {
    return this.fetcher.hasListener;
  }

  /** For the dispatcher: its last claim came back full (more is waiting: a hot tenant). */
  get backlogged(): boolean {
    return this.fetcher.backlog;
  }

  /** For the dispatcher: has units in hand to start, or may have claimable work. */
  get wantsWork(): boolean {
    return this.kept.length > 0 || this.fetcher.wantsWork;
  }

  /**
   * For the dispatcher: takes up to `max` slots, first for units already in hand, then by
   * claiming (with a prefetch sized to the backlog); returns how many slots it took.
   */
  startClaim(max: number): number {
    let taken = 0;
    while (taken < max && this.kept.length > 0 && !this.stopping) {
      const held = this.kept[0]!;
      if (held.abandoned) {
        this.kept.shift();
        this.keeper.drop(held);
        continue;
      }
      if (!this.slots.tryTake(held.unit.queue)) break;
      this.kept.shift();
      this.begin(held);
      taken++;
    }
    return taken + this.fetcher.startClaim(this.probing ? 0 : max - taken, this.prefetchWanted());
  }

  /**
   * Many databases: one with nothing in hand and no backlog claims ahead only (its units
   * wait in `kept` and take slots as they are granted) instead of reserving slots for the
   * claim. While many tenants start at once their claims wait a long while for a
   * connection, and slots reserved for them sat idle meanwhile: a hot tenant waited over a
   * second for its first slot. (Not with per-queue caps: those forbid claiming ahead.)
   */
  private get probing(): boolean {
    return (
      this.many !== null &&
      this.kept.length === 0 &&
      !this.fetcher.backlog &&
      this.config.queueLimits.size === 0
    );
  }

  /**
   * How many more units to claim ahead: with a backlog, sized to the recent handler rate;
   * in many-databases mode at least the claim-ahead (see ManyDatabasesMode).
   */
  private prefetchWanted(): number {
    if (this.stopping || this.fetcher.fleetLimited) return 0;
    if (!this.fetcher.backlog) return Math.max(0, (this.many?.claimAhead ?? 0) - this.kept.length);
    // Never less than the claim-ahead: a hot tenant's rate is unknown at first, and each
    // of its claims may wait for a connection while many tenants start.
    const target = Math.min(
      MAX_KEPT,
      Math.max(this.many?.claimAhead ?? 0, Math.ceil((this.finished.perSecond * PREFETCH_HORIZON_MS) / 1000)),
    );
    return Math.max(0, target - this.kept.length);
  }

  /**
   * Subscribes to wake-ups and cancel hints (when allowed a listener) and starts claiming.
   * `connection` (many databases): a connection of this database's pool that the start's
   * statements and its first claim run on, given back at the end (see CallDeadline.pin).
   */
  async start(connection: pg.PoolClient | null = null): Promise<void> {
    if (connection) {
      if (this.deadline) this.deadline.pin(connection);
      else connection.release();
    }
    try {
      await this.startOn();
    } finally {
      this.deadline?.unpin();
    }
  }

  private async startOn(): Promise<void> {
    if (this.hub) {
      try {
        this.unsubscribeCancel = await this.hub.subscribe(this.engine.cancelChannel, (jobId) =>
          this.keeper.hint(jobId),
        );
      } catch (error) {
        this.emit('error', { database: this.database, error: error as Error, during: 'listen' });
      }
    }
    // A stop that came meanwhile (the database removed, the worker stopping while a
    // listener permit was being handed on) has stopped what started so far: start no more.
    if (this.stopping) return;
    this.keeper.start();
    await this.presence.start();
    if (this.stopping) return;
    await this.scheduler.start();
    if (this.stopping) return;
    await this.fetcher.start();
    if (this.hub && this.fetcher.hasListener && !this.stopping) void this.checkListener(this.hub);
    // Many databases: the first claim now, on the start's connection, rather than when the
    // dispatcher comes round (by then that connection had often been closed for another
    // database, and the claim paid for a new one). Claimed ahead, as the dispatcher would
    // have (see probing); not while every slot is taken, as it would not either.
    if (this.probing && !this.stopping && this.slots.free() > 0) {
      this.startClaim(0);
      await this.fetcher.settled();
    }
  }

  /**
   * LISTEN through a transaction-pooling PgBouncer hears nothing, silently: probe once
   * (a NOTIFY through the pool must reach the listener) and poll when it does not.
   */
  private async checkListener(hub: NotificationHub): Promise<void> {
    const check = new ListenCheck(hub, this.db, `${this.config.schema}_probe`, {
      describe: describeConnection(this.pool),
      // Not once stopping: a probe cut short by the stop (its hub closed) says nothing about LISTEN.
      onUnavailable: (message) => {
        if (!this.stopping)
          this.emit('error', { database: this.database, error: new Error(message), during: 'listen' });
      },
    });
    if ((await check.delivers()) || this.stopping) return;
    this.fetcher.listenerUnavailable();
    // Probe again now and then: a lost probe (a reconnect at that moment, an event loop
    // blocked past the timeout) must not mean polling for the worker's lifetime.
    for (;;) {
      const waitMs = check.reprobeInMs() ?? 0;
      await new Promise<void>((resolve) => {
        this.reprobeTimer = setTimeout(resolve, waitMs);
        this.reprobeTimer.unref();
        this.endReprobeWait = resolve;
      });
      if (this.stopping) return;
      if (await check.delivers()) {
        if (!this.stopping) this.fetcher.listenerAvailable();
        return;
      }
    }
  }

  /**
   * Notes that work may be waiting (the activity watch saw inserts). The scheduler looks
   * too (a new schedule is an insert), at most every SCHEDULER_WAKE_MS.
   */
  wake(): void {
    this.fetcher.wake();
    const now = Date.now();
    if (now - this.schedulerWokenAt >= SCHEDULER_WAKE_MS) {
      this.schedulerWokenAt = now;
      this.scheduler.wake();
    }
  }

  /** Whether the server's activity watch covers this database (else it polls). */
  setWatched(watched: boolean): void {
    this.fetcher.setWatched(watched);
  }

  private accept(start: LeasedUnit[], keep: LeasedUnit[]): void {
    for (const unit of start) {
      if (this.keeper.has(unit.jobId)) this.waiting.set(unit.jobId, unit);
      else this.begin(this.keeper.hold(unit));
    }
    const clash: LeasedUnit[] = [];
    for (const unit of keep) {
      // A job already held here (a stale unit winding down) is given back, not kept.
      if (this.keeper.has(unit.jobId) || this.waiting.has(unit.jobId)) clash.push(unit);
      else this.kept.push(this.keeper.hold(unit));
    }
    if (clash.length > 0) void this.engine.releaseLeases(this.db, clash).catch(() => {});
  }

  /** Starts a held unit's handler (its slot is taken). */
  private begin(held: HeldUnit): void {
    held.startedAt = Date.now();
    if (this.emit.wants('step:started')) this.emit('step:started', unitEvent(this.database, held.unit));
    void this.execute(held);
  }

  private startUnit(unit: LeasedUnit): void {
    this.begin(this.keeper.hold(unit));
  }

  private async execute(held: HeldUnit): Promise<void> {
    const { unit } = held;
    const definition = this.config.handlers.get(unit.name);
    const attempt = this.telemetry.attempt(unit);
    const outcome: Outcome = definition
      ? await attempt.run(() =>
          runUnit(unit, definition, held.abort, {
            pool: this.pool,
            database: this.database,
            acquireTransaction: () => this.transactions.acquire(),
            leaseMs: this.config.leaseMs,
            holdLeaseQuietly: async (client, ms) => {
              // Quiet first, and no beat carrying it left in flight: a beat committing
              // after the transaction's snapshot is what the isolation level refuses.
              await this.keeper.quietened(held);
              const kept = await this.engine.extendLeases(client, [unit], ms).catch((error: unknown) => {
                held.quiet = false;
                throw error;
              });
              if (kept.has(unit.jobId)) return true;
              held.quiet = false;
              return false;
            },
            endQuiet: () => {
              held.quiet = false;
            },
          }),
        )
      : { kind: 'failure' as const, error: new Error(`no handler for ${unit.name}`), permanent: false };
    this.finished.add();
    // The slot is for running handlers. When no continuation can follow (a failure, or
    // the job's last step) it is freed now, so the next claim overlaps this report. With
    // many databases it is always freed now: a report waits on its database, and a tenant
    // whose engine does not answer must not hold the slots every tenant shares (the
    // continuation, if any, then takes a slot like a unit claimed ahead).
    let slotHeld = true;
    const lastStep = unit.phase === 'forward' && unit.stepIndex + 1 >= unit.stepCount;
    if (this.many !== null || outcome.kind !== 'success' || lastStep) {
      slotHeld = false;
      this.slots.release(unit.queue);
      this.kick();
    }

    let next: LeasedUnit | null = null;
    if (held.abandoned) {
      // Released at stop or lease lost: another worker owns the unit now.
      if (outcome.kind === 'success') await outcome.tx?.finish(false).catch(() => {});
      attempt.end({ outcome: 'abandoned', error: null, durationMs: Date.now() - held.startedAt });
    } else {
      const result = await settle(this.settleDeps, unit, definition, outcome, held.startedAt);
      attempt.end(result.end);
      // A given-up report: stop heart-beating so the lease lapses and the unit is recovered.
      if (result.gaveUp) held.abandoned = true;
      next = result.next;
    }
    this.keeper.drop(held);

    const queued = this.waiting.get(unit.jobId);
    if (queued) {
      this.waiting.delete(unit.jobId);
      this.startUnit(queued); // its slot was taken by its claim
    }
    if (next) {
      // The job's next unit, already leased to us: run it in the same slot (or a free one).
      if (!this.stopping && (slotHeld || this.slots.tryTake(next.queue))) {
        this.startUnit(next);
        return;
      }
      if (this.keepsInHand(next)) {
        // No slot free: held (heart-beaten) until the dispatcher grants one.
        this.kept.push(this.keeper.hold(next));
      } else {
        await this.engine.releaseLeases(this.db, [next]).catch(() => {});
      }
    }
    if (slotHeld) this.slots.release(unit.queue);
    if (this.keeper.size === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      this.fetcher.noteIdle();
    }
    this.kick();
  }

  /**
   * Many databases: a continuation that found no free slot is kept in hand rather than
   * given back (its slot was given up when its handler returned). Not with per-queue caps:
   * a unit kept in hand must be able to start (see probing).
   */
  private keepsInHand(unit: LeasedUnit): boolean {
    return (
      !this.stopping &&
      this.many !== null &&
      this.config.queueLimits.size === 0 &&
      !this.waiting.has(unit.jobId)
    );
  }

  /**
   * Stops claiming, lets in-flight units finish for up to gracefulStopMs, then aborts the
   * rest and releases their leases so other workers take them at once.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reprobeTimer);
    this.endReprobeWait();
    // A claim already sent returns its units to the queue; wait for it.
    await Promise.all([this.fetcher.stop(), this.scheduler.stop()]);
    await this.unsubscribeCancel?.().catch(() => {});
    await this.hub?.close();
    if (this.kept.length > 0) {
      const kept = this.kept.splice(0).filter((h) => !h.abandoned);
      for (const h of kept) {
        h.abandoned = true;
        this.keeper.drop(h);
      }
      await this.engine
        .releaseLeases(
          this.db,
          kept.map((h) => h.unit),
        )
        .catch(() => {});
    }
    if (this.waiting.size > 0) {
      const units = [...this.waiting.values()];
      this.waiting.clear();
      await this.engine.releaseLeases(this.db, units).catch(() => {});
      for (const u of units) this.slots.release(u.queue);
    }
    if (this.keeper.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, this.config.gracefulStopMs))),
      ]);
      clearTimeout(timer);
    }
    const left = this.keeper.live();
    if (left.length > 0) {
      for (const h of left) {
        h.abandoned = true;
        h.abort.abort(new Error('worker is stopping'));
      }
      await this.engine
        .releaseLeases(
          this.db,
          left.map((h) => h.unit),
        )
        .catch((error: Error) => {
          this.emit('error', { database: this.database, error, during: 'release' });
        });
    }
    await this.keeper.stop();
    this.telemetry.close();
    this.completer.close();
    await this.completer.idle();
    await this.presence.stop();
    await this.deadline?.settled();
  }
}
