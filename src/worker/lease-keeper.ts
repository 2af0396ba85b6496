/**
 * The lease keeper of one database: the units held from it, and their heartbeats. A beat
 * extends every held lease in one call; a unit missing from the answer lost its lease and
 * is aborted; a unit the database says was cancelled has its signal aborted (a quiet unit,
 * inside an isolated transaction, is left out: its lease was extended beforehand). Beats never
 * overlap: a beat asked for while one runs happens right after it. A cancel NOTIFY is only
 * a hint to beat now: the database's answer decides.
 */
import type { Engine, LeasedUnit } from '../db/engine.js';
import type { Queryable } from '../db/queryable.js';
import { LazyAbort } from './lazy-abort.js';

/** A unit held by this worker, from its claim until its report is settled. */
export interface HeldUnit {
  readonly unit: LeasedUnit;
  /** Aborts ctx.signal (cancel, lost lease, timeout, hard stop). */
  readonly abort: LazyAbort;
  /** When its handler started (0: claimed ahead, not started yet). */
  startedAt: number;
  /** Lease lost, released, or its report given up: do not heartbeat, do not report. */
  abandoned: boolean;
  /**
   * Not heart-beaten for now: its REPEATABLE READ or SERIALIZABLE transaction is open, and
   * a heartbeat would change the job's row after that transaction's snapshot (its lease
   * was extended past its timeout before the transaction began).
   */
  quiet: boolean;
}

/** Heartbeats of the units held from one database. */
export class LeaseKeeper {
  private readonly held = new Map<string, HeldUnit>();
  private interval: NodeJS.Timeout | undefined;
  private started = false;
  private beating: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly engine: Engine,
    private readonly db: Queryable,
    private readonly leaseMs: number,
    private readonly heartbeatMs: number,
    private readonly onError: (error: Error) => void,
  ) {}

  /** Number of units held. */
  get size(): number {
    return this.held.size;
  }

  /** True when a unit of this job is held. */
  has(jobId: string): boolean {
    return this.held.has(jobId);
  }

  /** Starts heart-beating periodically (while units are held). */
  start(): void {
    this.started = true;
    if (this.held.size > 0) this.arm();
  }

  /**
   * The beat timer runs only while units are held (it stops at its first tick with none):
   * an idle worker on 1,000 databases would otherwise wake 100 times a second for nothing.
   */
  private arm(): void {
    if (this.interval || !this.started) return;
    this.interval = setInterval(() => {
      if (this.held.size > 0) {
        this.beatSoon();
      } else {
        clearInterval(this.interval);
        this.interval = undefined;
      }
    }, this.heartbeatMs);
    this.interval.unref();
  }

  /** Holds a newly claimed unit (started or kept in hand). */
  hold(unit: LeasedUnit): HeldUnit {
    const held: HeldUnit = {
      unit,
      abort: new LazyAbort(),
      startedAt: Date.now(),
      abandoned: false,
      quiet: false,
    };
    this.held.set(unit.jobId, held);
    this.arm();
    return held;
  }

  /** Forgets a unit whose report is settled. */
  drop(held: HeldUnit): void {
    if (this.held.get(held.unit.jobId) === held) this.held.delete(held.unit.jobId);
  }

  /** Units still held and not abandoned. */
  live(): HeldUnit[] {
    return [...this.held.values()].filter((h) => !h.abandoned);
  }

  /** A hint (a cancel NOTIFY) that this job changed: beat now if it is held here. */
  hint(jobId: string): void {
    if (this.held.has(jobId)) this.beatSoon();
  }

  /** Beats as soon as possible, never two at once. */
  beatSoon(): void {
    if (this.beating) {
      this.again = true;
      return;
    }
    this.beating = this.beat().finally(() => {
      this.beating = null;
      if (this.again) {
        this.again = false;
        this.beatSoon();
      }
    });
  }

  private async beat(): Promise<void> {
    const held = this.live().filter((h) => !h.quiet);
    if (held.length === 0) return;
    try {
      const kept = await this.engine.extendLeases(
        this.db,
        held.map((h) => h.unit),
        this.leaseMs,
      );
      for (const h of held) {
        if (this.held.get(h.unit.jobId) !== h || h.abandoned) continue; // settled meanwhile
        const cancelled = kept.get(h.unit.jobId);
        if (cancelled === undefined) {
          h.abandoned = true;
          h.abort.abort(new Error(`lease on job ${h.unit.jobId} was lost`));
        } else if (cancelled && !h.abort.aborted) {
          h.abort.abort(new Error(`job ${h.unit.jobId} was cancelled`));
        }
      }
    } catch (error) {
      this.onError(error as Error);
    }
  }

  /**
   * Resolves once no beat that may include `held` is in flight: call after making it quiet
   * (a beat sent just before still carries it, and may commit after its caller's next step).
   */
  async quietened(held: HeldUnit): Promise<void> {
    held.quiet = true;
    await this.beating;
  }

  /** Stops heart-beating; waits for a beat in flight. */
  async stop(): Promise<void> {
    this.started = false;
    clearInterval(this.interval);
    this.interval = undefined;
    this.again = false;
    await this.beating;
  }
}
