import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep, InvalidJobStateError, JobNotFoundError } from '../src/index.js';
import { deferred, eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

const runs = new Map<string, string[]>();
// Returns nothing: a handler returning the Map would store it as its result, and a Map is not JSON.
const log = (jobId: string, what: string): void => void runs.set(jobId, [...(runs.get(jobId) ?? []), what]);
/** Handlers that wait for the job's cancel: resolves when they have started. */
const started = new Map<string, ReturnType<typeof deferred<void>>>();
const startedFor = (tag: string) => {
  if (!started.has(tag)) started.set(tag, deferred());
  return started.get(tag)!;
};

const first = defineStep(
  'c.first',
  async (_a: { tag: string }, ctx) => {
    log(ctx.jobId, 'first');
  },
  { compensate: 'c.undo-first' },
);
const undoFirst = defineStep('c.undo-first', async (_a: unknown, ctx) => log(ctx.jobId, 'undo-first'));
/** Runs until its signal is aborted, then fails with the abort reason. */
const waitsForCancel = defineStep(
  'c.wait',
  async (args: { tag: string }, ctx) => {
    log(ctx.jobId, 'wait-start');
    startedFor(args.tag).resolve();
    await new Promise<void>((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
    });
  },
  { compensate: 'c.undo-wait' },
);
const undoWait = defineStep('c.undo-wait', async (_a: unknown, ctx) => log(ctx.jobId, 'undo-wait'));
const last = defineStep('c.last', async (_a: unknown, ctx) => log(ctx.jobId, 'last'));

await h.worker({
  steps: [first, undoFirst, waitsForCancel, undoWait, last],
  concurrency: 4,
  pollIntervalMs: 200,
});

test('cancelling a pending job stops it at once; its steps never run', async () => {
  const id = await h.stepping.enqueue([first({ tag: 'p' }), last({})], {
    runAt: new Date(Date.now() + 60_000),
  });
  assert.equal(await h.stepping.cancel(id), 'cancelled');
  const job = await h.stepping.getJob(id);
  assert.equal(job?.status, 'cancelled');
  assert.ok(job?.finishedAt);
  assert.deepEqual(
    (await h.stepping.steps(id)).map((s) => s.status),
    ['cancelled', 'cancelled'],
  );
  assert.equal(runs.get(id), undefined);
});

test('cancelling a running job aborts ctx.signal; the job stops after that step', async () => {
  const id = await h.stepping.enqueue([first({ tag: 'r' }), waitsForCancel({ tag: 'r' }), last({})]);
  await startedFor('r').promise;
  assert.equal(await h.stepping.cancel(id), 'running');
  const final = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(final.status, 'cancelled');
  // Without compensate: nothing is undone, and the last step never runs.
  assert.deepEqual(runs.get(id), ['first', 'wait-start']);
  assert.deepEqual(
    (await h.stepping.steps(id)).map((s) => s.status),
    ['succeeded', 'cancelled', 'cancelled'],
  );
});

test('cancel with compensate runs the compensations in reverse, including the interrupted step', async () => {
  const id = await h.stepping.enqueue([first({ tag: 'c' }), waitsForCancel({ tag: 'c' }), last({})]);
  await startedFor('c').promise;
  await h.stepping.cancel(id, { compensate: true });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(final.status, 'cancelled');
  assert.deepEqual(runs.get(id), ['first', 'wait-start', 'undo-wait', 'undo-first']);
});

test('cancel with compensate of a pending job undoes the steps that succeeded', async () => {
  // The second step is scheduled far ahead, so the job waits pending after step 1.
  const id = await h.stepping.enqueue([first({ tag: 'pc' })]);
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
  const two = await h.stepping.enqueue([first({ tag: 'pc2' }), waitsForCancel({ tag: 'pc2' })], {
    runAt: new Date(Date.now() + 60_000),
  });
  // Never started: compensating has nothing to undo, the job ends cancelled.
  assert.equal(await h.stepping.cancel(two, { compensate: true }), 'cancelled');
  assert.equal(runs.get(two), undefined);
});

test('cancel of a finished job or an unknown job is a clear error', async () => {
  const id = await h.stepping.enqueue([last({})]);
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
  await assert.rejects(h.stepping.cancel(id), (e: unknown) => {
    assert.ok(e instanceof InvalidJobStateError);
    assert.match((e as Error).message, /already succeeded/);
    return true;
  });
  await assert.rejects(h.stepping.cancel('999999999'), JobNotFoundError);
});

test('a refused cancel of a finished job takes no row lock', async (t) => {
  // PostgreSQL sends the error before it releases the aborted transaction's locks; a
  // refused cancel that had locked the row made a prune on another connection (behind
  // PgBouncer) skip the job now and then. Here another session holds the row: the
  // refusal must not wait for it.
  const id = await h.stepping.enqueue([last({})]);
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
  const holder = await h.client();
  const caller = await h.client();
  t.after(() => holder.query('ROLLBACK').catch(() => {}));
  await holder.query('BEGIN');
  await holder.query('SELECT 1 FROM stepping.jobs WHERE id = $1 FOR UPDATE', [id]);
  await caller.query("SET lock_timeout = '2s'");
  await assert.rejects(caller.query('SELECT stepping.job_cancel($1)', [id]), (e: unknown) => {
    assert.equal((e as { code?: string }).code, 'SP004', (e as Error).message);
    return true;
  });
});

/** Opened by the test once it has seen the job compensating. */
const undoGate = deferred();
/** A compensation that outlives several heartbeats (and waits for the gate), honouring its signal. */
const slowUndo = defineStep('c.slow-undo', async (_a: unknown, ctx) => {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => void undoGate.promise.then(resolve), 600);
    ctx.signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(ctx.signal.reason as Error);
      },
      { once: true },
    );
  });
  log(ctx.jobId, `slow-undo attempt ${ctx.attempt}`);
});
const slowFirst = defineStep('c.slow-first', async (_a: unknown, ctx) => log(ctx.jobId, 'slow-first'), {
  compensate: 'c.slow-undo',
});
const slowWait = defineStep('c.slow-wait', async (args: { tag: string }, ctx) => {
  startedFor(args.tag).resolve();
  await new Promise<void>((_resolve, reject) => {
    ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
  });
});
// Heartbeats every 100 ms: the compensation above spans six of them.
await h.worker({
  steps: [slowFirst, slowUndo, slowWait],
  concurrency: 2,
  heartbeatMs: 100,
  pollIntervalMs: 200,
});

