/**
 * A process-wide cap on open PostgreSQL connections across every database a worker
 * serves. Pool connections wait for a permit; listener connections only take one when
 * it is free at once (and at most a quarter of the budget); the other databases are woken
 * by their server's activity watch (one connection per server) or polled.
 */
import pg from 'pg';

import { guardMessageSize } from './message-guard.js';

/**
 * Given to a pool by an idle connection the budget closed so that a waiting connection of
 * another database gets its permit (pg-pool removes an idle connection that errs).
 */
export class ConnectionReclaimedError extends Error {
  override name = 'ConnectionReclaimedError';
}

/**
 * A connection that was waiting for a permit when its worker stopped (ConnectionBudget.close):
 * its wait ends with this error, so the pool it belongs to can end.
 */
export class ConnectionBudgetClosedError extends Error {
  override name = 'ConnectionBudgetClosedError';
}

/** An idle pool connection the budget may close for a waiter. */
interface Reclaimable {
  /** False while its database uses its connections (units running or being reported, a claim). */
  reclaimable(): boolean;
  reclaim(): void;
}

/**
 * How long a pool connection must have been idle before it is closed for a connection
 * waiting for a permit: one its database reuses within that time (between a claim and a
 * report) is kept, one it no longer uses moves on well before its pool's idle timeout.
 */
export const RECLAIM_IDLE_MS = 20;

/** Counting semaphore of connection permits. */
export class ConnectionBudget {
  private used = 0;
  private listeners = 0;
  private readonly waiters: { grant: () => void; refuse: (error: Error) => void }[] = [];
  /** Idle pool connections holding permits, with when each went idle, longest idle first. */
  private readonly idle = new Map<Reclaimable, number>();
  /** Connections closed for a waiter whose permit has not come back yet. */
  private readonly reclaiming = new Set<Reclaimable>();
  private reclaimTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(readonly max: number) {}

  /** True when a connection is waiting for a permit. */
  get contended(): boolean {
    return this.waiters.length > 0;
  }

  /**
   * Most permits listeners may hold: a quarter, so the pools of databases with work keep
   * most of the budget (the activity watch wakes the others nearly as fast).
   */
  get listenerLimit(): number {
    return Math.floor(this.max / 4);
  }

  /** Waits for a permit; rejects with ConnectionBudgetClosedError once the budget is closed. */
  async acquire(): Promise<void> {
    if (this.closed) throw new ConnectionBudgetClosedError('the worker is stopping: no new connections');
    if (this.used < this.max) {
      this.used++;
      return;
    }
    const waiting = new Promise<void>((grant, refuse) => this.waiters.push({ grant, refuse }));
    this.reclaimIdle();
    await waiting;
  }

  /** A pool connection went idle (it may be closed for a waiter), or back to work. */
  markIdle(connection: Reclaimable, idle: boolean): void {
    this.idle.delete(connection);
    if (!idle) return;
    this.idle.set(connection, Date.now());
    if (this.waiters.length > 0) this.reclaimIdle();
  }

  /** A pool connection ended: it is neither idle nor being closed any more. */
  forget(connection: Reclaimable): void {
    this.idle.delete(connection);
    this.reclaiming.delete(connection);
  }

  /**
   * While connections wait for permits that idle connections hold, closes those idle for
   * RECLAIM_IDLE_MS (longest idle first, one per waiter) whose database is not using its
   * connections now (its units wait for slots, or it has none), so their permits pass on
   * at once instead of after their pools' idle timeout; checks again when the next one
   * will have been idle that long. A database at work keeps them: closing a connection
   * between its claim and its report only costs it a new one.
   */
  private reclaimIdle(): void {
    clearTimeout(this.reclaimTimer);
    this.reclaimTimer = undefined;
    const now = Date.now();
    for (const [connection, since] of this.idle) {
      if (this.waiters.length <= this.reclaiming.size) return;
      if (!connection.reclaimable()) continue;
      const wait = since + RECLAIM_IDLE_MS - now;
      if (wait > 0) {
        this.reclaimTimer = setTimeout(() => this.reclaimIdle(), wait);
        return;
      }
      this.idle.delete(connection);
      this.reclaiming.add(connection);
      connection.reclaim();
    }
  }

