/**
 * Analysis tool: drains 3,000 one-step transactional jobs (each inserts one row through
 * ctx.tx) with one worker of concurrency 8 and prints jobs per second. `tree` is the
 * checkout whose src/ is measured, so two versions can be compared side by side on the
 * same server (e.g. a `git worktree` of an older commit). The database is dropped and
 * created again.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
 *     npx tsx bench/tools/transactional-drain.ts <tree> <scratch database name>
 */
import path from 'node:path';

import pg from 'pg';

import type * as Stepping from '../../src/index.js';

const [treeArg, dbName] = process.argv.slice(2);
if (!treeArg || !dbName || !/^[a-z_][a-z0-9_]*$/.test(dbName)) {
  throw new Error(
    'usage: transactional-drain.ts <tree> <scratch database name: lowercase letters, digits, _>',
  );
}
const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const lib = (await import(path.resolve(treeArg, 'src/index.ts'))) as typeof Stepping;
const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`DROP DATABASE IF EXISTS ${dbName}`);
await admin.query(`CREATE DATABASE ${dbName}`);
await admin.end();
const url = new URL(base);
url.pathname = `/${dbName}`;
const connectionString = url.toString();

const stepping = lib.createStepping({ connectionString });
await stepping.migrate();
const pool = new pg.Pool({ connectionString });
await pool.query('CREATE TABLE inbox (job_id bigint NOT NULL)');
const write = lib.defineStep(
  'tx.write',
  async (_args: null, ctx) => {
    await ctx.tx!.query('INSERT INTO inbox VALUES ($1)', [ctx.jobId]);
  },
  { transactional: true },
);
const JOBS = 3000;
await stepping.enqueueMany(
  undefined,
  Array.from({ length: JOBS }, () => ({ steps: [write(null)] })),
);
const worker = lib.createWorker({ connectionString, steps: [write], concurrency: 8, poolSize: 10 });
const started = Date.now();
await worker.start();
for (;;) {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM inbox');
  if (rows[0]!.n >= JOBS) break;
  await new Promise((resolve) => setTimeout(resolve, 20));
}
const seconds = (Date.now() - started) / 1000;
console.log(`${treeArg}: ${Math.round(JOBS / seconds)} transactional jobs/s`);
await worker.stop();
await stepping.close();
await pool.end();
