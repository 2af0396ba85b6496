/**
 * The producer side of each library as the benchmark uses it: migrate a database,
 * enqueue one job inside the caller's transaction, bulk-enqueue through the batch API,
 * and check after a drain that every job really finished.
 */
import { pathToFileURL } from 'node:url';

import { Logger, makeWorkerUtils, runMigrations, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import { PgBoss } from 'pg-boss';

import type * as SteppingPackage from '../../src/index.js';
import { configurePgBossQueue, PGBOSS_QUEUE } from '../worker/pgboss.js';
import { BUILT_ENTRY } from './built-package.js';
import { queryOnce } from './db.js';
import type { LibraryName, Variant } from './variants.js';

const silent = new Logger(() => () => {});

/** Enqueues jobs into one database. */
export interface Producer {
  /** Enqueues one job of `steps` no-op steps inside the transaction open on `client`. */
  enqueueInTx(client: pg.Client, args: Record<string, unknown>, steps?: number): Promise<void>;
  /**
   * Enqueues `jobs` jobs of `steps` steps in chunks of `chunk` per batch call (one
   * transaction each). Building the job specs is not timed; returns the ms of the calls.
   */
  bulk(jobs: number, steps: number, chunk: number): Promise<number>;
  close(): Promise<void>;
}

/** One library under test. */
export interface Library {
  name: LibraryName;
  label: string;
  /** Installs the library's schema into the (empty) database at `url`. */
  migrate(url: string): Promise<void>;
  producer(url: string): Promise<Producer>;
  /** Null when all `jobs` jobs finished successfully, else what is wrong. */
  verifyDrained(url: string, jobs: number, steps: number): Promise<string | null>;
  /** Database-side settings of a variant, applied to a fresh database before anything else runs. */
  configure?(url: string, variant: Variant): Promise<void>;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const stepping: Library = {
  name: 'stepping',
  label: 'Stepping',
  async migrate(url) {
    const { createStepping } = (await import(pathToFileURL(BUILT_ENTRY).href)) as typeof SteppingPackage;
    const s = createStepping({ connectionString: url });
    try {
      await s.migrate();
    } finally {
      await s.close();
    }
  },
  async producer(url) {
    // The compiled package, as the worker child runs it (see built-package.ts).
    const { createStepping } = (await import(pathToFileURL(BUILT_ENTRY).href)) as typeof SteppingPackage;
    const s: SteppingPackage.Stepping = createStepping({ connectionString: url });
    const stepsOf = (n: number, args: Record<string, unknown> = {}) =>
      Array.from({ length: n }, () => ({ name: 'noop', args }));
    return {
      async enqueueInTx(client, args, steps = 1) {
        await s.enqueue(client, stepsOf(steps, args));
      },
      async bulk(jobs, steps, chunk) {
        const specs: SteppingPackage.JobSpec[] = Array.from({ length: jobs }, () => ({
          steps: stepsOf(steps),
        }));
        const batches = chunks(specs, chunk);
        const t0 = performance.now();
        for (const batch of batches) await s.enqueueMany(undefined, batch);
        return performance.now() - t0;
      },
      close: () => s.close(),
    };
  },
  async verifyDrained(url, jobs, steps) {
    // Through the documented views: the tables behind them may change.
    const [row] = await queryOnce<{ ok: number; total: number; steps_ok: number }>(
      url,
      `SELECT (SELECT count(*) FILTER (WHERE status = 'succeeded') FROM stepping.job_overview)::int AS ok,
              (SELECT count(*) FROM stepping.job_overview)::int AS total,
              (SELECT count(*) FILTER (WHERE status = 'succeeded') FROM stepping.step_overview)::int AS steps_ok`,
    );
    if (row?.ok !== jobs || row.total !== jobs || row.steps_ok !== jobs * steps) {
      return `expected ${jobs} succeeded jobs and ${jobs * steps} steps, found ${JSON.stringify(row)}`;
    }
    return null;
  },
};

const graphile: Library = {
  name: 'graphile',
  label: 'graphile-worker',
  async migrate(url) {
    await runMigrations({ connectionString: url, logger: silent });
  },
  async producer(url) {
    const utils: WorkerUtils = await makeWorkerUtils({ connectionString: url, logger: silent });
    return {
      async enqueueInTx(client, args, steps = 1) {
        // graphile's documented way to enqueue inside your own transaction: its SQL function.
        await client.query('SELECT graphile_worker.add_job($1::text, $2::json)', [
          'noop',
          JSON.stringify(steps > 1 ? { ...args, left: steps - 1 } : args),
        ]);
      },
      async bulk(jobs, steps, chunk) {
        const payload = steps > 1 ? { left: steps - 1 } : {};
        const specs = Array.from({ length: jobs }, () => ({ identifier: 'noop', payload }));
        const batches = chunks(specs, chunk);
        const t0 = performance.now();
        for (const batch of batches) await utils.addJobs(batch);
        return performance.now() - t0;
      },
      close: async () => {
        await utils.release();
      },
    };
  },
  async verifyDrained(url) {
    const [row] = await queryOnce<{ n: number }>(
      url,
      'SELECT count(*)::int AS n FROM graphile_worker._private_jobs',
    );
    return row?.n === 0 ? null : `${row?.n} jobs left in graphile_worker._private_jobs`;
  },
};

/** A pg-boss instance that only enqueues (no maintenance, no migration check). */
async function producerBoss(url: string): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: url,
    supervise: false,
    schedule: false,
    migrate: false,
    max: 2,
  });
  boss.on('error', (error: Error) => console.error(`pg-boss producer: ${error.message}`));
  await boss.start();
  return boss;
}