  /**
   * A listener permit (for a LISTEN connection or an activity watch), only if one is free
   * now and listeners are under their limit. Never waits: a permit held for a connection's
   * whole life, waited for while pool connections of starting databases hold the others,
   * could deadlock the worker.
   */
  tryAcquireListener(): boolean {
    if (this.closed || this.used >= this.max || this.listeners >= this.listenerLimit) return false;
    this.used++;
    this.listeners++;
    return true;
  }

  release(listener = false): void {
    if (listener) this.listeners--;
    const next = this.waiters.shift();
    if (next)
      next.grant(); // the permit passes straight to the next waiter
    else this.used--;
  }

  /**
   * The worker is stopping: every connection waiting for a permit, and any asked for from
   * now on, fails with ConnectionBudgetClosedError, so no pool's end() waits for a permit
   * that the connections closing after it would have given. Permits still held are given
   * back as usual.
   */
  close(): void {
    this.closed = true;
    clearTimeout(this.reclaimTimer);
    this.reclaimTimer = undefined;
    const error = new ConnectionBudgetClosedError('the worker is stopping: no new connections');
    for (const waiter of this.waiters.splice(0)) waiter.refuse(error);
  }
}

type ConnectCallback = ((err: Error) => void) | ((err: null, c: pg.Client) => void);

/**
 * A pg.Client class whose connections hold a budget permit from before connecting until
 * the connection ends, and refuse messages too long for a string (message-guard.ts). Pass it as a pool's `Client` option; `busy` tells whether its
 * database has work in flight, `inUse` whether it uses its connections now (default:
 * busy); an idle connection of a database not in use may be closed for a waiter.
 */
export function budgetedClient(
  budget: ConnectionBudget,
  busy: () => boolean,
  inUse: () => boolean = busy,
): typeof pg.Client {
  /** Connections of this pool waiting for a permit. */
  let waitingForPermit = 0;
  return class BudgetedClient extends pg.Client {
    private permit = false;
    private poolRelease: ((err?: Error | boolean) => void) | undefined;

    constructor(config?: string | pg.ClientConfig) {
      super(config);
      // A tenant's database must not be able to end the process (see message-guard.ts).
      guardMessageSize(this);
    }

    /**
     * pg-pool assigns `client.release` at every checkout. While other connections wait for
     * a permit, a database that is not busy closes a released connection instead of keeping
     * it idle, so permits move to databases with work; a busy one keeps its connections —
     * unless a connection of its own pool is among those waiting: pg-pool has bound a
     * request to that one, so an idle connection kept here would hold a permit while its
     * own database waits for another (enough such databases, and no permit would ever move).
     */
    get release(): (err?: Error | boolean) => void {
      return (err?: Error | boolean) => {
        const close = err ?? (budget.contended && (!busy() || waitingForPermit > 0) ? true : undefined);
        // Marked before the pool takes it back: the pool may hand it out again at once,
        // which unmarks it (the setter below).
        if (!close) budget.markIdle(this, true);
        this.poolRelease?.(close);
      };
    }

    set release(fn: (err?: Error | boolean) => void) {
      // pg-pool assigns it when it hands the connection out.
      budget.markIdle(this, false);
      this.poolRelease = fn;
    }

    /** Whether the budget may close this idle connection for a waiter (see reclaimIdle). */
    reclaimable(): boolean {
      return !inUse();
    }

    /** Closes this idle connection through its pool (which removes an idle connection that errs). */
    reclaim(): void {
      this.emit('error', new ConnectionReclaimedError('closed to give its permit to another database'));
    }

    private releasePermit(): void {
      if (!this.permit) return;
      this.permit = false;
      budget.release();
    }

    private async connectWithPermit(): Promise<pg.Client> {
      waitingForPermit++;
      try {
        await budget.acquire();
      } finally {
        waitingForPermit--;
      }
      this.permit = true;
      // Registered before connecting, so a connection that fails or ends at any point
      // gives its permit back exactly once.
      this.once('end', () => {
        budget.forget(this);
        this.releasePermit();
      });
      try {
        await super.connect();
        return this;
      } catch (error) {
        this.releasePermit();
        throw error;
      }
    }

    // pg-pool calls connect(callback); application code may await connect().
    override connect(): Promise<pg.Client>;
    override connect(callback: ConnectCallback): void;
    override connect(callback?: ConnectCallback): Promise<pg.Client> | void {
      const done = this.connectWithPermit();
      if (!callback) return done;
      done.then(
        (client) => (callback as (err: null, c: pg.Client) => void)(null, client),
        (error: Error) => (callback as (err: Error) => void)(error),
      );
    }
  };
}
