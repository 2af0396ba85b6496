import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep } from '../src/index.js';
import { jitter, withTimeout } from './fixtures/core-util.js';
import { deferred, setup } from './support/harness.js';

const h = await setup(import.meta.url);

interface Run {
  jobId: string;
  stepIndex: number;
  argIndex: number;
  /** Positions on one logical clock shared by every handler of this process. */
  start: number;
  end: number;
}

test('each job runs its 5 steps strictly in order, once each, while 4 workers run jobs in parallel', async (t) => {
  const JOBS = 60;
  const STEPS = 5;
  let clock = 0;
  const runs: Run[] = [];
  let running = 0;
  // The first handlers wait (bounded) until two run at once, so cross-job parallelism is
  // observed deterministically rather than by luck; a serial engine fails the check below.
  const twoAtOnce = deferred();
  const step = defineStep('order.step', async (args: { index: number }, ctx) => {
    const run: Run = {
      jobId: ctx.jobId,
      stepIndex: ctx.stepIndex,
      argIndex: args.index,
      start: ++clock,
      end: 0,
    };
    runs.push(run);
    running += 1;
    if (running >= 2) twoAtOnce.resolve();
    await withTimeout(twoAtOnce.promise, 3000, 'a second concurrent handler').catch(() => {});
    await jitter(3);
    running -= 1;
    run.end = ++clock;
  });

  const workers = await Promise.all(
    [0, 1, 2, 3].map((i) => h.worker({ steps: [step], concurrency: 8, workerId: `order-${i}` }, t)),
  );
  const startedBy = new Map<string, string[]>();
  workers.forEach((w, i) =>
    w.on('step:started', (e) => {
      const key = `${e.jobId}:${e.stepIndex}`;
      startedBy.set(key, [...(startedBy.get(key) ?? []), `order-${i}`]);
    }),
  );

  const jobs = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: JOBS }, () => ({
      steps: Array.from({ length: STEPS }, (_, index) => step({ index })),
    })),
  );
  const ids = jobs.map((j) => j.jobId);
  const finals = await Promise.all(ids.map((id) => h.stepping.waitForJob(id, { timeoutMs: 30_000 })));
  assert.ok(
    finals.every((f) => f.status === 'succeeded'),
    'every job succeeded',
  );

  for (const id of ids) {
    const mine = runs.filter((r) => r.jobId === id).sort((a, b) => a.start - b.start);
    // Exactly once each, in index order (nothing crashed, so no re-runs).
    assert.deepEqual(
      mine.map((r) => r.stepIndex),
      [0, 1, 2, 3, 4],
      `job ${id}: steps in start order`,
    );
    for (const r of mine)
      assert.equal(r.argIndex, r.stepIndex, `job ${id}: step ${r.stepIndex} got its own args`);
    for (let i = 0; i + 1 < mine.length; i++) {
      const [a, b] = [mine[i]!, mine[i + 1]!];
      assert.ok(a.end > 0, `job ${id}: step ${a.stepIndex} finished`);
      assert.ok(
        b.start > a.end,
        `job ${id}: step ${b.stepIndex} started (t=${b.start}) before step ${a.stepIndex} finished (t=${a.end})`,
      );
    }
    for (let i = 0; i < STEPS; i++) {
      assert.equal(startedBy.get(`${id}:${i}`)?.length, 1, `job ${id} step ${i} started exactly once`);
    }
  }
  assert.equal(runs.length, JOBS * STEPS);

  // Steps of different jobs did overlap in time.
  const overlapping = runs.some((a) =>
    runs.some((b) => a.jobId !== b.jobId && a.start < b.end && b.start < a.end),
  );
  assert.ok(overlapping, 'steps of different jobs ran at the same time');
  // More than one worker took part.
  const participants = new Set([...startedBy.values()].flat());
  assert.ok(participants.size >= 2, `workers that ran steps: ${[...participants].join(', ')}`);

  const { rows } = await h.pool.query<{ n: number; bad: number }>(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE status <> 'succeeded' OR attempts <> 1)::int AS bad
     FROM stepping.step_overview WHERE job_id = ANY($1::bigint[])`,
    [ids],
  );
  assert.deepEqual(rows[0], { n: JOBS * STEPS, bad: 0 });
});