const pgboss: Library = {
  name: 'pgboss',
  label: 'pg-boss',
  async configure(url, variant) {
    if (variant.library === 'pgboss') await configurePgBossQueue(url, variant.options.notify ?? false);
  },
  async migrate(url) {
    const boss = new PgBoss({ connectionString: url, supervise: false, schedule: false });
    boss.on('error', () => {});
    await boss.start();
    try {
      await boss.createQueue(PGBOSS_QUEUE);
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
  },
  async producer(url) {
    const boss = await producerBoss(url);
    return {
      async enqueueInTx(client, args, steps = 1) {
        // pg-boss's documented way to enqueue inside your own transaction: the db option.
        await boss.send(PGBOSS_QUEUE, steps > 1 ? { ...args, left: steps - 1 } : args, {
          db: { executeSql: (text: string, values?: unknown[]) => client.query(text, values) },
        });
      },
      async bulk(jobs, steps, chunk) {
        const data = steps > 1 ? { left: steps - 1 } : {};
        const specs = Array.from({ length: jobs }, () => ({ data }));
        const batches = chunks(specs, chunk);
        const t0 = performance.now();
        for (const batch of batches) await boss.insert(PGBOSS_QUEUE, batch);
        return performance.now() - t0;
      },
      close: () => boss.stop({ graceful: false, close: true }),
    };
  },
  async verifyDrained(url, jobs, steps) {
    const [row] = await queryOnce<{ ok: number; total: number }>(
      url,
      `SELECT count(*) FILTER (WHERE state = 'completed')::int AS ok, count(*)::int AS total FROM pgboss.job`,
    );
    if (row?.ok !== jobs * steps || row.total !== jobs * steps) {
      return `expected ${jobs * steps} completed pg-boss jobs, found ${JSON.stringify(row)}`;
    }
    return null;
  },
};

/** Every library, Stepping first. */
export const LIBRARIES: Record<LibraryName, Library> = { stepping, graphile, pgboss };

/**
 * Refreshes the planner statistics of every table, as autovacuum would have done on a
 * server in steady state (it analyzes a table within a minute of 10% of its rows
 * changing). Without this, the first claims after a bulk load plan with the statistics
 * of an empty table; see docs/benchmarks.md ("the 5,798/s figure").
 */
export async function analyzeAll(url: string): Promise<void> {
  await queryOnce(url, 'ANALYZE');
}
