import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createWorker, defineStep } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

test('priority: lower numbers run first', async (t) => {
  const order: number[] = [];
  const step = defineStep('s.prio', async (args: { p: number }) => {
    order.push(args.p);
  });
  const priorities = [5, -3, 12, 0, 7, -10, 3, 3, 1, 9];
  // All enqueued before the worker starts, so the claim order alone decides.
  for (const p of priorities) await h.stepping.enqueue([step({ p })], { priority: p, queue: 'prio' });
  const w = await h.worker({ steps: [step], concurrency: 1, batchSize: 1, queues: ['prio'] }, t);
  await eventually(() => order.length === priorities.length, 10_000, 'all jobs');
  await w.stop();
  assert.deepEqual(
    order,
    [...priorities].sort((a, b) => a - b),
  );
});

test('runAt and delayMs are honoured: the step does not start before its time', async (t) => {
  const startedAt = new Map<string, number>();
  const step = defineStep('s.timed', async (args: { tag: string }) => {
    startedAt.set(args.tag, Date.now());
  });
  await h.worker({ steps: [step], concurrency: 2, pollIntervalMs: 600_000, queues: ['timed'] }, t);
  const runAt = new Date(Date.now() + 400);
  const enqueuedAt = Date.now();
  await h.stepping.enqueue([step({ tag: 'runAt' })], { runAt, queue: 'timed' });
  await h.stepping.enqueue([step({ tag: 'delay' })], { delayMs: 300, queue: 'timed' });
  await eventually(() => startedAt.size === 2, 10_000, 'both scheduled jobs');
  assert.ok(startedAt.get('runAt')! >= runAt.getTime() - 5, 'runAt job started early');
  assert.ok(startedAt.get('delay')! >= enqueuedAt + 300 - 5, 'delayed job started early');
});

test('per-queue concurrency limits are never exceeded', async () => {
  const running = new Map<string, number>();
  const peak = new Map<string, number>();
  const step = defineStep('s.limited', async (args: { q: string }) => {
    running.set(args.q, (running.get(args.q) ?? 0) + 1);
    peak.set(args.q, Math.max(peak.get(args.q) ?? 0, running.get(args.q)!));
    await new Promise((r) => setTimeout(r, 15));
    running.set(args.q, running.get(args.q)! - 1);
  });
  const jobs = [
    ...Array.from({ length: 30 }, () => ({ steps: [step({ q: 'emails' })], options: { queue: 'emails' } })),
    ...Array.from({ length: 30 }, () => ({ steps: [step({ q: 'sms' })], options: { queue: 'sms' } })),
  ];
  await h.stepping.enqueueMany(undefined, jobs);
  const w = createWorker({
    connectionString: h.url,
    steps: [step],
    concurrency: 10,
    queues: { emails: 2, sms: 5 },
  });
  let done = 0;
  w.on('job:succeeded', () => done++);
  await w.start();
  await eventually(() => done === 60, 20_000, 'all 60 jobs');
  await w.stop();
  assert.equal(peak.get('emails'), 2, 'emails ran at most (and, with a backlog, exactly) 2 at once');
  assert.equal(peak.get('sms'), 5, 'sms ran at most (and, with a backlog, exactly) 5 at once');
});
