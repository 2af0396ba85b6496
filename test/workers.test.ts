/**
 * Issue 12, live workers: each worker registers in the workers table, heartbeats, and
 * deregisters on stop; a dead one ages out; unrunnable_steps lists runnable step names (per
 * queue) that no live worker can run.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';

import { OpsCalls } from '../src/db/ops.js';
import { defineStep, EngineInputError } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
const ops = new OpsCalls('stepping');

const ran: string[] = [];
const alpha = defineStep('w.alpha', async (_args: unknown, ctx) => {
  ran.push(ctx.jobId);
});
const beta = defineStep('w.beta', async () => {});

test('a worker registers itself while it runs and deregisters on stop', async (t) => {
  const worker = await h.worker(
    { steps: [alpha, beta], queues: ['wq1', 'wq2'], concurrency: 3, workerId: 'w-reg-1' },
    t,
  );
  const [row] = (await ops.liveWorkers(h.pool)).filter((w) => w.workerId === 'w-reg-1');
  assert.ok(row, 'registered at start');
  assert.equal(row.host, os.hostname());
  assert.equal(row.pid, process.pid);
  assert.deepEqual(row.queues, ['wq1', 'wq2']);
  assert.deepEqual([...row.stepNames].sort(), ['w.alpha', 'w.beta']);
  assert.equal(row.concurrency, 3);
  assert.ok(row.heartbeatAgeMs >= 0);
  await worker.stop();
  const { rows } = await h.pool.query(`SELECT 1 FROM stepping.workers WHERE id = 'w-reg-1'`);
  assert.equal(rows.length, 0, 'deregistered on stop');
});

test('a worker heartbeats, and registers again when its row aged out and was deleted', async (t) => {
  await h.worker(
    { steps: [alpha], workerId: 'w-beat', registryHeartbeatMs: 100, maintenanceIntervalMs: 0 },
    t,
  );
  const first = await h.pool.query<{ at: Date }>(
    `SELECT heartbeat_at AS at FROM stepping.workers WHERE id = 'w-beat'`,
  );
  await eventually(
    async () => {
      const { rows } = await h.pool.query<{ at: Date }>(
        `SELECT heartbeat_at AS at FROM stepping.workers WHERE id = 'w-beat'`,
      );
      return rows[0] && rows[0].at > first.rows[0]!.at;
    },
    5000,
    'a heartbeat',
  );
  await h.pool.query(`DELETE FROM stepping.workers WHERE id = 'w-beat'`);
  await eventually(
    async () => (await ops.liveWorkers(h.pool)).some((w) => w.workerId === 'w-beat'),
    5000,
    'registered again',
  );
});

test('a worker without heartbeats for three periods is not live, and maintenance deletes its row', async () => {
  await ops.register(h.pool, {
    id: 'w-ghost',
    host: 'elsewhere',
    pid: 4242,
    queues: null,
    names: ['w.ghost'],
    concurrency: 1,
    heartbeatMs: 1000,
  });
  await h.shiftClock('2 seconds');
  assert.ok(
    (await ops.liveWorkers(h.pool)).some((w) => w.workerId === 'w-ghost'),
    'live within 3 periods',
  );
  const early = await ops.maintenance(h.pool, null);
  assert.equal(early.leader, true);
  assert.equal(early.workersRemoved, 0);
  await h.shiftClock('4 seconds');
  assert.ok(!(await ops.liveWorkers(h.pool)).some((w) => w.workerId === 'w-ghost'), 'dead after 3 periods');
  const late = await ops.maintenance(h.pool, null);
  assert.equal(late.workersRemoved, 1);
  const { rows } = await h.pool.query(`SELECT 1 FROM stepping.workers WHERE id = 'w-ghost'`);
  assert.equal(rows.length, 0);
  assert.equal(await ops.heartbeat(h.pool, 'w-ghost'), false, 'its heartbeat tells it to register again');
});

test('unrunnable_steps lists runnable step names no live worker can run, matching names and queues', async (t) => {
  await h.worker({ steps: [alpha], queues: ['uq1'], workerId: 'w-unrun', maintenanceIntervalMs: 0 }, t);
  const runnable = await h.stepping.enqueue([{ name: 'w.alpha', args: {} }], { queue: 'uq1' });
  await h.stepping.waitForJob(runnable, { timeoutMs: 10_000 });
  // The right name in a queue the worker does not serve, and a name nobody handles.
  await h.stepping.enqueue([{ name: 'w.alpha', args: {} }], { queue: 'uq2' });
  await h.stepping.enqueue([{ name: 'w.alpha', args: {} }], { queue: 'uq2' });
  await h.stepping.enqueue([{ name: 'w.nobody', args: {} }], { queue: 'uq1' });
  // Scheduled for later: not runnable yet, so not listed.
  await h.stepping.enqueue([{ name: 'w.later', args: {} }], { queue: 'uq1', delayMs: 3_600_000 });
  const rows = (await ops.unrunnableSteps(h.pool)).filter((r) => r.queue.startsWith('uq'));
  assert.deepEqual(rows.map((r) => [r.queue, r.stepName, r.jobs]).sort(), [
    ['uq1', 'w.nobody', 1],
    ['uq2', 'w.alpha', 2],
  ]);
  assert.ok(rows.every((r) => r.oldestWaitMs >= 0));
  // Once a worker serving uq2 registers, w.alpha there is runnable by someone.
  await ops.register(h.pool, {
    id: 'w-uq2',
    host: 'h',
    pid: 1,
    queues: ['uq2'],
    names: ['w.alpha'],
    concurrency: 1,
    heartbeatMs: 60_000,
  });
  const after = (await ops.unrunnableSteps(h.pool)).filter((r) => r.queue.startsWith('uq'));
  assert.deepEqual(
    after.map((r) => [r.queue, r.stepName]),
    [['uq1', 'w.nobody']],
  );
  await ops.deregister(h.pool, 'w-uq2');
});

test('worker_register checks its input in SQL', async () => {
  const good = {
    id: 'w-in',
    host: 'h',
    pid: 1,
    queues: null,
    names: ['a'],
    concurrency: 1,
    heartbeatMs: 1000,
  };
  await assert.rejects(ops.register(h.pool, { ...good, id: '' }), EngineInputError);
  await assert.rejects(ops.register(h.pool, { ...good, id: 'x'.repeat(201) }), EngineInputError);
  await assert.rejects(ops.register(h.pool, { ...good, names: [] }), EngineInputError);
  await assert.rejects(ops.register(h.pool, { ...good, names: ['n'.repeat(201)] }), EngineInputError);
  await assert.rejects(ops.register(h.pool, { ...good, queues: [] }), EngineInputError);
  await assert.rejects(ops.register(h.pool, { ...good, queues: ['q'.repeat(101)] }), EngineInputError);
  await assert.rejects(ops.register(h.pool, { ...good, concurrency: 0 }), EngineInputError);
  await assert.rejects(ops.register(h.pool, { ...good, heartbeatMs: 10 }), EngineInputError);
  await assert.rejects(
    ops.register(h.pool, { ...good, names: Array.from({ length: 10_001 }, (_, i) => `n${i}`) }),
    EngineInputError,
  );
  await ops.register(h.pool, good);
  await ops.deregister(h.pool, 'w-in');
});
