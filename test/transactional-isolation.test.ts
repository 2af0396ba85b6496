/**
 * Transactional steps in REPEATABLE READ or SERIALIZABLE (the `isolation` option). In
 * those levels a transaction cannot update a row another transaction changed after its
 * snapshot, and heartbeats change the job's row: a handler still running at its first
 * heartbeat could never complete. With `isolation` the worker opens the transaction in
 * that level itself, extends the lease once beforehand for the whole of timeoutMs, and
 * sends no heartbeat for that unit while its transaction is open.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import pg from 'pg';

import { ConfigError, createWorker, defineStep } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
await h.pool.query('CREATE TABLE ledger (job_id bigint, level text)');

/** Rows the step wrote for this job. */
async function ledgerOf(jobId: string): Promise<string[]> {
  const { rows } = await h.pool.query<{ level: string }>('SELECT level FROM ledger WHERE job_id = $1', [
    jobId,
  ]);
  return rows.map((r) => r.level);
}

for (const isolation of ['repeatable read', 'serializable'] as const) {
  test(`a ${isolation} transactional step running through several heartbeats completes, once`, async (t) => {
    const step = defineStep(
      `iso.${isolation.replace(' ', '-')}`,
      async (_args: unknown, ctx) => {
        const { rows } = await ctx.tx!.query<{ level: string }>('SELECT current_setting($1) AS level', [
          'transaction_isolation',
        ]);
        // The snapshot is taken here; the sleep spans several heartbeat periods of the worker.
        await sleep(1800);
        await ctx.tx!.query('INSERT INTO ledger VALUES ($1, $2)', [ctx.jobId, rows[0]!.level]);
      },
      { transactional: true, isolation, timeoutMs: 10_000, maxAttempts: 1 },
    );
    // A 1.5 s lease: heartbeats every 500 ms, so without the option the report would meet
    // a job row changed after the transaction's snapshot.
    const worker = await h.worker({ steps: [step], leaseMs: 1500, concurrency: 2 }, t);
    const beats: string[] = [];
    worker.on('error', (e) => beats.push(`${e.during}: ${e.error.message}`));
    // A plain step beside it keeps being heart-beaten: it runs past its lease too.
    const plain = defineStep('iso.plain', async () => sleep(2500));
    const other = await h.worker({ steps: [plain], leaseMs: 1500 }, t);
    const [a, b] = await Promise.all([h.stepping.enqueue([step({})]), h.stepping.enqueue([plain({})])]);
    const [ja, jb] = await Promise.all([
      h.stepping.waitForJob(a, { timeoutMs: 20_000 }),
      h.stepping.waitForJob(b, { timeoutMs: 20_000 }),
    ]);
    assert.equal(ja.status, 'succeeded', JSON.stringify(await h.stepping.steps(a)));
    assert.equal(jb.status, 'succeeded');
    assert.deepEqual(await ledgerOf(a), [isolation]);
    assert.equal((await h.stepping.steps(a))[0]!.attempts, 1);
    assert.deepEqual(beats, []);
    await other.stop();
  });
}

test('without isolation a transactional step runs in READ COMMITTED whatever the default, and completes past several heartbeats', async (t) => {
  // Before, it took the connection's default: on a database whose default_transaction_isolation
  // is serializable, a handler still running at its first heartbeat could never complete.
  const pool = new pg.Pool({
    connectionString: h.url,
    options: '-c default_transaction_isolation=serializable',
  });
  const step = defineStep(
    'iso.default',
    async (_args: unknown, ctx) => {
      const { rows } = await ctx.tx!.query<{ level: string }>('SELECT current_setting($1) AS level', [
        'transaction_isolation',
      ]);
      await sleep(1800);
      await ctx.tx!.query('INSERT INTO ledger VALUES ($1, $2)', [ctx.jobId, rows[0]!.level]);
    },
    { transactional: true, maxAttempts: 1 },
  );
  const worker = createWorker({ pool, steps: [step], leaseMs: 1500 });
  // The worker first: with the pool ended under it, its heartbeat failed ("Cannot use a
  // pool after calling end on the pool"), and the log said so.
  t.after(async () => {
    await worker.stop();
    await pool.end();
  });
  await worker.start();
  const id = await h.stepping.enqueue([step({})]);
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'succeeded', JSON.stringify(await h.stepping.steps(id)));
  assert.deepEqual(await ledgerOf(id), ['read committed']);
});

test('a cancel of an isolated step running its transaction ends it at its report: rolled back, cancelled', async (t) => {
  let started: () => void = () => {};
  const running = new Promise<void>((resolve) => (started = resolve));
  const step = defineStep(
    'iso.cancelled',
    async (_args: unknown, ctx) => {
      await ctx.tx!.query('SELECT 1');
      started();
      await sleep(1200);
      await ctx.tx!.query('INSERT INTO ledger VALUES ($1, $2)', [ctx.jobId, 'cancelled?']);
    },
    { transactional: true, isolation: 'repeatable read', timeoutMs: 10_000 },
  );
  await h.worker({ steps: [step], leaseMs: 1500 }, t);
  const id = await h.stepping.enqueue([step({})]);
  await running;
  await h.stepping.cancel(id);
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'cancelled');
  assert.deepEqual(await ledgerOf(id), [], 'the transaction was rolled back');
});

test('while its transaction is open an isolated step holds a lease for its whole timeoutMs', async (t) => {
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  let running: () => void = () => {};
  const handlerRuns = new Promise<void>((resolve) => (running = resolve));
  const step = defineStep(
    'iso.long-lease',
    async (_args: unknown, ctx) => {
      // Running: its lease was extended before its transaction began.
      running();
      await held;
      await ctx.tx!.query('INSERT INTO ledger VALUES ($1, $2)', [ctx.jobId, 'done']);
    },
    { transactional: true, isolation: 'repeatable read', timeoutMs: 8000 },
  );
  await h.worker({ steps: [step], leaseMs: 1500 }, t);
  const id = await h.stepping.enqueue([step({})]);
  await handlerRuns;
  // Not heart-beaten (a heartbeat would change the row after the snapshot): extended once,
  // past timeoutMs, so a worker that dies meanwhile leaves it to another after that long.
  const { rows } = await h.pool.query<{ left: number }>(
    `SELECT extract(epoch FROM available_at - stepping.engine_now()) * 1000 AS left FROM stepping.jobs WHERE id = $1`,
    [id],
  );
  assert.ok(rows[0]!.left > 5000, `lease left ${rows[0]!.left} ms`);
  release();
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 20_000 })).status, 'succeeded');
  assert.deepEqual(await ledgerOf(id), ['done']);
});

test('isolation is checked where the step is defined', () => {
  const run = async () => {};
  assert.throws(
    () => defineStep('iso.bad1', run, { isolation: 'repeatable read', timeoutMs: 1000 }),
    ConfigError,
  );
  assert.throws(
    () => defineStep('iso.bad2', run, { transactional: true, isolation: 'serializable' }),
    /isolation serializable needs timeoutMs/,
  );
  assert.throws(
    () =>
      defineStep('iso.bad3', run, { transactional: true, isolation: 'snapshot' as never, timeoutMs: 1000 }),
    /isolation must be 'read committed', 'repeatable read' or 'serializable'/,
  );
  defineStep('iso.ok', run, { transactional: true, isolation: 'read committed' });
});
