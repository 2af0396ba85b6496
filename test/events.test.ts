import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createWorker, defineStep, PermanentError, type WorkerEventName } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

test('the events of a retried step and of a compensated job come in causal order', async (t) => {
  let failures = 1;
  const ok = defineStep('e.ok', async () => {});
  const flaky = defineStep(
    'e.flaky',
    async () => {
      if (failures-- > 0) throw new Error('flaky once');
    },
    { backoff: { baseMs: 10, maxMs: 10 } },
  );
  const refuse = defineStep(
    'e.refuse',
    async () => {
      throw new PermanentError('refused');
    },
    { compensate: 'e.ok' },
  );
  const worker = createWorker({ connectionString: h.url, steps: [ok, flaky, refuse], concurrency: 1 });
  t.after(() => worker.stop());
  const seen: string[] = [];
  const names: WorkerEventName[] = [
    'step:started',
    'step:succeeded',
    'step:failed',
    'step:retry-scheduled',
    'job:succeeded',
    'job:failed',
    'job:compensated',
    'job:cancelled',
  ];
  for (const name of names) {
    worker.on(name, (e) =>
      seen.push(`${name} ${'name' in e ? `${e.name}${e.phase === 'compensate' ? '(c)' : ''}` : ''}`.trim()),
    );
  }
  await worker.start();
  const a = await h.stepping.enqueue([ok({}), flaky({})]);
  assert.equal((await h.stepping.waitForJob(a, { timeoutMs: 10_000 })).status, 'succeeded');
  await eventually(() => seen.includes('job:succeeded'), 5000, 'job:succeeded event');
  const b = await h.stepping.enqueue([ok({}), refuse({})]);
  assert.equal((await h.stepping.waitForJob(b, { timeoutMs: 10_000 })).status, 'compensated');
  await eventually(() => seen.includes('job:compensated'), 5000, 'job:compensated event');
  await worker.stop();
  assert.deepEqual(seen, [
    'step:started e.ok',
    'step:succeeded e.ok',
    'step:started e.flaky',
    'step:failed e.flaky',
    'step:retry-scheduled e.flaky',
    'step:started e.flaky',
    'step:succeeded e.flaky',
    'job:succeeded',
    'step:started e.ok',
    'step:succeeded e.ok',
    'step:started e.refuse',
    'step:failed e.refuse',
    'step:started e.ok(c)',
    'step:succeeded e.ok(c)',
    'job:compensated',
  ]);
});

test('a listener that throws or rejects neither stops the worker nor loses a job; it is reported as an error event', async (t) => {
  const ok = defineStep('e.ok2', async () => {});
  const worker = createWorker({ connectionString: h.url, steps: [ok], concurrency: 4 });
  t.after(() => worker.stop());
  const errors: string[] = [];
  let succeeded = 0;
  worker.on('step:started', () => {
    throw new Error('listener of step:started broke');
  });
  worker.on('step:succeeded', () => {
    throw 'not even an Error';
  });
  // Runs after the throwing listener of the same event: one bad listener does not silence the others.
  worker.on('step:succeeded', () => {
    succeeded += 1;
  });
  worker.on('job:succeeded', async () => {
    throw new Error('async listener of job:succeeded broke');
  });
  worker.on('error', (e) => {
    errors.push(`${e.during}: ${e.error.message}`);
    if (e.during === 'event listener') throw new Error('and the error listener throws too');
  });
  await worker.start();
  const ids = [];
  for (let i = 0; i < 6; i += 1) ids.push(await h.stepping.enqueue([ok({}), ok({})]));
  for (const id of ids)
    assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
  await eventually(() => succeeded === 12, 5000, 'every step:succeeded reached the second listener');
  await eventually(
    () => errors.filter((e) => e.includes('async listener of job:succeeded broke')).length === 6,
    5000,
    'each rejected job:succeeded listener reported',
  );
  assert.ok(
    errors.some((e) => e === 'event listener: listener of step:started broke'),
    errors.join('\n'),
  );
  assert.ok(
    errors.some((e) => e.startsWith('event listener: ') && e.includes('not even an Error')),
    errors.join('\n'),
  );
  await worker.stop();
});
