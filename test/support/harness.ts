/** Shared test scaffolding: a database per file, clients and workers that clean up after themselves. */
import { after, afterEach, type TestContext } from 'node:test';

import pg from 'pg';

import {
  createStepping,
  createWorker,
  type Stepping,
  type Worker,
  type WorkerOptions,
} from '../../src/index.js';
import { createTestDatabase } from './db.js';

/** What a test file works with. */
export interface Harness {
  url: string;
  dbName: string;
  stepping: Stepping;
  /** A pool for the test's own queries. */
  pool: pg.Pool;
  /** A new connected client, closed after the file. */
  client(): Promise<pg.Client>;
  /**
   * A started worker on this database, stopped after the test `t` when given (a worker
   * made inside a test), else after the file (a worker shared by the file's tests).
   */
  worker(options: Omit<WorkerOptions, 'connectionString'>, t?: TestContext): Promise<Worker>;
  /**
   * Moves the engine's clock (engine_now()) to `offset` from real time, e.g. '2 hours', for
   * every connection of this database. Reset to zero after each test.
   */
  shiftClock(offset: string): Promise<void>;
  /**
   * Takes running units of these step names over as another worker would once their leases
   * expired: in one transaction, expires the leases and claims the units for `worker` (the
   * rows are locked by that transaction, so neither a heartbeat nor SKIP LOCKED gets in
   * between). Returns what was claimed.
   */
  takeOver(names: string[], worker?: string): Promise<TakenUnit[]>;
}

/** A unit claimed by takeOver. */
export interface TakenUnit {
  job_id: string;
  token: string;
  attempt: number;
  step_index: number;
}

/** Sets up a database for the calling test file (pass import.meta.url). */
export async function setup(fileUrl: string): Promise<Harness> {
  const { url, name } = await createTestDatabase(new URL(fileUrl).pathname);
  // Named so a failing run's kept database can be found.
  console.log(`# database ${name}`);
  const stepping = createStepping({ connectionString: url });
  const pool = new pg.Pool({ connectionString: url, max: 30 });
  const clients: pg.Client[] = [];
  const workers: Worker[] = [];
  const shiftClock = async (offset: string) => {
    await pool.query(`UPDATE stepping.settings SET clock_offset = $1::interval`, [offset]);
  };
  afterEach(async () => {
    await shiftClock('0');
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await stepping.close();
    await pool.end();
  });
  return {
    url,
    dbName: name,
    stepping,
    pool,
    async client() {
      const c = new pg.Client(url);
      await c.connect();
      clients.push(c);
      return c;
    },
    shiftClock,
    async takeOver(names, worker = 'intruder') {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        await c.query(
          `UPDATE stepping.jobs SET available_at = stepping.engine_now() - interval '1 second'
           WHERE status = 'running' AND step_name = ANY ($1)`,
          [names],
        );
        const { rows } = await c.query<TakenUnit>(
          `SELECT job_id::text, lease_token::text AS token, attempt, step_index
           FROM stepping.step_claim($1, $2, NULL, 100, 600000)`,
          [worker, names],
        );
        await c.query('COMMIT');
        return rows;
      } catch (error) {
        await c.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        c.release();
      }
    },
    async worker(options, t) {
      const w = createWorker({ ...options, connectionString: url });
      if (t) t.after(() => w.stop());
      else workers.push(w);
      await w.start();
      return w;
    },
  };
}

/** A promise with its resolve/reject exposed: hold a handler open until the test releases it. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Re-checks `probe` until it returns a truthy value or the time is up (for outcomes, not for ordering). */
export async function eventually<T>(
  probe: () => Promise<T> | T,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
