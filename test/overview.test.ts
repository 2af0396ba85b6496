import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep } from '../src/index.js';
import { nextEvent, withTimeout } from './fixtures/core-util.js';
import { deferred, setup } from './support/harness.js';

const h = await setup(import.meta.url);

interface StatRow {
  queue: string;
  status: string;
  jobs: number;
  runnable: number;
  scheduled: number;
  age_s: number | null;
}

async function queueStats(db: { query: typeof h.pool.query } = h.pool): Promise<StatRow[]> {
  const { rows } = await db.query(
    `SELECT queue, status, jobs::int, runnable::int, scheduled::int,
            extract(epoch FROM oldest_runnable_age)::float8 AS age_s
     FROM stepping.queue_stats WHERE queue LIKE 'ov-%' ORDER BY queue, status`,
  );
  return rows as StatRow[];
}

test('queue_stats counts jobs per queue and status, runnable and scheduled, and the oldest wait', async () => {
  const ago = (ms: number) => new Date(Date.now() - ms);
  const step = (name: string) => ({ name, args: {} });
  // ov-a: three due (the oldest waiting ~20 s), one scheduled for later.
  await h.stepping.enqueue([step('ov.a')], { queue: 'ov-a', runAt: ago(20_000) });
  await h.stepping.enqueue([step('ov.a')], { queue: 'ov-a', runAt: ago(5_000) });
  await h.stepping.enqueue([step('ov.a')], { queue: 'ov-a' });
  await h.stepping.enqueue([step('ov.a')], { queue: 'ov-a', runAt: new Date(Date.now() + 3_600_000) });
  // ov-b: one running (claimed below), one pending, one succeeded.
  await h.stepping.enqueue([step('ov.b.run')], { queue: 'ov-b', runAt: ago(1000) });
  await h.stepping.enqueue([step('ov.b.wait')], { queue: 'ov-b', runAt: ago(10_000) });
  const doneId = await h.stepping.enqueue([step('ov.b.done')], { queue: 'ov-b' });
  const claimed = await h.pool.query<{ job_id: string; token: string }>(
    `SELECT job_id::text, lease_token::text AS token
     FROM stepping.step_claim('w', ARRAY['ov.b.run', 'ov.b.done'], NULL, 2, 60000)`,
  );
  assert.equal(claimed.rowCount, 2);
  const doneToken = claimed.rows.find((r) => r.job_id === doneId)!.token;
  const completed = await h.pool.query(
    'SELECT accepted, job_status FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid])',
    [doneId, doneToken],
  );
  assert.deepEqual(completed.rows[0], { accepted: true, job_status: 'succeeded' });

  const stats = await queueStats();
  const { age_s: ageA, ...a } = stats.find((s) => s.queue === 'ov-a' && s.status === 'pending')!;
  assert.deepEqual(a, { queue: 'ov-a', status: 'pending', jobs: 4, runnable: 3, scheduled: 1 });
  assert.ok(ageA !== null && ageA >= 20 && ageA < 80, `ov-a oldest runnable age ${ageA} s`);
  assert.deepEqual(
    stats
      .filter((s) => s.queue === 'ov-b')
      .map(({ age_s, ...rest }) => ({ ...rest, hasAge: age_s !== null })),
    [
      { queue: 'ov-b', status: 'pending', jobs: 1, runnable: 1, scheduled: 0, hasAge: true },
      // A live lease is neither runnable nor waiting.
      { queue: 'ov-b', status: 'running', jobs: 1, runnable: 0, scheduled: 0, hasAge: false },
      { queue: 'ov-b', status: 'succeeded', jobs: 1, runnable: 0, scheduled: 0, hasAge: false },
    ],
  );
  const ageB = stats.find((s) => s.queue === 'ov-b' && s.status === 'pending')!.age_s!;
  assert.ok(ageB >= 10 && ageB < 70, `ov-b oldest runnable age ${ageB} s`);

  // Two hours later (engine clock) the running job's lease has expired: it counts as runnable,
  // and the scheduled ov-a job is due.
  const later = await h.client();
  await h.shiftClock('2 hours');
  const shifted = await queueStats(later);
  const running = shifted.find((s) => s.queue === 'ov-b' && s.status === 'running')!;
  assert.equal(running.runnable, 1);
  assert.ok(running.age_s !== null && running.age_s > 3600);
  const pendingA = shifted.find((s) => s.queue === 'ov-a' && s.status === 'pending')!;
  assert.deepEqual([pendingA.runnable, pendingA.scheduled], [4, 0]);
});

