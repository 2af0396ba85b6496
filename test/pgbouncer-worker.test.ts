/**
 * Workers behind a real PgBouncer in transaction pooling mode (round robin over warm server
 * connections, so nothing may lean on session state): claims, heartbeats, reports and
 * transactional steps go through the pooler; LISTEN needs a direct connection
 * (listenConnectionString), and without one the worker says so once and polls.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { createStepping, createWorker, defineStep, type Worker } from '../src/index.js';
import { withTimeout } from './fixtures/core-util.js';
import { serverUrl } from './support/db.js';
import { setup } from './support/harness.js';
import { startPgBouncer } from './support/pgbouncer.js';

const h = await setup(import.meta.url);
await h.pool.query('CREATE TABLE bounced (job_id bigint, step int)');
const bouncer = await startPgBouncer(serverUrl(), { poolSize: 4 });
after(() => bouncer.stop());
const viaBouncer = bouncer.url(h.dbName);

const first = defineStep(
  'bw.first',
  async (_args: unknown, ctx) => {
    await ctx.tx!.query('INSERT INTO bounced VALUES ($1, $2)', [ctx.jobId, ctx.stepIndex]);
    return { at: ctx.stepIndex };
  },
  { transactional: true },
);
const second = defineStep('bw.second', async (_args: unknown, ctx) => ({ saw: ctx.results[0] }));

async function run(worker: Worker): Promise<void> {
  const stepping = createStepping({ connectionString: viaBouncer });
  try {
    await bouncer.warm(h.dbName, 3);
    const ids = await stepping.enqueueMany(
      undefined,
      Array.from({ length: 10 }, () => ({ steps: [first({}), second({})] })),
    );
    for (const { jobId } of ids) {
      const job = await h.stepping.waitForJob(jobId, { timeoutMs: 30_000 });
      assert.equal(job.status, 'succeeded');
      assert.deepEqual(job.results, [{ at: 0 }, { saw: { at: 0 } }]);
    }
    const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM bounced WHERE job_id = ANY ($1)', [
      ids.map((i) => i.jobId),
    ]);
    assert.equal(rows[0].n, 10, 'each transactional write committed once');
  } finally {
    await stepping.close();
    await worker.stop();
  }
}

test('a worker through PgBouncer with a direct LISTEN connection runs jobs, woken by NOTIFY', async () => {
  const errors: string[] = [];
  const worker = createWorker({
    connectionString: viaBouncer,
    listenConnectionString: h.url,
    steps: [first, second],
    // A poll this slow would stall the test if wake-ups did not arrive.
    pollIntervalMs: 600_000,
    heartbeatMs: 200,
  });
  worker.on('error', (e) => errors.push(`${e.during}: ${e.error.message}`));
  await worker.start();
  await run(worker);
  assert.deepEqual(errors, []);
});

test('without a direct LISTEN connection the worker says so once and polls', async () => {
  const errors: string[] = [];
  const worker = createWorker({
    connectionString: viaBouncer,
    steps: [first, second],
    pollIntervalMs: 200,
  });
  const told = new Promise<void>((resolve) =>
    worker.on('error', (e) => {
      errors.push(`${e.during}: ${e.error.message}`);
      if (e.during === 'listen') resolve();
    }),
  );
  await worker.start();
  await withTimeout(told, 30_000, 'the worker to report that LISTEN does not work');
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /^listen: stepping: LISTEN does not work .*listenConnectionString/);
  await run(worker);
});
