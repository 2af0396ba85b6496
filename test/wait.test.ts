import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createStepping, defineStep, JobNotFoundError, WaitTimeoutError } from '../src/index.js';
import { deferred, setup } from './support/harness.js';

const h = await setup(import.meta.url);
const gate = deferred();
const gated = defineStep('w.gated', async () => {
  await gate.promise;
});
/** A step no worker has a handler for: its job stays pending. */
const unserved = { name: 'w.unserved', args: {} };
await h.worker({ steps: [gated], concurrency: 2, pollIntervalMs: 600_000 });

test('waitForJob resolves with the final state when the job finishes', async () => {
  const id = await h.stepping.enqueue([gated({}), gated({})]);
  let settled = false;
  const waiting = h.stepping.waitForJob(id, { timeoutMs: 10_000 }).finally(() => (settled = true));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(settled, false, 'must not resolve while the job runs');
  gate.resolve();
  const state = await waiting;
  assert.equal(state.status, 'succeeded');
  assert.equal(state.jobId, id);
  // Already final: resolves at once.
  assert.equal((await h.stepping.waitForJob(id)).status, 'succeeded');
});

test('waitForJob gives up with WaitTimeoutError, and rejects unknown jobs', async () => {
  const id = await h.stepping.enqueue([unserved]);
  await assert.rejects(h.stepping.waitForJob(id, { timeoutMs: 150 }), WaitTimeoutError);
  await assert.rejects(h.stepping.waitForJob('987654321', { timeoutMs: 150 }), JobNotFoundError);
});

test('waitForJob is woken by NOTIFY, not by polling: no query runs while it waits', async () => {
  const id = await h.stepping.enqueue([unserved]);
  const waiting = h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 50));
  const before = await statementsOf(h.stepping.pool);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(await statementsOf(h.stepping.pool), before, 'waitForJob queried while waiting');
  // Finishing the job (here by cancelling it) wakes the waiter through <schema>_done.
  await h.pool.query('SELECT stepping.job_cancel($1)', [id]);
  assert.equal((await waiting).status, 'cancelled');
});

test('waitForJob polls when its LISTEN connection cannot be made, and still sees the job finish', async (t) => {
  // Nothing listens on port 1: the LISTEN connection is refused, the queries still work.
  const polling = createStepping({
    connectionString: h.url,
    listenConnectionString: 'postgres://postgres@127.0.0.1:1/nowhere',
  });
  t.after(() => polling.close());
  const id = await h.stepping.enqueue([unserved]);
  // Reads of the job's state: how many were sent, and how many had their answer.
  let sent = 0;
  let answered = 0;
  const original = polling.pool.query.bind(polling.pool) as (...args: unknown[]) => Promise<unknown>;
  (polling.pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const read = typeof args[0] === 'string' && args[0].includes('job_overview');
    if (read) sent++;
    const result = original(...args);
    if (read) void result.finally(() => answered++).catch(() => {});
    return result;
  };
  const waiting = polling.waitForJob(id, { timeoutMs: 10_000 });
  let settled = false;
  waiting.then(
    () => (settled = true),
    () => (settled = true),
  );
  // Cancel only once the first read has answered (pending): from then on only a poll can
  // see the job finish, since no NOTIFY can arrive.
  while (answered < 1 && !settled) await new Promise((r) => setTimeout(r, 20));
  await h.pool.query('SELECT stepping.job_cancel($1)', [id]);
  const state = await waiting;
  assert.equal(state.status, 'cancelled');
  // The first read answered "pending" before the cancel: a later read, a poll, saw it.
  assert.ok(sent >= 2, `expected a poll to see the cancel, saw ${sent} reads`);
});

/**
 * Counts reads of the job's state the pool has sent, by wrapping its query method once
 * (the one-time LISTEN probe that waitForJob sends is not a poll and is not counted).
 */
const counts = new WeakMap<object, { n: number }>();
async function statementsOf(pool: import('pg').Pool): Promise<number> {
  let c = counts.get(pool);
  if (!c) {
    const counter = { n: 0 };
    const original = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('job_overview')) counter.n++;
      return original(...args);
    };
    counts.set(pool, counter);
    c = counter;
  }
  return c.n;
}
