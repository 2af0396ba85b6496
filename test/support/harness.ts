/** Shared test scaffolding: a database per file, clients and workers that clean up after themselves. */
import { after } from 'node:test';
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
  /** A started worker on this database, stopped after the file (if the test did not). */
  worker(options: Omit<WorkerOptions, 'connectionString'>): Promise<Worker>;
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
    async worker(options) {
      const w = createWorker({ ...options, connectionString: url });
      workers.push(w);
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
