/**
 * Issue 8: nothing a handler returns or throws can stop the others. The old completer sent
 * a batch in one call and retried it whole forever, so one unstorable result wedged every
 * unit of the batch and, through the shared slots, the whole worker.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createWorker, defineStep, MAX_ERROR_MESSAGE_LENGTH, MAX_RETRY_LATER_MS } from '../src/index.js';
import { eventually, setup } from './support/harness.js';
import { loginRole } from './support/login-role.js';

const h = await setup(import.meta.url);

/** Every kind of poison the issue reproduced, by tag. */
const poison = defineStep(
  'wedge.poison',
  (args: { kind: string }, ctx) => {
    switch (args.kind) {
      case 'later-2^31':
        return ctx.retryLater(2 ** 31);
      case 'later-infinity':
        return ctx.retryLater(Number.POSITIVE_INFINITY);
      case 'later-nan':
        return ctx.retryLater(Number.NaN);
      case 'nul':
        throw new Error('bad\u0000message\u0000');
      case 'surrogate':
        throw new Error('half an emoji: \ud83d');
      case 'huge':
        throw new Error('x'.repeat(20 * 1024 * 1024));
      case 'getter':
        throw Object.defineProperty(new Error('hidden'), 'message', {
          get() {
            throw new Error('no message for you');
          },
        });
      case 'not-error':
        throw { toString: null, code: 7n } as unknown;
      default:
        throw new Error(`unknown poison ${args.kind}`);
    }
  },
  { maxAttempts: 1 },
);
/** Succeeds, but its definition's compensation is one the engine refuses to store. */
const badCompensation = defineStep('wedge.bad-comp', async () => 'done', {
  compensate: () => ({ name: 'n'.repeat(500), args: {} }),
});
const first = defineStep('wedge.first', async () => {});
const second = defineStep('wedge.second', async () => {});

test('poison results among good ones: every good job finishes, every poison is stored bounded', async (t) => {
  const worker = await h.worker({ steps: [poison, badCompensation, first, second], concurrency: 4 }, t);
  t.after(() => worker.stop());
  worker.on('error', () => {});
  const kinds = [
    'later-2^31',
    'later-infinity',
    'later-nan',
    'nul',
    'surrogate',
    'huge',
    'getter',
    'not-error',
  ];
  const poisoned = await h.stepping.enqueueMany(
    undefined,
    kinds.map((kind) => ({ steps: [poison({ kind })] })),
  );
  const bad = await h.stepping.enqueue([badCompensation({})]);
  const good = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 20 }, () => ({ steps: [first({}), second({})] })),
  );
  for (const { jobId } of good) {
    assert.equal((await h.stepping.waitForJob(jobId, { timeoutMs: 30_000 })).status, 'succeeded');
  }

  const byKind = new Map(kinds.map((kind, i) => [kind, poisoned[i]!.jobId]));
  // "Not yet" for 2^31 ms is clamped to the documented maximum, not an integer overflow.
  const later = await h.pool.query<{ ahead: number }>(
    `SELECT extract(epoch FROM run_at - stepping.engine_now()) * 1000 AS ahead
     FROM stepping.job_overview WHERE job_id = $1`,
    [byKind.get('later-2^31')],
  );
  assert.ok(later.rows[0]!.ahead > MAX_RETRY_LATER_MS - 60_000 && later.rows[0]!.ahead <= MAX_RETRY_LATER_MS);
  for (const kind of ['later-infinity', 'later-nan', 'nul', 'surrogate', 'huge', 'getter', 'not-error']) {
    const job = await h.stepping.waitForJob(byKind.get(kind)!, { timeoutMs: 30_000 });
    assert.equal(job.status, 'failed', kind);
    assert.ok(job.lastError !== null && job.lastError.length <= MAX_ERROR_MESSAGE_LENGTH, kind);
    assert.ok(!job.lastError.includes('\u0000'), kind);
  }
  const [retryErr, nul, surrogate, huge, getter] = await Promise.all(
    ['later-infinity', 'nul', 'surrogate', 'huge', 'getter'].map(
      async (kind) => (await h.stepping.getJob(byKind.get(kind)!))!.lastError!,
    ),
  );
  assert.match(retryErr!, /retryLater\(ms\) needs a finite number/);
  assert.equal(nul, 'badmessage');
  assert.equal(surrogate, 'half an emoji: \ufffd');
  assert.equal(huge!.length, MAX_ERROR_MESSAGE_LENGTH);
  assert.match(getter!, /Error|hidden|no message/);
  // The refused compensation turned the success into a clear, permanent failure.
  const refused = await h.stepping.waitForJob(bad, { timeoutMs: 30_000 });
  assert.equal(refused.status, 'failed');
  assert.match(refused.lastError ?? '', /could not be stored/);
});

