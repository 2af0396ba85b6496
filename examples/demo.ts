/**
 * `npm run demo`: a three-step order job enqueued inside the business transaction that
 * creates the order, run by an in-process worker (one step fails once and is retried), and
 * a second order whose transaction rolls back, so its job never exists. Uses DATABASE_URL's
 * server or a throw-away embedded PostgreSQL, always in a fresh database it drops at the end.
 */
import { randomBytes } from 'node:crypto';

import pg from 'pg';

import { startDatabaseServer, withDatabase } from '../scripts/embedded-db.js';
import { formatTable } from '../src/cli/table.js';
import { createStepping, createWorker, defineStep, type Stepping } from '../src/index.js';

const startedAt = Date.now();
const elapsed = () => `+${((Date.now() - startedAt) / 1000).toFixed(2)}s`;
const say = (text: string) => console.log(`[${elapsed()}] ${text}`);

type OrderArgs = { orderId: string };

/** The order's steps; each records its effect on the order row. */
function orderSteps(db: pg.Pool) {
  const reserveStock = defineStep('stock.reserve', async ({ orderId }: OrderArgs) => {
    await db.query(`UPDATE orders SET status = 'stock reserved' WHERE id = $1`, [orderId]);
  });
  const chargeCard = defineStep(
    'payments.charge',
    async ({ orderId }: OrderArgs, ctx) => {
      // A real payment API would get ctx.idempotencyKey, so the retry cannot charge twice.
      if (ctx.attempt === 1) throw new Error('card network timeout (simulated)');
      await db.query(`UPDATE orders SET status = 'paid' WHERE id = $1`, [orderId]);
    },
    { backoff: { baseMs: 200 } },
  );
  const sendReceipt = defineStep(
    'mail.receipt',
    async ({ orderId }: OrderArgs, ctx) => {
      // Transactional: this update commits together with the step's completion, exactly once.
      await ctx.tx!.query(`UPDATE orders SET status = 'receipt sent' WHERE id = $1`, [orderId]);
    },
    { transactional: true },
  );
  return { reserveStock, chargeCard, sendReceipt };
}

/** Inserts an order and enqueues its job in one transaction; commits or rolls back. */
async function placeOrder(
  db: pg.Pool,
  stepping: Stepping,
  steps: ReturnType<typeof orderSteps>,
  orderId: string,
  commit: boolean,
): Promise<string> {
  const tx = await db.connect();
  try {
    await tx.query('BEGIN');
    await tx.query(`INSERT INTO orders (id, status) VALUES ($1, 'new')`, [orderId]);
    const jobId = await stepping.enqueue(
      tx,
      [steps.reserveStock({ orderId }), steps.chargeCard({ orderId }), steps.sendReceipt({ orderId })],
      { queue: 'orders', key: `order:${orderId}` },
    );
    await tx.query(commit ? 'COMMIT' : 'ROLLBACK');
    return jobId;
  } catch (error) {
    await tx.query('ROLLBACK');
    throw error;
  } finally {
    tx.release();
  }
}

async function demo(url: string): Promise<void> {
  const stepping = createStepping({ connectionString: url });
  const db = new pg.Pool({ connectionString: url, max: 5 });
  db.on('error', () => {}); // idle clients dropped at shutdown
  const { applied } = await stepping.migrate();
  await db.query(`CREATE TABLE orders (id text PRIMARY KEY, status text NOT NULL)`);
  say(
    `schema migrated (${applied.length} migration${applied.length === 1 ? '' : 's'}), orders table created`,
  );

  const steps = orderSteps(db);
  const worker = createWorker({ connectionString: url, steps: Object.values(steps), concurrency: 4 });
  const unit = (e: { jobId: string; stepIndex: number; name: string }) =>
    `job ${e.jobId} step ${e.stepIndex} ${e.name.padEnd(15)}`;
  worker.on('step:started', (e) => say(`${unit(e)} started (attempt ${e.attempt})`));
  worker.on('step:succeeded', (e) => say(`${unit(e)} succeeded in ${e.durationMs} ms`));
  worker.on('step:failed', (e) => {
    const wait = e.nextRunAt ? `, retry in ${Math.max(0, e.nextRunAt.getTime() - Date.now())} ms` : '';
    say(`${unit(e)} failed: ${e.error.message}${wait}`);
  });
  worker.on('job:succeeded', (e) => say(`job ${e.jobId} succeeded`));
  worker.on('error', (e) => say(`worker error during ${e.during}: ${e.error.message}`));
  await worker.start();
  try {
    const jobId = await placeOrder(db, stepping, steps, 'A-1001', true);
    say(`order A-1001 committed together with job ${jobId}`);
    const ghost = await placeOrder(db, stepping, steps, 'A-1002', false);
    const orphans = await db.query(`SELECT count(*)::int AS n FROM orders WHERE id = 'A-1002'`);
    const ghostJob = await stepping.getJob(ghost);
    say(
      `order A-1002 rolled back: ${orphans.rows[0].n} order rows, job ${ghost} ` +
        `${ghostJob ? 'EXISTS (unexpected!)' : 'never existed'}`,
    );

    const final = await stepping.waitForJob(jobId, { timeoutMs: 15_000 });
    if (final.status !== 'succeeded') throw new Error(`job ${jobId} ended ${final.status}`);

    // The views are the stable plain-SQL API: any client can read them.
    const jobs = await db.query(
      `SELECT job_id, queue, key, status, step_count, finished_at - created_at AS took FROM stepping.job_overview`,
    );
    const stepRows = await db.query(
      `SELECT step_index, name, status, attempts, last_error FROM stepping.step_overview
       WHERE job_id = $1 ORDER BY step_index`,
      [jobId],
    );
    const orders = await db.query(`SELECT id, status FROM orders ORDER BY id`);
    const table = (rows: Record<string, unknown>[]) =>
      formatTable(
        rows,
        Object.keys(rows[0] ?? {}).map((k) => ({ header: k, value: (r: Record<string, unknown>) => r[k] })),
      );
    console.log(`\nstepping.job_overview\n${table(jobs.rows)}`);
    console.log(`\nstepping.step_overview (job ${jobId})\n${table(stepRows.rows)}`);
    console.log(`\norders\n${table(orders.rows)}\n`);
  } finally {
    await worker.stop();
    await stepping.close();
    await db.end();
  }
}

const server = await startDatabaseServer((line) => say(line));
const name = `stepping_demo_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client(server.url);
await admin.connect();
try {
  // A database of its own, so the demo never touches anything else on DATABASE_URL's server.
  await admin.query(`CREATE DATABASE "${name}"`);
  say(`${server.embedded ? 'embedded server' : 'DATABASE_URL server'}: created database ${name}`);
  await demo(withDatabase(server.url, name));
  process.exitCode = 0;
} catch (error) {
  console.error(`demo failed: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
  await server.stop();
}
say(
  `done: worker stopped, database ${name} dropped; wall time ${((Date.now() - startedAt) / 1000).toFixed(1)} s`,
);
