/**
 * Serves one database by composing its Fetcher (wake-ups and claims), LeaseKeeper
 * (heartbeats) and BatchCompleter (reports): runs each claimed unit's handler, settles its
 * outcome, and runs the job's next unit in the same slot when the engine leased it to us.
 * Shares the worker's concurrency Slots with the other databases.
 */
import type pg from 'pg';
import { Engine, type LeasedUnit } from '../db/engine.js';
import { describeConnection, ListenCheck } from '../db/listen-check.js';
import { NotificationHub } from '../db/notifications.js';
import { BatchCompleter } from './completer.js';
import { runUnit } from './executor.js';
import { Fetcher } from './fetcher.js';
import { type HeldUnit, LeaseKeeper } from './lease-keeper.js';
import { Permits } from './permits.js';
import type { WorkerConfig } from './options.js';
import { type Emit, settle, unitEvent } from './settle.js';
import type { Slots } from './slots.js';

export type { Emit } from './settle.js';

/** One database's claim loop and everything in flight from it. */
export class DatabaseWorker {
  private readonly engine: Engine;
  private readonly hub: NotificationHub | null;
  private readonly fetcher: Fetcher;
  private readonly keeper: LeaseKeeper;
  private readonly completer: BatchCompleter;
  /**
   * Units claimed for a job whose previous unit is still settling here (its report is
   * applied, its events not yet emitted): started once that one is done, so one job's
   * units never overlap in this worker and its events come in causal order.
   */
  private readonly waiting = new Map<string, LeasedUnit>();
  /** Pool connections transactional handlers may hold at once: all but one. */
  private readonly transactions: Permits;
  private stopping = false;
  private unsubscribeCancel: (() => Promise<void>) | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly config: WorkerConfig,
    private readonly pool: pg.Pool,
    /** Stable identifier of this database for ctx.database and events (never credentials). */
    readonly database: string,
    private readonly slots: Slots,
    private readonly emit: Emit,
    /** Asks the dispatcher to hand out free slots (work may be waiting, or a slot freed). */
    private readonly kick: () => void,
    /** Connection settings for the LISTEN connection; null: no listener, poll adaptively. */
    listenConfig: pg.ClientConfig | null,
  ) {
    this.engine = new Engine(config.schema);
    this.transactions = new Permits(
      Math.max(1, ((pool.options as pg.PoolConfig).max ?? config.poolSize) - 1),
    );
    this.hub = listenConfig ? new NotificationHub(listenConfig) : null;
    this.hub?.onError((error) => this.emit('error', { database, error, during: 'listen' }));
    const error = (e: Error, during: string) => this.emit('error', { database, error: e, during });
    this.fetcher = new Fetcher({
      engine: this.engine,
      pool,
      config,
      slots,
      hub: this.hub,
      accept: (units) => this.accept(units),
      error,
      kick,
    });
    this.keeper = new LeaseKeeper(this.engine, pool, config.leaseMs, config.heartbeatMs, (e) =>
      error(e, 'heartbeat'),
    );
    this.completer = new BatchCompleter(
      this.engine,
      pool,
      () => this.continuation(),
      config.leaseMs,
      (e) => error(e, 'report'),
    );
  }

  /** Who may be handed a job's next unit: this worker, unless it is stopping. */
  private continuation() {
    if (this.stopping) return null;
    const { workerId, names, queues, leaseMs } = this.config;
    return { worker: workerId, names, queues, leaseMs };
  }

  /** True while this database has work in hand: units held, a claim running, or more waiting. */
  get busy(): boolean {
    return this.keeper.size > 0 || this.fetcher.busy;
  }

  /** Units held now (running or waiting to be reported). */
  get running(): number {
    return this.keeper.size + this.waiting.size;
  }

  /** True when this database has a LISTEN connection subscribed. */
  get hasListener(): boolean {
    return this.fetcher.hasListener;
  }

  /** For the dispatcher: may have claimable work and is not claiming or backing off. */
  get wantsWork(): boolean {
    return this.fetcher.wantsWork;
  }

  /** For the dispatcher: reserves up to `max` slots and claims into them; returns how many it reserved. */
  startClaim(max: number): number {
    return this.fetcher.startClaim(max);
  }

  /** Subscribes to wake-ups and cancel hints (when allowed a listener) and starts claiming. */
  async start(): Promise<void> {
    if (this.hub) {
      try {
        this.unsubscribeCancel = await this.hub.subscribe(this.engine.cancelChannel, (jobId) =>
          this.keeper.hint(jobId),
        );
      } catch (error) {
        this.emit('error', { database: this.database, error: error as Error, during: 'listen' });
      }
    }
    this.keeper.start();
    await this.fetcher.start();
    if (this.hub && this.fetcher.hasListener) void this.checkListener(this.hub);
  }

  /**
   * LISTEN through a transaction-pooling PgBouncer hears nothing, silently: probe once
   * (a NOTIFY through the pool must reach the listener) and poll when it does not.
   */
  private async checkListener(hub: NotificationHub): Promise<void> {
    const check = new ListenCheck(hub, this.pool, `${this.config.schema}_probe`, {
      describe: describeConnection(this.pool),
      onUnavailable: (message) =>
        this.emit('error', { database: this.database, error: new Error(message), during: 'listen' }),
    });
    if (!(await check.delivers()) && !this.stopping) this.fetcher.listenerUnavailable();
  }

  /** Notes that work may be waiting. */
  wake(): void {
    this.fetcher.wake();
  }

  private accept(units: LeasedUnit[]): void {
    for (const unit of units) {
      if (this.keeper.has(unit.jobId)) this.waiting.set(unit.jobId, unit);
      else this.startUnit(unit);
    }
  }

  private startUnit(unit: LeasedUnit): void {
    const held = this.keeper.hold(unit);
    this.emit('step:started', unitEvent(this.database, unit));
    void this.execute(held);
  }

  private async execute(held: HeldUnit): Promise<void> {
    const { unit } = held;
    const definition = this.config.handlers.get(unit.name);
    const outcome = definition
      ? await runUnit(unit, definition, held.controller, {
          pool: this.pool,
          database: this.database,
          acquireTransaction: () => this.transactions.acquire(),
        })
      : { kind: 'failure' as const, error: new Error(`no handler for ${unit.name}`), permanent: false };
    // The slot is for running handlers. When no continuation can follow (a failure, or
    // the job's last step) it is freed now, so the next claim overlaps this report.
    let slotHeld = true;
    const lastStep = unit.phase === 'forward' && unit.stepIndex + 1 >= unit.stepCount;
    if (outcome.kind !== 'success' || lastStep) {
      slotHeld = false;
      this.slots.release(unit.queue);
      this.kick();
    }

    let next: LeasedUnit | null = null;
    if (held.abandoned) {
      // Released at stop or lease lost: another worker owns the unit now.
      if (outcome.kind === 'success') await outcome.tx?.finish(false).catch(() => {});
    } else {
      const result = await settle(
        {
          engine: this.engine,
          completer: this.completer,
          continuation: () => this.continuation(),
          emit: this.emit,
          database: this.database,
          dueAt: (at) => this.fetcher.wakeAt(at),
        },
        unit,
        definition,
        outcome,
        held.startedAt,
      );
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
      await this.engine.releaseLeases(this.pool, [next]).catch(() => {});
    }
    if (slotHeld) this.slots.release(unit.queue);
    if (this.keeper.size === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      this.fetcher.noteIdle();
    }
    this.kick();
  }

  /**
   * Stops claiming, lets in-flight units finish for up to gracefulStopMs, then aborts the
   * rest and releases their leases so other workers take them at once.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    // A claim already sent returns its units to the queue; wait for it.
    await this.fetcher.stop();
    await this.unsubscribeCancel?.().catch(() => {});
    await this.hub?.close();
    if (this.waiting.size > 0) {
      const units = [...this.waiting.values()];
      this.waiting.clear();
      await this.engine.releaseLeases(this.pool, units).catch(() => {});
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
        h.controller.abort(new Error('worker is stopping'));
      }
      await this.engine
        .releaseLeases(
          this.pool,
          left.map((h) => h.unit),
        )
        .catch((error: Error) => {
          this.emit('error', { database: this.database, error, during: 'release' });
        });
    }
    await this.keeper.stop();
    this.completer.close();
    await this.completer.idle();
  }
}
