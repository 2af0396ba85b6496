/**
 * Many-databases mode: a bound on how long the worker waits for one database's engine
 * calls. The owner of a tenant database can replace the engine's functions there with ones
 * that never answer (and catch the cancel a statement_timeout sends: a server-side timeout
 * is theirs to defeat), or hold locks those functions wait on. So the wait is bounded in
 * the client: at the deadline the call's connection is destroyed (and its server process,
 * which would run on, is ended from another connection), the call fails with
 * EngineCallTimeoutError and the deadline trips: every later call through it fails at
 * once without touching the database, so winding down that database's worker costs no
 * further waits. The worker then serves the database again only after a backoff. An
 * answer too long to hold (ResponseTooLargeError, see multidb/message-guard.ts) trips it
 * the same way.
 */
import type pg from 'pg';

import { EngineCallTimeoutError, ResponseTooLargeError } from '../errors.js';
import type { Queryable } from './queryable.js';
import { type ServerProcess, serverProcessOf, terminateServerProcess } from './server-process.js';

/**
 * Closes a connection at once. node-postgres' end() sends Terminate and half-closes the
 * socket, and the server process reads it only once its function returns: until then the
 * connection (and its budget permit) would stay open. Destroying the socket ends it here
 * now. Its server process notices only when it next reads or writes the socket, which a
 * function that never returns does not: see CallDeadline's ending of it.
 */
export function destroyConnection(client: pg.ClientBase): void {
  const c = client as unknown as { connection?: { stream?: { destroy(): void } }; end?: () => Promise<void> };
  if (c.connection?.stream) c.connection.stream.destroy();
  else void c.end?.().catch(() => {});
}

/** Why a database's calls were cut off. */
export type Misbehaviour = EngineCallTimeoutError | ResponseTooLargeError;

/** The per-database deadline of engine calls; see the module comment. */
export class CallDeadline {
  private tripped: Misbehaviour | null = null;
  /** Server processes being ended (stop waits for them: the pool closes after). */
  private readonly ending = new Set<Promise<void>>();

  constructor(
    /** The database's pool: its calls, and the connections that end processes left running. */
    private readonly db: pg.Pool,
    /** Longest wait for one call, in ms. */
    readonly ms: number,
    /** Called once, at the first call that did not answer in time (or answered too much). */
    private readonly onTrip: (error: Misbehaviour) => void,
  ) {}

  private timeoutError(): EngineCallTimeoutError {
    return new EngineCallTimeoutError(
      `the database did not answer an engine call within ${this.ms} ms (callTimeoutMs): its connection was closed, and the database is set aside like one that is down`,
    );
  }

  private check(): void {
    if (this.tripped) throw this.tripped;
  }

  private trip(error: Misbehaviour): void {
    if (this.tripped) return;
    this.tripped = error;
    this.onTrip(error);
  }

  /** The connection calls are routed to (see pin); null: each call takes one from the pool. */
  private pinned: pg.PoolClient | null = null;
  /** The pinned connection until it is given back (after unpin, once its calls are done). */
  private held: pg.PoolClient | null = null;
  /** The last call sent on the pinned connection: calls there go one at a time. */
  private pinnedTail: Promise<unknown> = Promise.resolve();

  /**
   * Runs this database's calls on `client` (checked out of its pool), one at a time, until
   * unpin(). For a database starting under a scarce connection budget: between its start's
   * statements its pooled connection sat idle, was closed for another database, and each
   * next statement paid for a new server process (four to seven per quiet tenant).
   */
  pin(client: pg.PoolClient): void {
    this.unpin();
    this.pinned = client;
    this.held = client;
  }

  /** Calls take pool connections again; the pinned one goes back to its pool once its calls are done. */
  unpin(): void {
    const client = this.pinned;
    if (!client) return;
    this.pinned = null;
    void this.pinnedTail.then(() => this.giveBack(client));
  }

  private giveBack(client: pg.PoolClient, error?: Error): void {
    if (this.held !== client) return;
    this.held = null;
    if (this.pinned === client) this.pinned = null;
    // As pg-pool's own pool.query does: a connection whose call failed is not reused.
    client.release(error);
  }

  private onPinned(client: pg.PoolClient, text: string, values?: unknown[]): Promise<{ rows: unknown[] }> {
    const call = this.pinnedTail.then(async () => {
      this.check();
      // Given back after a failed call: this one takes a pool connection.
      if (this.held !== client) return await this.onPool(text, values);
      try {
        return await this.guard(client, client.query(text, values));
      } catch (error) {
        this.giveBack(client, error as Error);
        throw error;
      }
    });
    this.pinnedTail = call.catch(() => {});
    return call;
  }

  /** The pool as a Queryable whose every call runs on a connection of its own (or the pinned one), bounded. */
  pool(): Queryable {
    return {
      query: (text: string, values?: unknown[]) => {
        try {
          this.check();
        } catch (error) {
          return Promise.reject(error as Error);
        }
        return this.pinned ? this.onPinned(this.pinned, text, values) : this.onPool(text, values);
      },
    };
  }

  private async onPool(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> {
    // Waiting for a connection is not bounded: that wait is the budget's and the pool's
    // (shared fairly), not this database's answer.
    const client = await this.db.connect();
    let failed: Error | undefined;
    try {
      this.check();
      return await this.guard(client, client.query(text, values));
    } catch (error) {
      failed = error as Error;
      throw error;
    } finally {
      // As pg-pool's own pool.query does: a connection whose call failed is not reused.
      client.release(failed);
    }
  }

  /** A checked-out connection (a transactional step's) as a Queryable whose calls are bounded. */
  client(client: pg.ClientBase): Queryable {
    return {
      query: async (text: string, values?: unknown[]) => {
        this.check();
        return await this.guard(client, client.query(text, values));
      },
    };
  }

  /**
   * Waits for `work` running on `client` at most `ms`; past that, destroys the connection,
   * trips, and rejects with EngineCallTimeoutError.
   */
  guard<T>(client: pg.ClientBase, work: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = this.timeoutError();
        const process = serverProcessOf(client);
        destroyConnection(client);
        if (process) this.end(process);
        reject(error);
        this.trip(error);
      }, this.ms);
      // Also handles `work` failing after the deadline (its connection destroyed): that
      // rejection has nowhere to go.
      work.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error as Error);
          if (error instanceof ResponseTooLargeError) this.trip(error);
        },
      );
    });
  }

  /**
   * Ends a server process left running a call the worker stopped waiting for: a function
   * that never returns (and that catches cancels) would otherwise hold a server connection
   * slot for good, one more at every try of the database. The worker's login may end its
   * own processes. Bounded like any call; a failure is ignored (nothing more can be done).
   */
  private end(process: ServerProcess): void {
    const done = (async () => {
      const client = await this.db.connect();
      let failed: Error | undefined;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          terminateServerProcess(client, process),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(this.timeoutError()), this.ms);
          }),
        ]);
      } catch (error) {
        failed = error as Error;
        destroyConnection(client);
      } finally {
        clearTimeout(timer);
        client.release(failed);
      }
    })().catch(() => {});
    this.ending.add(done);
    void done.finally(() => this.ending.delete(done));
  }

  /** Resolves when the server processes being ended are (or could not be). */
  async settled(): Promise<void> {
    await Promise.all([...this.ending]);
  }
}
