import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep, InvalidJobStateError, PermanentError } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** Every handler run, in order, per job. */
const runs = new Map<string, string[]>();
const log = (jobId: string, what: string) => runs.set(jobId, [...(runs.get(jobId) ?? []), what]);
/** Failures still to inject, by "tag:name", registered before the job is enqueued. */
const failuresLeft = new Map<string, number>();
const failOnce = (key: string, times: number) => failuresLeft.set(key, times);
function maybeFail(tag: string, name: string) {
  const key = `${tag}:${name}`;
  const left = failuresLeft.get(key) ?? 0;
  if (left > 0) {
    failuresLeft.set(key, left - 1);
    throw new Error(`injected failure of ${name}`);
  }
}

const fast = { baseMs: 10, maxMs: 50 };
const undo = (n: string) =>
  defineStep(
    `undo.${n}`,
    async (args: { tag: string }, ctx) => {
      log(ctx.jobId, `undo.${n}(${args.tag})`);
      maybeFail(args.tag, `undo.${n}`);
    },
    { backoff: fast },
  );
const undo1 = undo('one');
const undo2 = undo('two');
const undo3 = undo('three');
const doStep = (n: string, compensate?: string) =>
  defineStep(
    `do.${n}`,
    async (args: { tag: string; permanent?: boolean }, ctx) => {
      log(ctx.jobId, `do.${n}`);
      if (args.permanent) throw new PermanentError(`${n} refused`);
      maybeFail(args.tag, `do.${n}`);
    },
    { backoff: fast, ...(compensate ? { compensate } : {}) },
  );
const step1 = doStep('one', 'undo.one');
const step2 = doStep('two', 'undo.two');
const plain = doStep('plain');
const step3 = doStep('three', 'undo.three');
const limited = defineStep(
  'do.limited',
  async (args: { tag: string }, ctx) => {
    log(ctx.jobId, 'do.limited');
    maybeFail(args.tag, 'do.limited');
  },
  { maxAttempts: 2, backoff: fast },
);
const derived = defineStep(
  'do.derived',
  async (_args: { orderId: number }, ctx) => {
    log(ctx.jobId, 'do.derived');
    throw new PermanentError('no');
  },
  { compensate: (args) => ({ name: 'undo.one', args: { tag: `order-${args.orderId}` } }) },
);
const patient = defineStep(
  'do.patient',
  async (_args: unknown, ctx) => {
    log(ctx.jobId, `do.patient#${ctx.attempt}`);
    const notYets = runs.get(ctx.jobId)!.filter((r) => r.startsWith('do.patient')).length;
    if (notYets <= 5) return ctx.retryLater(5);
    return undefined;
  },
  { maxAttempts: 2 },
);

await h.worker({
  steps: [step1, step2, plain, step3, undo1, undo2, undo3, limited, derived, patient],
  concurrency: 8,
  pollIntervalMs: 200,
});

test('permanent failure compensates every succeeded step and the failing one, in reverse order', async () => {
  const id = await h.stepping.enqueue([
    step1({ tag: 'a' }),
    step2({ tag: 'b' }),
    plain({ tag: 'c' }),
    step3({ tag: 'd', permanent: true }),
  ]);
  const final = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(final.status, 'compensated');
  assert.deepEqual(runs.get(id), [
    'do.one',
    'do.two',
    'do.plain',
    'do.three',
    'undo.three(d)',
    'undo.two(b)',
    'undo.one(a)',
  ]);
  const steps = await h.stepping.steps(id);
  assert.deepEqual(
    steps.map((s) => [s.name, s.status, s.compensationStatus]),
    [
      ['do.one', 'succeeded', 'succeeded'],
      ['do.two', 'succeeded', 'succeeded'],
      ['do.plain', 'succeeded', null],
      ['do.three', 'failed', 'succeeded'],
    ],
  );
});

