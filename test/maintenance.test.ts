/**
 * Issue 12, maintenance: one leader per database at a time (advisory transaction lock),
 * deadlines of jobs nobody claims expired (with compensation), finished jobs pruned after
 * their retention in bounded batches, failed jobs kept.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { OpsCalls } from '../src/db/ops.js';
import { DEFAULT_MAINTENANCE_BATCH } from '../src/defaults.js';
import { defineStep, PermanentError, type Worker, type WorkerEventMap } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
const ops = new OpsCalls('stepping');

const undone: string[] = [];
const first = defineStep('m.first', async () => ({ charged: true }), { compensate: 'm.first.undo' });
const firstUndo = defineStep('m.first.undo', async (_args: unknown, ctx) => {
  undone.push(ctx.jobId);
});
const ok = defineStep('m.ok', async () => {});
const refuse = defineStep('m.refuse', async () => {
  throw new PermanentError('no');
});

/** A maintenance event, with the time its call was sent (at most). */
type Run = WorkerEventMap['maintenance'] & { worker: string; sentBy: number };
function recordRuns(worker: Worker, into: Run[]): void {
  worker.on('maintenance', (e) =>
    into.push({ ...e, worker: worker.config.workerId, sentBy: Date.now() - e.durationMs }),
  );
}

test('only one session runs maintenance at a time: the others return at once with leader = false', async () => {
  const clients = await Promise.all([h.client(), h.client(), h.client()]);
  for (const c of clients) await c.query('BEGIN');
  const outcomes = [];
  for (const c of clients) outcomes.push(await ops.maintenance(c, null));
  assert.deepEqual(
    outcomes.map((o) => o.leader),
    [true, false, false],
  );
  for (const c of clients) await c.query('COMMIT');
  // The lock is a transaction lock: gone at commit, so the next call leads.
  assert.equal((await ops.maintenance(clients[1]!, null)).leader, true);
});

test('workers run maintenance on a timer and only the lock holder acts; an unclaimed job past its deadline is expired', async (t) => {
  const runs: Run[] = [];
  const workers = await Promise.all(
    [1, 2, 3].map((n) =>
      h.worker(
        {
          steps: [first, firstUndo, ok],
          workerId: `m-lead-${n}`,
          maintenanceIntervalMs: 50,
          registryHeartbeatMs: 100,
        },
        t,
      ),
    ),
  );
  for (const w of workers) recordRuns(w, runs);
  // Hold the maintenance lock: every worker's run must come back without acting.
  // (A worker's own run may hold it for a moment: try again until this session has it.)
  // The lock alone, not a maintenance run: that run, left open, once deleted the row of a
  // worker whose heartbeat was late on a loaded machine, and that worker's next heartbeat
  // waited on it for as long as the test held the lock.
  const holder = await h.client();
  await eventually(
    async () => {
      await holder.query('BEGIN');
      const { rows } = await holder.query<{ ok: boolean }>(
        `SELECT pg_try_advisory_xact_lock(pg_catalog.hashtextextended('stepping.maintenance:stepping', 0)) AS ok`,
      );
      if (rows[0]!.ok) return true;
      await holder.query('ROLLBACK');
      return false;
    },
    10_000,
    'the maintenance lock',
  );
  const lockedAt = Date.now();
  const whileHeld = () => runs.filter((r) => r.sentBy > lockedAt);

  let alone: string;
  let saga: string;
  try {
    // Nobody can run m.nobody: without maintenance these jobs would wait forever.
    alone = await h.stepping.enqueue([{ name: 'm.nobody', args: {} }], {
      deadline: new Date(Date.now() + 60_000),
    });
    saga = await h.stepping.enqueue([first({}), { name: 'm.nobody', args: {} }], {
      deadline: new Date(Date.now() + 60_000),
    });
    await eventually(
      async () => (await h.stepping.getJob(saga))?.currentStep === 1,
      10_000,
      'the saga at its second step',
    );
    await h.shiftClock('2 minutes');
    await eventually(
      () =>
        new Set(
          whileHeld()
            .filter((r) => !r.leader)
            .map((r) => r.worker),
        ).size === 3,
      10_000,
      'a refused run in each worker',
    );
    assert.ok(!whileHeld().some((r) => r.leader), 'no worker acted while the lock was held');
    assert.equal(
      (await h.stepping.getJob(alone))?.status,
      'pending',
      'nothing expired while the lock was held',
    );
  } catch (error) {
    // Not left holding the lock: the workers' stop() in cleanup would wait on it for good.
    await holder.query('ROLLBACK').catch(() => {});
    throw error;
  }
  await holder.query('COMMIT');
  const aloneDone = await h.stepping.waitForJob(alone, { timeoutMs: 10_000 });
  assert.equal(aloneDone.status, 'failed');
  const job = await h.stepping.getJob(alone);
  assert.match(job?.lastError ?? '', /deadline passed/);
  const sagaDone = await h.stepping.waitForJob(saga, { timeoutMs: 10_000 });
  assert.equal(sagaDone.status, 'compensated', 'the succeeded first step was compensated');
  assert.deepEqual(undone, [saga]);
  const led = runs.filter((r) => r.leader);
  assert.ok(led.length > 0);
  assert.equal(
    led.reduce((n, r) => n + r.expired, 0),
    2,
    'each job expired exactly once',
  );
});