test('a compensation started by cancel(compensate) is not aborted by its own job’s cancel: it runs to its end', async () => {
  const id = await h.stepping.enqueue([slowFirst({}), slowWait({ tag: 'slow' })]);
  await startedFor('slow').promise;
  await h.stepping.cancel(id, { compensate: true });
  await eventually(
    async () => (await h.stepping.getJob(id))?.status === 'compensating',
    10_000,
    'compensating',
  );
  // A compensating job cannot be retried, and the refusal says what it is doing.
  await assert.rejects(h.stepping.retry(id), /is compensating; only failed jobs can be retried/);
  undoGate.resolve();
  const final = await h.stepping.waitForJob(id, { timeoutMs: 15_000 });
  assert.equal(final.status, 'cancelled');
  assert.deepEqual(runs.get(id), ['slow-first', 'slow-undo attempt 1']);
});

test('a second cancel without compensate does not withdraw the compensation the first asked for', async () => {
  // Steps no worker here runs, driven through the engine's functions: the job is running
  // its second step when both cancels arrive.
  const id = await h.stepping.enqueue([
    { name: 'c.manual', args: {}, options: { compensate: { name: 'c.undo-first', args: {} } } },
    { name: 'c.manual', args: {} },
  ]);
  const claimOne = async () =>
    (
      await h.pool.query<{ job_id: string; token: string }>(
        `SELECT job_id::text, lease_token::text AS token FROM stepping.step_claim('t', ARRAY['c.manual'], NULL, 1, 60000)`,
      )
    ).rows[0]!;
  const one = await claimOne();
  await h.pool.query(`SELECT stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid])`, [
    one.job_id,
    one.token,
  ]);
  const two = await claimOne();
  assert.equal(two.job_id, id);
  assert.equal(await h.stepping.cancel(id, { compensate: true }), 'running');
  assert.equal(await h.stepping.cancel(id), 'running');
  await h.pool.query(
    `SELECT stepping.step_fail(ARRAY[$1::bigint], ARRAY[$2::uuid], ARRAY['{"error": {"message": "stopped"}}'::jsonb])`,
    [two.job_id, two.token],
  );
  const final = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(final.status, 'cancelled');
  assert.deepEqual(runs.get(id), ['undo-first']);
});