test('a report the engine keeps refusing is given up: its lease lapses and another worker recovers the unit', async (t) => {
  const url = await loginRole(h.url, ['stepping_worker'], 'wedge');
  const revoke = async (sql: 'REVOKE' | 'GRANT') => {
    const to = sql === 'REVOKE' ? 'FROM' : 'TO';
    await h.pool.query(
      `${sql} EXECUTE ON FUNCTION stepping.step_fail(bigint[], uuid[], jsonb[]) ${to} stepping_worker`,
    );
    await h.pool.query(
      `${sql} EXECUTE ON FUNCTION stepping.step_complete(bigint[], uuid[], jsonb[], jsonb[], text, text[], text[], integer) ${to} stepping_worker`,
    );
  };
  await revoke('REVOKE');
  t.after(() => revoke('GRANT'));
  let release: () => void = () => {};
  const holding = new Promise<void>((resolve) => (release = resolve));
  const refusedStep = defineStep('wedge.refused', async () => {});
  const heldStep = defineStep('wedge.held', async () => {
    await holding;
  });
  const worker = createWorker({
    connectionString: url,
    steps: [refusedStep, heldStep],
    leaseMs: 2000,
    heartbeatMs: 100,
  });
  worker.on('error', () => {});
  const lost: string[] = [];
  worker.on('step:lease-lost', (e) => lost.push(e.jobId));
  await worker.start();
  t.after(async () => {
    release();
    await worker.stop();
  });
  const held = await h.stepping.enqueue([heldStep({})]);
  const refused = await h.stepping.enqueue([refusedStep({})]);
  await eventually(() => lost.includes(refused), 20_000, 'the refused report to be given up');
  const leaseOf = async (id: string) =>
    (
      await h.pool.query<{ at: Date }>(
        'SELECT lease_expires_at AS at FROM stepping.job_overview WHERE job_id = $1',
        [id],
      )
    ).rows[0]!.at.getTime();
  // Heartbeats go on for the held unit, but not for the given-up one. A heartbeat already
  // in flight when the report was given up may still extend both; heartbeats never
  // overlap, so once the held unit's lease has moved once more, none carries it again.
  const heldAt = await leaseOf(held);
  await eventually(async () => (await leaseOf(held)) > heldAt, 10_000, 'a heartbeat of the held unit');
  const refusedAt = await leaseOf(refused);
  const heldAgain = await leaseOf(held);
  await eventually(async () => (await leaseOf(held)) > heldAgain, 10_000, 'a second heartbeat');
  assert.equal(await leaseOf(refused), refusedAt, 'the given-up unit is no longer heart-beaten');
  assert.equal(worker.running, 1, 'only the held unit is still held');
  // Its lease lapses; another worker (allowed to report) recovers and finishes it. The
  // refused worker stops first, so it cannot claim the unit again itself.
  release();
  await worker.stop();
  await h.shiftClock('1 minute');
  const rescuer = await h.worker({ steps: [refusedStep] }, t);
  t.after(() => rescuer.stop());
  assert.equal((await h.stepping.waitForJob(refused, { timeoutMs: 20_000 })).status, 'succeeded');
});