test('a job whose worker died past its deadline is expired, and the dead worker’s late report is refused', async () => {
  const id = await h.stepping.enqueue([{ name: 'm.ghost', args: {} }], {
    deadline: new Date(Date.now() + 60_000),
  });
  const { rows } = await h.pool.query<{ token: string }>(
    `SELECT lease_token::text AS token FROM stepping.step_claim('ghost', ARRAY['m.ghost'], NULL, 1, 1000)`,
  );
  assert.equal(rows.length, 1);
  await h.shiftClock('2 minutes');
  const outcome = await ops.maintenance(h.pool, null);
  assert.equal(outcome.expired, 1);
  assert.equal((await h.stepping.getJob(id))?.status, 'failed');
  const late = await h.pool.query<{ accepted: boolean }>(
    `SELECT accepted FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid])`,
    [id, rows[0]!.token],
  );
  assert.equal(late.rows[0]?.accepted, false);
  // A job still leased (its worker alive) is left to its worker.
  const held = await h.stepping.enqueue([{ name: 'm.ghost', args: {} }], {
    deadline: new Date(Date.now() + 3 * 60_000),
  });
  await h.pool.query(`SELECT 1 FROM stepping.step_claim('alive', ARRAY['m.ghost'], NULL, 1, 600000)`);
  await h.shiftClock('4 minutes');
  assert.equal((await ops.maintenance(h.pool, null)).expired, 0);
  assert.equal((await h.stepping.getJob(held))?.status, 'running');
});

test('a job past its deadline whose step ran without a report is left to a live worker of that step, which knows its compensation', async () => {
  const orphan = await h.stepping.enqueue([{ name: 'm.orphan', args: {} }], { timeoutMs: 60_000 });
  // Its compensation was given at enqueue: the engine knows it, nothing is left to a worker.
  const known = await h.stepping.enqueue(
    [{ name: 'm.orphan', args: {}, options: { compensate: { name: 'm.orphan-undo' } } }],
    { timeoutMs: 60_000 },
  );
  const claimed = await h.pool.query(
    `SELECT job_id FROM stepping.step_claim('orphan-dead', ARRAY['m.orphan'], NULL, 2, 1000)`,
  );
  assert.equal(claimed.rowCount, 2);
  await h.shiftClock('2 minutes');
  await h.pool.query(
    `SELECT stepping.worker_register('orphan-alive', 'host', 1, NULL, ARRAY['m.orphan'], 1, 600000)`,
  );
  // A live worker runs m.orphan: its claim (not maintenance) ends the job, and its failure
  // report names the compensation of its definition.
  assert.equal((await ops.maintenance(h.pool, null)).expired, 1);
  assert.equal((await h.stepping.getJob(orphan))?.status, 'running');
  assert.equal((await h.stepping.getJob(known))?.status, 'compensating', 'm.orphan-undo is due');
  // Without such a worker, maintenance expires it.
  await h.pool.query(`SELECT stepping.worker_deregister('orphan-alive')`);
  assert.equal((await ops.maintenance(h.pool, null)).expired, 1);
  const ended = await h.stepping.getJob(orphan);
  assert.equal(ended?.status, 'failed');
  assert.match(ended?.lastError ?? '', /deadline passed/);
});