test('a compensation is retried until it succeeds, with its attempts and error recorded', async () => {
  failOnce('retried-b:undo.two', 3);
  const id = await h.stepping.enqueue([
    step1({ tag: 'a' }),
    step2({ tag: 'retried-b' }),
    step3({ tag: 'c', permanent: true }),
  ]);
  const final = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(final.status, 'compensated');
  assert.deepEqual(runs.get(id), [
    'do.one',
    'do.two',
    'do.three',
    'undo.three(c)',
    'undo.two(retried-b)',
    'undo.two(retried-b)',
    'undo.two(retried-b)',
    'undo.two(retried-b)',
    'undo.one(a)',
  ]);
  const two = (await h.stepping.steps(id))[1]!;
  assert.equal(two.compensationAttempts, 4);
  assert.match(two.compensationLastError ?? '', /injected failure of undo.two/);
});

test('without any compensation to run the job ends failed, not compensated', async () => {
  const noComp = await h.stepping.enqueue([plain({ tag: 'x' }), plain({ tag: 'y', permanent: true })]);
  assert.equal((await h.stepping.waitForJob(noComp, { timeoutMs: 10_000 })).status, 'failed');
  // Compensations exist only after the failing step: nothing succeeded that can be undone.
  const early = await h.stepping.enqueue([plain({ tag: 'x', permanent: true }), step1({ tag: 'never' })]);
  assert.equal((await h.stepping.waitForJob(early, { timeoutMs: 10_000 })).status, 'failed');
  assert.deepEqual(runs.get(early), ['do.plain']);
});

test('maxAttempts exhausted ends the forward path; retry() resumes from the failed step only', async () => {
  failOnce('limited-x:do.limited', 2);
  const id = await h.stepping.enqueue([
    plain({ tag: 'first' }),
    limited({ tag: 'limited-x' }),
    plain({ tag: 'last' }),
  ]);
  const failed = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(failed.status, 'failed');
  assert.equal(failed.currentStep, 1);
  assert.match(failed.lastError ?? '', /injected failure of do.limited/);
  assert.deepEqual(runs.get(id), ['do.plain', 'do.limited', 'do.limited']);

  await h.stepping.retry(id);
  const done = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(done.status, 'succeeded');
  // The first step did not run again; the failed one ran once more (attempts were reset).
  assert.deepEqual(runs.get(id), ['do.plain', 'do.limited', 'do.limited', 'do.limited', 'do.plain']);
  const steps = await h.stepping.steps(id);
  assert.equal(steps[1]!.attempts, 1);
});

test('retrying a compensated or succeeded job is a clear error', async () => {
  const compensated = await h.stepping.enqueue([step1({ tag: 'a' }), step3({ tag: 'b', permanent: true })]);
  assert.equal((await h.stepping.waitForJob(compensated, { timeoutMs: 10_000 })).status, 'compensated');
  await assert.rejects(h.stepping.retry(compensated), (e: unknown) => {
    assert.ok(e instanceof InvalidJobStateError);
    assert.match((e as Error).message, /is compensated; only failed jobs can be retried/);
    return true;
  });
  const ok = await h.stepping.enqueue([plain({ tag: 'ok' })]);
  assert.equal((await h.stepping.waitForJob(ok, { timeoutMs: 10_000 })).status, 'succeeded');
  await assert.rejects(h.stepping.retry(ok), /is succeeded; only failed jobs can be retried/);
});

test('compensation args can be derived from the step args', async () => {
  const id = await h.stepping.enqueue([derived({ orderId: 42 })]);
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'compensated');
  assert.deepEqual(runs.get(id), ['do.derived', 'undo.one(order-42)']);
});

test('retryLater ("not yet") does not consume attempts', async () => {
  // maxAttempts 2, yet the step says "not yet" five times and then succeeds.
  const id = await h.stepping.enqueue([patient({})]);
  const final = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(final.status, 'succeeded');
  assert.deepEqual(
    runs.get(id),
    Array.from({ length: 6 }, () => 'do.patient#1'),
  );
});

test('a passed deadline ends the forward path even though attempts are unlimited', async () => {
  failOnce('late-b:do.two', 1_000_000);
  const id = await h.stepping.enqueue([step1({ tag: 'a' }), step2({ tag: 'late-b' })], { timeoutMs: 300 });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  assert.equal(final.status, 'compensated');
  const r = runs.get(id)!;
  assert.deepEqual(r.slice(-2), ['undo.two(late-b)', 'undo.one(a)']);
  assert.ok(r.filter((x) => x === 'do.two').length >= 1);
});

