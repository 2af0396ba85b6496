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
