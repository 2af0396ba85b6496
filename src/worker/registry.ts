/**
 * A worker's presence in one database, and its share of the database's maintenance. On
 * start it registers (id, host, pid, queues, step names, concurrency); then one timer,
 * off the claim path, beats the registry every registryHeartbeatMs (one small statement)
 * and every maintenanceIntervalMs (plus up to 20% jitter, so workers started together
 * spread out; many databases: on the database's grid, see PresenceGrid) calls
 * maintenance_run, which only the holder of the database's maintenance lock acts on. A
 * full batch (a backlog to prune or expire) is followed at once by another call, up to
 * MAX_ROUNDS per tick. A tick where both are due (every tick on the grid) makes the beat
 * and the first round one statement. On stop it deregisters.
 */
import os from 'node:os';

import { type MaintenanceOutcome, OpsCalls } from '../db/ops.js';
import type { Queryable } from '../db/queryable.js';
import { DEFAULT_MAINTENANCE_BATCH } from '../defaults.js';
import { nextOnGrid } from '../timers.js';
import type { WorkerConfig } from './options.js';
import type { Emit } from './settle.js';

/**
 * Many-databases mode: a served database's registry beat and maintenance periods are
 * stretched with the number of databases (so a worker serving N databases makes about the
 * same number of these statements and connections as one serving a few), and kept on the
 * database's grid (see nextOnGrid): at the same instants as its other periodic calls, at
 * other instants than other databases'. Without it, databases started together all beat
 * together, once per period.
 */
export interface PresenceGrid {
  spread(periodMs: number): number;
  gridOffsetMs(): number;
}

/** Maintenance calls one tick makes at most while batches come back full. */
const MAX_ROUNDS = 100;

/** The registry heartbeat and the maintenance timer of one served database. */
export class WorkerPresence {
  private readonly calls: OpsCalls;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private registered = false;
  private nextBeatAt = 0;
  private nextMaintenanceAt = 0;

  /** This database's registry beat and maintenance periods (see `spread`). */
  private beatMs: number;
  private maintenanceMs: number;

  constructor(
    private readonly config: WorkerConfig,
    private readonly db: Queryable,
    private readonly database: string,
    private readonly emit: Emit,
    /** Many-databases mode: longer periods, on the database's grid (see PresenceGrid). */
    private readonly grid: PresenceGrid | null = null,
    /**
     * Told of each row this presence inserts (+1 before, −1 when that failed), so the
     * activity watch does not wake on it; before, since the statistics may show the row
     * before the statement's answer arrives here.
     */
    private readonly ownInsert: (delta: number) => void = () => {},
  ) {
    this.calls = new OpsCalls(config.schema);
    const spread = (periodMs: number) => (grid ? grid.spread(periodMs) : periodMs);
    this.beatMs = spread(config.registryHeartbeatMs);
    this.maintenanceMs = config.maintenanceIntervalMs ? spread(config.maintenanceIntervalMs) : 0;
  }

  /** Registers (errors are reported, and retried on the next beat) and starts the timer. */
  async start(): Promise<void> {
    await this.register();
    const now = Date.now();
    this.nextBeatAt = this.nextBeatAfter(now);
    this.nextMaintenanceAt = this.maintenanceMs ? this.nextMaintenanceAfter(now) : Infinity;
    this.schedule();
  }

  /** Stops the timer, waits for a tick in progress, and deregisters. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    if (!this.registered) return;
    await this.calls.deregister(this.db, this.config.workerId).catch((error: Error) => {
      this.emit('error', { database: this.database, error, during: 'registry' });
    });
  }

  private nextBeatAfter(now: number): number {
    return this.grid ? nextOnGrid(now, this.beatMs, this.grid.gridOffsetMs()) : now + this.beatMs;
  }

  /** On the grid, or (one database) a period plus up to 20% jitter. */
  private nextMaintenanceAfter(now: number): number {
    if (this.grid) return nextOnGrid(now, this.maintenanceMs, this.grid.gridOffsetMs());
    return now + Math.round(this.maintenanceMs * (1 + Math.random() * 0.2));
  }