test('job_overview and step_overview show a job at each stage: pending, running, retrying, succeeded', async (t) => {
  const started = deferred();
  const gate = deferred();
  const flaky = defineStep(
    'ov.flaky',
    async (_args: unknown, ctx) => {
      if (ctx.attempt === 1) {
        started.resolve();
        await gate.promise;
        throw new Error('flaky failure 1');
      }
    },
    // A retry an hour away: the job sits visibly in "retrying" until the test makes it due.
    { backoff: { baseMs: 3_600_000, maxMs: 3_600_000 } },
  );
  const finish = defineStep('ov.finish', async () => {});
  const job = async (id: string) =>
    (
      await h.pool.query(
        `SELECT status, phase, current_step, current_step_name, current_attempt, last_error,
                run_at, lease_expires_at, lease_expired, locked_by, finished_at, now() AS db_now
         FROM stepping.job_overview WHERE job_id = $1`,
        [id],
      )
    ).rows[0] as {
      status: string;
      phase: string;
      current_step: number;
      current_step_name: string;
      current_attempt: number;
      last_error: string | null;
      run_at: Date | null;
      lease_expires_at: Date | null;
      lease_expired: boolean | null;
      locked_by: string | null;
      finished_at: Date | null;
      db_now: Date;
    };
  const steps = async (id: string) =>
    (
      await h.pool.query(
        `SELECT step_index, name, status, attempts, last_error FROM stepping.step_overview
         WHERE job_id = $1 ORDER BY step_index`,
        [id],
      )
    ).rows;

  // Pending: enqueued, no worker yet.
  const id = await h.stepping.enqueue([flaky({}), finish({})], { queue: 'ov-stages' });
  let j = await job(id);
  assert.equal(j.status, 'pending');
  assert.equal(j.phase, 'forward');
  assert.equal(j.current_step, 0);
  assert.equal(j.current_step_name, 'ov.flaky');
  assert.equal(j.current_attempt, 0);
  assert.equal(j.last_error, null);
  assert.ok(j.run_at instanceof Date && j.run_at.getTime() <= j.db_now.getTime());
  assert.equal(j.lease_expires_at, null);
  assert.equal(j.locked_by, null);
  assert.deepEqual(await steps(id), [
    { step_index: 0, name: 'ov.flaky', status: 'pending', attempts: 0, last_error: null },
    { step_index: 1, name: 'ov.finish', status: 'pending', attempts: 0, last_error: null },
  ]);
  const getJob = await h.stepping.getJob(id);
  assert.equal(getJob?.status, 'pending');
  assert.equal(getJob?.currentStepName, 'ov.flaky');

  // Running: the handler is held open.
  const worker = await h.worker(
    {
      steps: [flaky, finish],
      workerId: 'ov-worker',
      leaseMs: 60_000,
      pollIntervalMs: 100,
    },
    t,
  );
  await withTimeout(started.promise, 10_000, 'attempt 1 to start');
  j = await job(id);
  assert.equal(j.status, 'running');
  assert.equal(j.current_attempt, 1);
  assert.equal(j.last_error, null);
  assert.equal(j.run_at, null);
  assert.equal(j.locked_by, 'ov-worker');
  assert.equal(j.lease_expired, false);
  const leaseLeft = j.lease_expires_at!.getTime() - j.db_now.getTime();
  assert.ok(leaseLeft > 50_000 && leaseLeft <= 60_000, `lease expires in ${leaseLeft} ms`);
  assert.deepEqual(
    (await steps(id)).map((s) => [s.status, s.attempts]),
    [
      ['running', 1],
      ['pending', 0],
    ],
  );

  // Retrying: the attempt failed and waits for its backoff.
  const retry = nextEvent(worker, 'step:retry-scheduled', (e) => e.jobId === id);
  gate.resolve();
  await withTimeout(retry, 10_000, 'the retry to be scheduled');
  j = await job(id);
  assert.equal(j.status, 'pending');
  assert.equal(j.current_step, 0);
  assert.equal(j.current_attempt, 1);
  assert.equal(j.last_error, 'flaky failure 1');
  assert.equal(j.lease_expires_at, null);
  assert.equal(j.locked_by, null);
  const wait = j.run_at!.getTime() - j.db_now.getTime();
  assert.ok(wait >= 1_700_000 && wait <= 3_600_000, `retry in ${wait} ms`);
  assert.deepEqual(
    (await steps(id)).map((s) => [s.status, s.attempts, s.last_error]),
    [
      ['retrying', 1, 'flaky failure 1'],
      ['pending', 0, null],
    ],
  );
  assert.equal((await h.stepping.getJob(id))?.lastError, 'flaky failure 1');

  // Make the retry due now (a test shortcut); the worker's poll picks it up.
  await h.pool.query('UPDATE stepping.jobs SET available_at = now() WHERE id = $1', [id]);
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
  j = await job(id);
  assert.equal(j.status, 'succeeded');
  assert.equal(j.current_step, 1);
  assert.equal(j.current_step_name, 'ov.finish');
  assert.equal(j.run_at, null);
  assert.equal(j.lease_expires_at, null);
  assert.equal(j.locked_by, null);
  assert.ok(j.finished_at instanceof Date);
  assert.deepEqual(
    (await steps(id)).map((s) => [s.status, s.attempts]),
    [
      ['succeeded', 2],
      ['succeeded', 1],
    ],
  );
});

test('the newest jobs of job_overview (and `stepping jobs`, the dashboard) come from an index walk, not a sort of every job', async () => {
  const c = await h.client();
  await c.query(
    `SELECT count(*) FROM stepping.job_enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
       'steps', jsonb_build_array(jsonb_build_object('name', 'ov.many', 'args', jsonb_build_object('i', g))),
       'queue', 'ov-many')) FROM generate_series(1, 20000) g))`,
  );
  await c.query('ANALYZE stepping.jobs, stepping.steps');
  const plan = async (sql: string): Promise<string> => {
    const { rows } = await c.query(`EXPLAIN (FORMAT JSON) ${sql}`);
    return JSON.stringify(rows[0]['QUERY PLAN']);
  };
  for (const sql of [
    'SELECT * FROM stepping.job_overview ORDER BY job_id DESC LIMIT 50',
    "SELECT * FROM stepping.job_overview WHERE queue = 'ov-many' AND job_id < 15000 ORDER BY job_id DESC LIMIT 50",
  ]) {
    const p = await plan(sql);
    // A volatile clock among the view's columns made PostgreSQL compute them for every row,
    // then sort: a Sort node over a scan of every job.
    assert.doesNotMatch(p, /"Node Type":"Sort"/, sql);
    assert.match(p, /"Index Scan Backward"|"Scan Direction":"Backward"/, sql);
  }
  await c.query(`DELETE FROM stepping.jobs WHERE queue = 'ov-many'`);
});
