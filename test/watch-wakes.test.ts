/**
 * The activity watch of a many-databases worker wakes a database without a LISTEN
 * connection when pg_stat_database.tup_inserted moves. Two ways work could become ready
 * without the watch seeing it:
 * - an enqueue whose backend had flushed its statistics less than a second before: its
 *   inserts reached the view only when the backend had been idle for 10 s (CI once timed
 *   out waiting 10 s for a job enqueued right after the harness's own queries);
 * - work made ready by an update, not an insert (a failed job retried, leases released,
 *   a limit raised): nothing moved the count, so it waited for the safety poll, which is
 *   2 s times the number of databases (half an hour at 1,000).
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import pg from 'pg';

import { Engine } from '../src/db/engine.js';
import { createWorker, defineStep } from '../src/index.js';
import { withTimeout } from './fixtures/core-util.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

async function tupInserted(): Promise<bigint> {
  // Each query is its own transaction, so it reads the statistics afresh.
  const { rows } = await h.pool.query<{ n: string }>(
    'SELECT tup_inserted::text AS n FROM pg_stat_database WHERE datname = current_database()',
  );
  return BigInt(rows[0]!.n);
}

/**
 * Runs `act` on a connection that has just flushed its statistics (PostgreSQL then holds
 * its next counts back for a second, up to 10 s if it goes idle) and returns
 * tup_inserted read just before and just after: a move means `act` showed the activity
 * watch new rows as its COMMIT returned.
 */
async function insertsSeenAfter(act: (c: pg.Client) => Promise<unknown>): Promise<[bigint, bigint]> {
  const c = new pg.Client(h.url);
  await c.connect();
  try {
    await c.query('CREATE TEMP TABLE scratch (x int)');
    // A transaction with statistics to flush: flushed as the backend goes idle.
    await c.query('INSERT INTO scratch VALUES (1)');
    const before = await tupInserted();
    await act(c);
    return [before, await tupInserted()];
  } finally {
    await c.end();
  }
}

test("an enqueue's inserts are in pg_stat_database when its COMMIT returns, right after another transaction", async () => {
  const [before, after] = await insertsSeenAfter((c) =>
    h.stepping.enqueueMany(c, [{ steps: [defineStep('ww.noop', async () => {})({})] }]),
  );
  // One job row (its step rides in it or in steps): at least one insert counted.
  assert.ok(after > before, `tup_inserted ${before} → ${after}: the enqueue's insert is not visible yet`);
});

/** Counts the engine's claims and look-ups of the next due time, in flight and done. */
function countEngineCalls(t: TestContext): { inFlight: () => number; lookupsDone: () => number } {
  const { claim, nextDueInMs } = Engine.prototype;
  let inFlight = 0;
  let lookups = 0;
  const track = <T>(p: Promise<T>, lookup: boolean): Promise<T> => {
    inFlight++;
    return p.finally(() => {
      inFlight--;
      if (lookup) lookups++;
    });
  };
  Engine.prototype.claim = function (this: Engine, ...args: Parameters<Engine['claim']>) {
    return track(claim.apply(this, args), false);
  };
  Engine.prototype.nextDueInMs = function (this: Engine, ...args: Parameters<Engine['nextDueInMs']>) {
    return track(nextDueInMs.apply(this, args), true);
  };
  t.after(() => {
    Engine.prototype.claim = claim;
    Engine.prototype.nextDueInMs = nextDueInMs;
  });
  return { inFlight: () => inFlight, lookupsDone: () => lookups };
}

/**
 * A job of `step` that failed for good, made by hand (enqueued, claimed and failed in SQL)
 * on connections that then close: a backend flushes its statistics as it exits, and this
 * waits until its inserts are in the view, so none of them reaches it later and wakes a
 * database by chance.
 */
async function failedJob(step: string): Promise<string> {
  const before = await tupInserted();
  const producer = new pg.Client(h.url);
  await producer.connect();
  const jobId = await h.stepping
    .enqueue(producer, [defineStep(step, async () => {})({})])
    .finally(() => producer.end());
  const c = new pg.Client(h.url);
  await c.connect();
  try {
    const { rows } = await c.query<{ token: string }>(
      `SELECT lease_token::text AS token FROM stepping.step_claim('test', ARRAY[$1], NULL, 1)`,
      [step],
    );
    await c.query(`SELECT * FROM stepping.step_fail(ARRAY[$1::bigint], ARRAY[$2::uuid], ARRAY[$3::jsonb])`, [
      jobId,
      rows[0]!.token,
      JSON.stringify({ error: { message: 'no' }, permanent: true }),
    ]);
  } finally {
    await c.end();
  }
  assert.equal((await h.stepping.getJob(jobId))?.status, 'failed');
  await eventually(async () => (await tupInserted()) > before, 10_000, 'the enqueue in the statistics');
  return jobId;
}

test('job_retry moves tup_inserted as its COMMIT returns', async () => {
  const jobId = await failedJob('ww.other');
  const [before, after] = await insertsSeenAfter((c) => c.query('SELECT stepping.job_retry($1)', [jobId]));
  assert.ok(
    after > before,
    `tup_inserted ${before} → ${after}: the retry is not visible to the activity watch`,
  );
});

test('a failed job retried in a database without a listener is woken by the activity watch', async (t) => {
  const calls = countEngineCalls(t);
  const jobId = await failedJob('ww.flaky');
  const runs: string[] = [];
  const flaky = defineStep('ww.flaky', async () => {
    runs.push('ran');
  });
  // A budget of 4: the activity watch takes the one listener permit, so the database has
  // no LISTEN connection; the safety poll is 10 minutes away.
  const w = createWorker({ databases: [h.url], maxConnections: 4, steps: [flaky], idlePollMaxMs: 600_000 });
  t.after(() => withTimeout(w.stop(), 15_000, 'stop()'));
  await w.start();
  assert.equal(w.databaseStates().filter((d) => d.listening).length, 0, 'no listener');
  // Idle: its first claim found nothing (the job had failed) and it looked up the next due
  // time (none); nothing is left to wake it but the watch.
  await eventually(() => calls.inFlight() === 0 && calls.lookupsDone() > 0, 10_000, 'the worker idle');
  assert.deepEqual(runs, []);
  await h.stepping.retry(jobId);
  // The watch reads every 500 ms; without a wake-up the job would wait for the safety poll.
  await eventually(() => runs.length === 1, 20_000, 'the retried job to run');
  assert.equal((await h.stepping.waitForJob(jobId, { timeoutMs: 20_000 })).status, 'succeeded');
});