  private schedule(): void {
    if (this.stopped) return;
    const at = Math.min(this.nextBeatAt, this.nextMaintenanceAt);
    this.timer = setTimeout(
      () => {
        this.ticking = this.tick().finally(() => {
          this.ticking = null;
          this.schedule();
        });
      },
      Math.max(0, at - Date.now()),
    );
    this.timer.unref();
  }

  private async register(): Promise<void> {
    this.ownInsert(1);
    try {
      await this.calls.register(this.db, {
        id: this.config.workerId,
        host: os.hostname().slice(0, 200) || 'unknown',
        pid: process.pid,
        queues: this.config.queues,
        names: this.config.names,
        concurrency: this.config.concurrency,
        heartbeatMs: this.beatMs,
      });
      this.registered = true;
    } catch (error) {
      this.ownInsert(-1);
      this.emit('error', { database: this.database, error: error as Error, during: 'registry' });
    }
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const beatDue = now >= this.nextBeatAt;
    const maintenanceDue = now >= this.nextMaintenanceAt;
    if (beatDue) this.nextBeatAt = this.nextBeatAfter(now);
    if (maintenanceDue) this.nextMaintenanceAt = this.nextMaintenanceAfter(now);
    // Both due (on the grid of many databases, at every tick): one statement for both.
    if (beatDue && maintenanceDue && this.registered && (await this.beatAndMaintain())) return;
    if (beatDue) await this.beat();
    if (maintenanceDue) await this.maintain();
  }

  /** The registry beat; registers again when the row is gone. */
  private async beat(): Promise<void> {
    try {
      // No row: it aged out (this process stalled) and was deleted; register again.
      if (!this.registered || !(await this.calls.heartbeat(this.db, this.config.workerId))) {
        await this.register();
      }
    } catch (error) {
      this.emit('error', { database: this.database, error: error as Error, during: 'registry' });
    }
  }

  /**
   * The beat and a first maintenance round in one statement, then further rounds while
   * batches come back full. False when that statement failed (reported as a maintenance
   * error): the caller then makes the beat alone.
   */
  private async beatAndMaintain(): Promise<boolean> {
    const started = Date.now();
    let result: { alive: boolean; outcome: MaintenanceOutcome };
    try {
      result = await this.calls.heartbeatAndMaintenance(
        this.db,
        this.config.workerId,
        this.config.retentionMs || null,
      );
    } catch (error) {
      this.emit('error', { database: this.database, error: error as Error, during: 'maintenance' });
      return false;
    }
    if (!result.alive) await this.register();
    this.emit('maintenance', {
      database: this.database,
      ...result.outcome,
      durationMs: Date.now() - started,
    });
    if (this.more(result.outcome)) await this.maintain();
    return true;
  }

  /** Whether a maintenance round asks for another at once: it led, and a batch came back full. */
  private more(outcome: MaintenanceOutcome): boolean {
    return (
      outcome.leader &&
      (outcome.expired >= DEFAULT_MAINTENANCE_BATCH || outcome.pruned >= DEFAULT_MAINTENANCE_BATCH)
    );
  }

  /** Maintenance rounds until a batch is not full (or MAX_ROUNDS); one event per round. */
  private async maintain(): Promise<void> {
    const retention = this.config.retentionMs || null;
    for (let round = 0; round < MAX_ROUNDS && !this.stopped; round++) {
      const started = Date.now();
      let outcome: MaintenanceOutcome;
      try {
        outcome = await this.calls.maintenance(this.db, retention);
      } catch (error) {
        this.emit('error', { database: this.database, error: error as Error, during: 'maintenance' });
        return;
      }
      this.emit('maintenance', { database: this.database, ...outcome, durationMs: Date.now() - started });
      if (!this.more(outcome)) return;
    }
  }
}