test('finished jobs are pruned after the retention in bounded batches; failed jobs stay', async (t) => {
  const total = 2 * DEFAULT_MAINTENANCE_BATCH + 500;
  const runner = await h.worker({ steps: [ok, refuse], concurrency: 20, maintenanceIntervalMs: 0 }, t);
  const jobs = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: total }, () => ({ steps: [ok({})], options: { queue: 'prune' } })),
  );
  const failed = await h.stepping.enqueue([refuse({})], { queue: 'prune' });
  await h.stepping.waitForJob(failed, { timeoutMs: 30_000 });
  await h.stepping.waitForJob(jobs.at(-1)!.jobId, { timeoutMs: 60_000 });
  await eventually(
    async () => {
      const { rows } = await h.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = 'prune' AND status = 'succeeded'`,
      );
      return rows[0]!.n === total;
    },
    60_000,
    'every job succeeded',
  );
  await runner.stop();

  const runs: Run[] = [];
  // retention false: a leader that prunes nothing.
  const keeper = await h.worker({ steps: [ok], retention: false, maintenanceIntervalMs: 50 }, t);
  recordRuns(keeper, runs);
  await h.shiftClock('2 hours');
  await eventually(() => runs.some((r) => r.leader), 10_000, 'a leader run');
  assert.equal(
    runs.reduce((n, r) => n + r.pruned, 0),
    0,
    'retention: false prunes nothing',
  );
  await keeper.stop();

  runs.length = 0;
  // Earlier tests of this file left finished jobs too (the compensated saga).
  const finished = await h.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM stepping.jobs WHERE status IN ('succeeded', 'compensated', 'cancelled')`,
  );
  const expected = finished.rows[0]!.n;
  assert.ok(expected >= total);
  const pruner = await h.worker({ steps: [ok], retention: 3_600_000, maintenanceIntervalMs: 50 }, t);
  recordRuns(pruner, runs);
  await eventually(() => runs.reduce((n, r) => n + r.pruned, 0) >= expected, 30_000, 'all pruned');
  assert.equal(
    runs.reduce((n, r) => n + r.pruned, 0),
    expected,
  );
  assert.ok(
    runs.every((r) => r.pruned <= DEFAULT_MAINTENANCE_BATCH),
    'no call prunes more than a batch',
  );
  assert.ok(runs.filter((r) => r.pruned > 0).length >= 3, 'pruned in several batches');
  const { rows } = await h.pool.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM stepping.jobs WHERE queue = 'prune' GROUP BY 1`,
  );
  assert.deepEqual(rows, [{ status: 'failed', n: 1 }], 'the failed job stays');
  const steps = await h.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM stepping.steps s WHERE NOT EXISTS (SELECT 1 FROM stepping.jobs j WHERE j.id = s.job_id)`,
  );
  assert.equal(steps.rows[0]!.n, 0, 'their steps went with them');
});

test('maintenance_run checks its input in SQL', async () => {
  await assert.rejects(
    h.pool.query(`SELECT * FROM stepping.maintenance_run(p_batch => 0)`),
    /p_batch must be from 1 to/,
  );
  await assert.rejects(
    h.pool.query(`SELECT * FROM stepping.maintenance_run(p_retention => interval '-1 second')`),
    /must not be negative/,
  );
});