test("a step still running when its job's deadline passes is aborted, and the job compensates", async (t) => {
  const order: string[] = [];
  const slow = defineStep(
    'deadline.slow',
    async (_args: unknown, ctx) => {
      order.push('slow started');
      // Runs for a minute unless aborted.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 60_000);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          order.push(`slow aborted: ${(ctx.signal.reason as Error).message}`);
          resolve();
        });
      });
      if (ctx.signal.aborted) throw ctx.signal.reason;
    },
    { compensate: 'deadline.undo' },
  );
  const undo = defineStep('deadline.undo', () => {
    order.push('undo');
  });
  await h.worker({ steps: [slow, undo], queues: ['deadline-abort'], pollIntervalMs: 100 }, t);
  // 4 s: a loaded machine has seconds to start the step before its deadline.
  const id = await h.stepping.enqueue([slow(null)], { queue: 'deadline-abort', timeoutMs: 4000 });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'compensated', final.lastError ?? '');
  assert.deepEqual(order, [
    'slow started',
    order[1]!.startsWith("slow aborted: step deadline.slow was still running when its job's deadline passed")
      ? order[1]!
      : `(not aborted by the deadline: ${order[1]})`,
    'undo',
  ]);
  const [state] = await h.stepping.steps(id);
  assert.equal(state!.status, 'failed');
  assert.match(state!.lastError ?? '', /deadline passed/);
});

test("a step whose worker died is compensated by its definition's compensation when the deadline has passed by the next claim", async (t) => {
  const order: string[] = [];
  const charge = defineStep(
    'orphan.charge',
    (args: { n: number }) => {
      order.push(`charge ${args.n}`);
    },
    { compensate: (args: { n: number }, result) => ({ name: 'orphan.refund', args: { n: args.n, result } }) },
  );
  const refund = defineStep('orphan.refund', (args: { n: number; result?: unknown }) => {
    order.push(`refund ${args.n} ${JSON.stringify(args.result ?? null)}`);
  });
  const id = await h.stepping.enqueue([charge({ n: 7 })], { queue: 'orphan', timeoutMs: 60_000 });
  // A worker claims the step and dies mid-attempt: no report, so the engine never learnt
  // the compensation its definition names.
  const claimed = await h.pool.query(
    `SELECT job_id FROM stepping.step_claim('dead-worker', ARRAY['orphan.charge'], ARRAY['orphan'], 1, 30000)`,
  );
  assert.equal(claimed.rowCount, 1);
  // Its lease expires and the deadline passes before any other worker claims the step.
  await h.shiftClock('2 minutes');
  await h.worker({ steps: [charge, refund], queues: ['orphan'], pollIntervalMs: 100 }, t);
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'compensated', `${final.status}: ${final.lastError ?? ''}`);
  assert.match(final.lastError ?? '', /deadline passed/);
  // The step is not run again (its deadline passed); it ran once, so it is compensated.
  assert.deepEqual(order, ['refund 7 null']);
});

test("a job cancelled with compensation while its step's worker was gone compensates that step by its definition's compensation", async (t) => {
  const order: string[] = [];
  const reserve = defineStep(
    'orphan.reserve',
    (args: { n: number }) => {
      order.push(`reserve ${args.n}`);
    },
    { compensate: 'orphan.release' },
  );
  const release = defineStep('orphan.release', (args: { n: number }) => {
    order.push(`release ${args.n}`);
  });
  const id = await h.stepping.enqueue([reserve({ n: 3 })], { queue: 'orphan-cancel' });
  // A worker claims the step and dies mid-attempt: no report, so the engine never learnt
  // the compensation its definition names.
  const claimed = await h.pool.query(
    `SELECT job_id FROM stepping.step_claim('dead-worker', ARRAY['orphan.reserve'], ARRAY['orphan-cancel'], 1, 30000)`,
  );
  assert.equal(claimed.rowCount, 1);
  await h.stepping.cancel(id, { compensate: true });
  await h.shiftClock('31 seconds'); // the dead worker's lease expires
  await h.worker({ steps: [reserve, release], queues: ['orphan-cancel'], pollIntervalMs: 100 }, t);
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'cancelled', `${final.status}: ${final.lastError ?? ''}`);
  // The step is not run again (the job was cancelled); it ran once, so it is compensated.
  assert.deepEqual(order, ['release 3']);
});
