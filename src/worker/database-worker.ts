/**
 * Serves one database: wake-ups (NOTIFY, precise timers for scheduled work, a slow poll
 * as the fallback), claims when the Dispatcher grants slots, handler runs, batched
 * reports, and lease heartbeats. Shares its concurrency Slots with the other databases.
 */
import type pg from 'pg';
import { Engine, type LeasedUnit } from '../db/engine.js';
import { NotificationHub } from '../db/notifications.js';
import { BatchCompleter } from './completer.js';
import type { UnitEvent, WorkerEventMap, WorkerEventName } from './events.js';
import type { WorkerConfig } from './options.js';
import { errorRecord, runUnit, type ContinueWith, type RunDeps } from './runner.js';
import type { Slots } from './slots.js';

/** How a DatabaseWorker reports events to its Worker. */
export type Emit = <K extends WorkerEventName>(event: K, payload: WorkerEventMap[K]) => void;

interface InFlight {
  unit: LeasedUnit;
  controller: AbortController;
  startedAt: number;
  /** Lease lost or released: the result must not be reported. */
  abandoned: boolean;
}

/** One database's claim loop and everything in flight from it. */
export class DatabaseWorker {
  private readonly engine: Engine;
  private readonly hub: NotificationHub;
  private readonly listenAllowed: boolean;
  private readonly completer: BatchCompleter;
  private readonly inFlight = new Map<string, InFlight>();
  private unsubscribes: (() => Promise<void>)[] = [];
  private moreWork = true;
  private claiming = false;
  private started = false;
  private stopping = false;
  private listening = false;
  private idlePolls = 0;
  private backoffUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private claimDone: Promise<void> = Promise.resolve();
  /** A short claim got some units: look up the next due time once they are done. */
  private dueCheckPending = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private errorDelayMs = 0;
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
    this.hub = new NotificationHub(listenConfig ?? {});
    this.listenAllowed = listenConfig !== null;
    this.hub.onError((error) => this.emit('error', { database, error, during: 'listen' }));
    this.completer = new BatchCompleter(
      this.engine,
      pool,
      () => this.continueWith(),
      (error) => this.emit('error', { database, error, during: 'report' }),
    );
  }

  private continueWith(): ContinueWith | null {
    // While stopping, take no new work, not even the job's next step.
    if (this.stopping) return null;
    return {
      worker: this.config.workerId,
      names: this.config.names,
      queues: this.config.queues,
      leaseMs: this.config.leaseMs,
    };
  }

  /** True while this database has work in hand: units held, a claim running, or more waiting. */
  get busy(): boolean {
    return this.inFlight.size > 0 || this.claiming || this.moreWork;
  }

  /** Units held now (running or waiting to be reported). */
  get running(): number {
    return this.inFlight.size;
  }

  /** Subscribes to wake-ups (when allowed a listener) and starts claiming. */
  async start(): Promise<void> {
    if (this.listenAllowed) {
      try {
        this.unsubscribes.push(
          await this.hub.subscribe(
            this.engine.readyChannel,
            (queue) => {
              if (this.config.queues === null || this.config.queues.includes(queue)) this.wake();
            },
            () => this.wake(),
          ),
          await this.hub.subscribe(this.engine.cancelChannel, (jobId) => {
            this.inFlight.get(jobId)?.controller.abort(new Error(`job ${jobId} was cancelled`));
          }),
        );
        this.listening = true;
      } catch (error) {
        // Without LISTEN the worker still runs: the poll finds the work, only later.
        this.emit('error', { database: this.database, error: error as Error, during: 'listen' });
      }
    }
    this.heartbeat = setInterval(() => void this.beat(), this.config.heartbeatMs);
    this.heartbeat.unref();
    this.started = true;
    this.wake();
  }

  /** Notes that work may be waiting; the dispatcher decides when this database claims. */
  wake(): void {
    this.moreWork = true;
    this.kick();
  }

  /**
   * Wakes this database after `ms`, unless a wake-up is already due sooner: a backoff
   * retry armed while a claim was in flight must not be pushed back by the idle timer.
   */
  private arm(ms: number): void {
    if (this.stopping) return;
    const at = Date.now() + Math.max(0, ms);
    if (this.timer !== undefined && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.wake();
    }, at - Date.now());
  }

  /** True when this database may have claimable work and is not claiming or backing off. */
  get wantsWork(): boolean {
    return (
      this.started && this.moreWork && !this.claiming && !this.stopping && Date.now() >= this.backoffUntil
    );
  }

  /**
   * Reserves up to `max` slots and claims into them (asynchronously). Returns false when
   * there was no room (every capped queue full). Called by the Dispatcher only.
   */
  startClaim(max: number): boolean {
    const plan = this.slots.reserve(max, this.config.queues);
    if (plan.length === 0) return false;
    this.claiming = true;
    // Cleared before claiming: a NOTIFY arriving meanwhile sets it again.
    this.moreWork = false;
    this.claimDone = this.claimPlan(plan);
    return true;
  }

  private async claimPlan(plan: { queues: string[] | null; n: number }[]): Promise<void> {
    let short = false;
    let failed = false;
    let claimed = 0;
    for (const p of plan) {
      let units: LeasedUnit[] = [];
      try {
        units = await this.engine.claim(
          this.pool,
          this.config.workerId,
          this.config.names,
          p.queues,
          p.n,
          this.config.leaseMs,
        );
      } catch (error) {
        if (!failed) this.emit('error', { database: this.database, error: error as Error, during: 'claim' });
        failed = true;
      } finally {
        this.slots.unreserve(p, p.n - units.length);
      }
      if (this.stopping && units.length > 0) {
        // stop() began while this claim was in flight: hand the units straight back.
        await this.engine.releaseLeases(this.pool, units).catch(() => {});
        for (const unit of units) this.slots.release(unit.queue);
        units = [];
      }
      for (const unit of units) this.startUnit(unit);
      claimed += units.length;
      if (units.length === p.n) this.moreWork = true;
      else short = true;
    }
    if (failed) {
      this.errorDelayMs = Math.min(Math.max(this.errorDelayMs * 2, 200), 30_000);
      this.backoffUntil = Date.now() + this.errorDelayMs;
      this.moreWork = true;
      this.arm(this.errorDelayMs);
    } else {
      this.errorDelayMs = 0;
      if (short && !this.moreWork) {
        // Nothing more is due now. When this claim found nothing, look up when something
        // will be; otherwise do that once the units just claimed have finished (idle).
        if (claimed === 0) await this.scheduleDueCheck();
        else this.dueCheckPending = true;
      } else {
        this.idlePolls = 0;
      }
    }
    this.claiming = false;
    this.kick();
  }

  private async scheduleDueCheck(): Promise<void> {
    this.dueCheckPending = false;
    await this.sleepUntilDue().catch((error: Error) => {
      this.emit('error', { database: this.database, error, during: 'claim' });
      this.arm(this.config.pollIntervalMs);
    });
  }

  /**
   * Idle: sleep until the next scheduled unit is due, or the poll interval, whichever is
   * first. Without a listener the poll interval grows while the database stays idle.
   */
  private async sleepUntilDue(): Promise<void> {
    const dueIn = await this.engine.nextDueInMs(this.pool, this.config.names, this.config.queues);
    let poll = this.config.pollIntervalMs;
    if (!this.listening) {
      poll = Math.min(poll * 2 ** Math.min(this.idlePolls, 10), Math.max(poll, this.config.idlePollMaxMs));
      this.idlePolls++;
    }
    // Due now but not claimed: another worker is claiming it this instant; look again soon.
    const ms = dueIn === null ? poll : dueIn <= 0 ? Math.min(50, poll) : Math.min(Math.ceil(dueIn) + 5, poll);
    this.arm(ms);
  }

  private unitEvent(unit: LeasedUnit): UnitEvent {
    return {
      database: this.database,
      jobId: unit.jobId,
      stepIndex: unit.stepIndex,
      name: unit.name,
      phase: unit.phase,
      attempt: unit.attempt,
      queue: unit.queue,
    };
  }

  private startUnit(unit: LeasedUnit): void {
    const flight: InFlight = {
      unit,
      controller: new AbortController(),
      startedAt: Date.now(),
      abandoned: false,
    };
    this.inFlight.set(unit.jobId, flight);
    this.emit('step:started', this.unitEvent(unit));
    void this.execute(flight);
  }

  private async execute(flight: InFlight): Promise<void> {
    const { unit } = flight;
    const definition = this.config.handlers.get(unit.name);
    const deps: RunDeps = {
      engine: this.engine,
      pool: this.pool,
      database: this.database,
      continueWith: this.continueWith() ?? {
        worker: this.config.workerId,
        names: [],
        queues: null,
        leaseMs: 1,
      },
    };
    const outcome = definition
      ? await runUnit(unit, definition, flight.controller, deps)
      : { kind: 'failure' as const, error: new Error(`no handler for ${unit.name}`), permanent: false };
    const durationMs = Date.now() - flight.startedAt;
    const base = this.unitEvent(unit);
    let next: LeasedUnit | null = null;
    let jobStatus: string | null = null;
    // The slot is for running handlers. When no continuation can follow (a failure, or
    // the job's last step) it is freed now, so the next claim overlaps this report.
    let slotHeld = true;
    const lastStep = unit.phase === 'forward' && unit.stepIndex + 1 >= unit.stepCount;
    if (outcome.kind === 'failure' || outcome.kind === 'later' || (outcome.kind === 'success' && lastStep)) {
      slotHeld = false;
      this.slots.release(unit.queue);
      this.kick();
    }

    if (flight.abandoned && outcome.kind !== 'applied') {
      // Released at stop or lease lost: another worker owns the unit now.
    } else if (outcome.kind === 'success' || outcome.kind === 'applied') {
      const result = outcome.kind === 'applied' ? outcome.result : await this.completer.complete(unit);
      if (result.accepted) {
        this.emit('step:succeeded', { ...base, durationMs });
        next = result.next;
        jobStatus = result.jobStatus;
      } else {
        this.emit('step:lease-lost', base);
      }
    } else {
      const error = outcome.kind === 'failure' ? outcome.error : new Error('not yet');
      const result = await this.completer.fail({
        jobId: unit.jobId,
        leaseToken: unit.leaseToken,
        error: errorRecord(error, unit.attempt),
        permanent: outcome.kind === 'failure' && outcome.permanent,
        retryAfterMs: outcome.kind === 'later' ? outcome.delayMs : null,
      });
      if (!result.accepted) {
        this.emit('step:lease-lost', base);
      } else {
        jobStatus = result.jobStatus;
        if (outcome.kind === 'failure') {
          this.emit('step:failed', {
            ...base,
            durationMs,
            error,
            outcome: result.outcome ?? 'retry',
            nextRunAt: result.nextRunAt,
          });
        }
        if (result.outcome === 'retry' || result.outcome === 'not_yet') {
          this.emit('step:retry-scheduled', {
            ...base,
            nextRunAt: result.nextRunAt,
            notYet: outcome.kind === 'later',
          });
          // The retry may be due before the next poll: sleep no longer than that.
          if (result.nextRunAt) this.arm(result.nextRunAt.getTime() - Date.now() + 5);
        }
      }
    }
    if (
      jobStatus === 'succeeded' ||
      jobStatus === 'failed' ||
      jobStatus === 'compensated' ||
      jobStatus === 'cancelled'
    ) {
      this.emit(`job:${jobStatus}`, { database: this.database, jobId: unit.jobId });
    }

    this.inFlight.delete(unit.jobId);
    if (next) {
      // The job's next step, already leased to us: run it in the same slot (or a free one).
      if (!this.stopping && (slotHeld || this.slots.tryTake(next.queue))) {
        this.startUnit(next);
        return;
      }
      await this.engine.releaseLeases(this.pool, [next]).catch(() => {});
    }
    if (slotHeld) this.slots.release(unit.queue);
    if (this.inFlight.size === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      if (this.dueCheckPending && !this.claiming && !this.moreWork && !this.stopping)
        void this.scheduleDueCheck();
    }
    this.kick();
  }

  /** Heartbeat: extend every held lease; abort what was lost or cancelled. */
  private async beat(): Promise<void> {
    const held = [...this.inFlight.values()].filter((f) => !f.abandoned);
    if (held.length === 0) return;
    try {
      const kept = await this.engine.extendLeases(
        this.pool,
        held.map((f) => f.unit),
        this.config.leaseMs,
      );
      for (const f of held) {
        if (this.inFlight.get(f.unit.jobId) !== f) continue; // finished meanwhile
        const cancelled = kept.get(f.unit.jobId);
        if (cancelled === undefined) {
          f.abandoned = true;
          f.controller.abort(new Error(`lease on job ${f.unit.jobId} was lost`));
        } else if (cancelled && !f.controller.signal.aborted) {
          f.controller.abort(new Error(`job ${f.unit.jobId} was cancelled`));
        }
      }
    } catch (error) {
      this.emit('error', { database: this.database, error: error as Error, during: 'heartbeat' });
    }
  }

  /**
   * Stops claiming, lets in-flight units finish for up to gracefulStopMs, then aborts the
   * rest and releases their leases so other workers take them at once.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    // A claim already sent returns its units to the queue (see claimPlan); wait for it.
    await this.claimDone;
    for (const u of this.unsubscribes.splice(0)) await u().catch(() => {});
    await this.hub.close();
    this.listening = false;
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, this.config.gracefulStopMs))),
      ]);
      clearTimeout(timer);
    }
    const left = [...this.inFlight.values()].filter((f) => !f.abandoned);
    if (left.length > 0) {
      for (const f of left) {
        f.abandoned = true;
        f.controller.abort(new Error('worker is stopping'));
      }
      await this.engine
        .releaseLeases(
          this.pool,
          left.map((f) => f.unit),
        )
        .catch((error: Error) => {
          this.emit('error', { database: this.database, error, during: 'release' });
        });
    }
    clearInterval(this.heartbeat);
    this.completer.close();
    await this.completer.idle();
  }
}
