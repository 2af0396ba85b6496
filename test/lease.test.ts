import assert from 'node:assert/strict';
import { test } from 'node:test';

import type pg from 'pg';

import { defineStep } from '../src/index.js';
import { nextEvent, withTimeout } from './fixtures/core-util.js';
import { deferred, eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

interface Claimed {
  job_id: string;
  token: string;
  attempt: number;
  step_index: number;
}

async function claim(
  db: pg.ClientBase | pg.Pool,
  worker: string,
  names: string[],
  leaseMs: number,
  limit = 1,
): Promise<Claimed[]> {
  const { rows } = await db.query<Claimed>(
    `SELECT job_id::text, lease_token::text AS token, attempt, step_index
     FROM stepping.step_claim($1, $2::text[], NULL, $3, $4)`,
    [worker, names, limit, leaseMs],
  );
  return rows;
}

async function complete(db: pg.ClientBase | pg.Pool, jobId: string, token: string) {
  const { rows } = await db.query(
    'SELECT accepted, job_status FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid])',
    [jobId, token],
  );
  return rows[0] as { accepted: boolean; job_status: string | null };
}

async function fail(db: pg.ClientBase | pg.Pool, jobId: string, token: string, message: string) {
  const { rows } = await db.query(
    `SELECT accepted, job_status, outcome
     FROM stepping.step_fail(ARRAY[$1::bigint], ARRAY[$2::uuid],
                             ARRAY[jsonb_build_object('error', jsonb_build_object('message', $3::text))])`,
    [jobId, token, message],
  );
  return rows[0] as { accepted: boolean; job_status: string | null; outcome: string | null };
}

/** Everything about a job that a stale report could change. */
async function snapshot(jobId: string) {
  const job = await h.pool.query(
    `SELECT status, phase, current_step, step_name, attempt, lease_token::text, locked_by, available_at,
            last_error, failed_step, updated_at, finished_at
     FROM stepping.jobs WHERE id = $1`,
    [jobId],
  );
  const steps = await h.pool.query(
    `SELECT idx, status, attempts, last_error, finished_at, comp_status
     FROM stepping.steps WHERE job_id = $1 ORDER BY idx`,
    [jobId],
  );
  return { job: job.rows[0] as Record<string, unknown>, steps: steps.rows };
}

test('an expired lease is claimed again with a new token; the old token can no longer complete, fail or extend', async () => {
  const id = await h.stepping.enqueue([
    { name: 'a', args: {} },
    { name: 'b', args: {} },
  ]);
  const c1 = await h.client();
  const [first, ...more] = await claim(c1, 'w1', ['a'], 60_000);
  assert.ok(first && more.length === 0);
  assert.equal(first.job_id, id);
  assert.equal(first.attempt, 1);

  // Not claimable while the lease runs: neither now nor half-way through it.
  assert.deepEqual(await claim(c1, 'w1-again', ['a'], 1000), []);
  const c2 = await h.client();
  await h.shiftClock('30 seconds');
  assert.deepEqual(await claim(c2, 'w2', ['a'], 1000), []);

  // An hour later (on the engine's clock) the lease has expired: claimable again.
  await h.shiftClock('1 hour');
  const [second] = await claim(c2, 'w2', ['a'], 1000);
  assert.ok(second);
  assert.equal(second.job_id, id);
  assert.equal(second.attempt, 2);
  assert.notEqual(second.token, first.token);

  const before = await snapshot(id);
  assert.equal(before.job.lease_token, second.token);
  assert.equal(before.job.locked_by, 'w2');

  assert.deepEqual(await complete(c1, id, first.token), { accepted: false, job_status: null });
  assert.deepEqual(await fail(c1, id, first.token, 'stale failure'), {
    accepted: false,
    job_status: null,
    outcome: null,
  });
  const extended = await c1.query(
    'SELECT * FROM stepping.lease_extend(ARRAY[$1::bigint], ARRAY[$2::uuid], 60000)',
    [id, first.token],
  );
  assert.equal(extended.rowCount, 0, 'lease_extend with the old token returns no row');
  const released = await c1.query(
    'SELECT * FROM stepping.lease_release(ARRAY[$1::bigint], ARRAY[$2::uuid])',
    [id, first.token],
  );
  assert.equal(released.rowCount, 0, 'lease_release with the old token returns no row');
  assert.deepEqual(await snapshot(id), before, 'stale calls changed nothing');

  // The current token works.
  const kept = await c2.query(
    'SELECT job_id::text FROM stepping.lease_extend(ARRAY[$1::bigint], ARRAY[$2::uuid], 1000)',
    [id, second.token],
  );
  assert.deepEqual(kept.rows, [{ job_id: id }]);
  assert.deepEqual(await complete(c2, id, second.token), { accepted: true, job_status: 'pending' });
  const after = await snapshot(id);
  assert.equal(after.job.current_step, 1);
  assert.equal(after.job.step_name, 'b');
  assert.equal(after.job.attempt, 0);
  // The spent token is marked as used by a success: no report under it applies again.
  assert.notEqual(after.job.lease_token, second.token);
  assert.deepEqual(
    after.steps.map((s) => [s.idx, s.status, s.attempts]),
    [
      [0, 'succeeded', 2],
      [1, 'pending', 0],
    ],
  );
  // And the old token still cannot touch the job at its next step.
  assert.equal((await complete(c1, id, first.token)).accepted, false);
  assert.deepEqual(await snapshot(id), after);
});

test('after the current holder recorded a failure, the previous holder still cannot complete', async () => {
  const id = await h.stepping.enqueue([{ name: 'lease.fail', args: {} }]);
  const c1 = await h.client();
  const [first] = await claim(c1, 'w1', ['lease.fail'], 1000);
  assert.ok(first);
  const c2 = await h.client();
  await h.shiftClock('1 hour');
  const [second] = await claim(c2, 'w2', ['lease.fail'], 1000);
  assert.ok(second);

  const failed = await fail(c2, id, second.token, 'current failure');
  assert.deepEqual(failed, { accepted: true, job_status: 'pending', outcome: 'retry' });
  const before = await snapshot(id);
  assert.equal(before.job.attempt, 2);
  assert.equal(before.steps[0].attempts, 2);
  assert.equal(before.steps[0].last_error.message, 'current failure');

  assert.equal((await complete(c1, id, first.token)).accepted, false);
  assert.equal((await fail(c1, id, first.token, 'stale failure')).accepted, false);
  assert.equal((await complete(c2, id, second.token)).accepted, false, 'a used token is spent');
  assert.deepEqual(await snapshot(id), before);
});

test('a worker whose lease was taken over has its success and its failure rejected; the job does not move', async (t) => {
  const gate = deferred();
  const started = new Map([
    ['ok', deferred()],
    ['fail', deferred()],
  ]);
  const held = defineStep('lease.held', async (args: { tag: string }) => {
    started.get(args.tag)!.resolve();
    await gate.promise;
    if (args.tag === 'fail') throw new Error('late failure');
  });
  const next = defineStep('lease.held-next', async () => {});
  // No heartbeat during the test: the worker learns of the takeover only when it reports.
  const worker = await h.worker(
    {
      steps: [held, next],
      leaseMs: 60_000,
      heartbeatMs: 60_000,
      workerId: 'lease-worker',
    },
    t,
  );
  const reported: string[] = [];
  worker.on('step:succeeded', (e) => reported.push(`succeeded ${e.jobId}`));
  worker.on('step:failed', (e) => reported.push(`failed ${e.jobId}`));

  const okId = await h.stepping.enqueue([held({ tag: 'ok' }), next({})]);
  const failId = await h.stepping.enqueue([held({ tag: 'fail' })]);
  await withTimeout(
    Promise.all([started.get('ok')!.promise, started.get('fail')!.promise]),
    10_000,
    'both handlers to start',
  );

  // Another "worker" takes both jobs over, as if their leases had expired.
  const intruder = await h.client();
  const taken = await h.takeOver(['lease.held']);
  assert.deepEqual(taken.map((t) => t.job_id).sort(), [okId, failId].sort());
  assert.ok(taken.every((t) => t.attempt === 2));
  const before = new Map(
    await Promise.all(taken.map(async (t) => [t.job_id, await snapshot(t.job_id)] as const)),
  );

  const lost = Promise.all(
    [okId, failId].map((id) => nextEvent(worker, 'step:lease-lost', (e) => e.jobId === id)),
  );
  gate.resolve();
  await withTimeout(lost, 10_000, 'step:lease-lost for both jobs');
  assert.deepEqual(reported, []);

  for (const t of taken) {
    const now = await snapshot(t.job_id);
    assert.deepEqual(now, before.get(t.job_id), `job ${t.job_id} unchanged by the stale report`);
    assert.equal(now.job.current_step, 0);
    assert.equal(now.job.status, 'running');
    assert.equal(now.job.locked_by, 'intruder');
    assert.equal(now.job.lease_token, t.token);
    assert.equal(now.job.last_error, null);
    assert.equal(now.steps[0].status, 'pending');
  }
  // The new owner's token is still valid.
  assert.deepEqual(await complete(intruder, okId, taken.find((t) => t.job_id === okId)!.token), {
    accepted: true,
    job_status: 'pending',
  });
  assert.equal(
    (await fail(intruder, failId, taken.find((t) => t.job_id === failId)!.token, 'x')).accepted,
    true,
  );
});

test('a heartbeat that finds its lease taken over aborts the handler, and nothing is reported', async (t) => {
  const started = deferred();
  const aborted = deferred<unknown>();
  const beat = defineStep('lease.beat', async (_args: unknown, ctx) => {
    started.resolve();
    await new Promise<void>((resolve) =>
      ctx.signal.addEventListener('abort', () => {
        aborted.resolve(ctx.signal.reason);
        resolve();
      }),
    );
  });
  const worker = await h.worker({ steps: [beat], heartbeatMs: 100 }, t);
  const id = await h.stepping.enqueue([beat({})]);
  await withTimeout(started.promise, 10_000, 'handler start');

  const [taken] = await h.takeOver(['lease.beat']);
  assert.equal(taken?.job_id, id);
  const before = await snapshot(id);

  const reason = await withTimeout(aborted.promise, 10_000, 'the handler signal to abort');
  assert.match(String((reason as Error).message), /lease .* lost/);
  await eventually(() => worker.running === 0, 10_000, 'the worker to drop the unit');
  assert.deepEqual(await snapshot(id), before);
  assert.equal(before.job.locked_by, 'intruder');
});

test('heartbeats keep a long step leased beyond leaseMs; nobody else can claim it meanwhile', async (t) => {
  const started = deferred();
  const gate = deferred();
  const long = defineStep('lease.long', async () => {
    started.resolve();
    await gate.promise;
  });
  // A normal lease; time is moved on the engine's clock instead of waiting it out.
  // No polls, so the only claims are the ones wake-ups cause.
  await h.worker({ steps: [long], leaseMs: 30_000, heartbeatMs: 200, pollIntervalMs: 600_000 }, t);
  const id = await h.stepping.enqueue([long({})]);
  await withTimeout(started.promise, 10_000, 'handler start');
  const { rows } = await h.pool.query<{ claimed_at: Date }>(
    'SELECT claimed_at FROM stepping.jobs WHERE id = $1',
    [id],
  );
  const claimedAt = rows[0]!.claimed_at;
  // Time moves on in two 20 s steps, each shorter than the lease, with a heartbeat after
  // each: the lease never looks expired, so not even this worker's own fetcher (which may
  // be claiming at the very moment of a jump) can take the unit again. After the second
  // step the original lease (claimed + 30 s) lies in the past.
  for (const [shift, beyond] of [
    ['20 seconds', 45],
    ['40 seconds', 65],
  ] as const) {
    await h.shiftClock(shift);
    await eventually(
      async () =>
        (
          await h.pool.query(
            `SELECT available_at > $2::timestamptz + make_interval(secs => $3) AS ok FROM stepping.jobs WHERE id = $1`,
            [id, claimedAt, beyond],
          )
        ).rows[0]?.ok === true,
      10_000,
      `a heartbeat to extend the lease after the clock moved ${shift}`,
    );
  }
  assert.deepEqual(await claim(h.pool, 'other', ['lease.long'], 1000), [], 'not claimable while held');
  gate.resolve();
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
  const step = await h.pool.query('SELECT attempts FROM stepping.step_overview WHERE job_id = $1', [id]);
  assert.equal(step.rows[0].attempts, 1);
});

test('a unit claimed after the worker sat idle is heart-beaten: the beat timer, stopped while nothing was held, starts again', async (t) => {
  // The beat timer runs only while units are held. Before that, an idle worker on 1,000
  // databases woke 100 times a second for beats with nothing to extend.
  const gate = deferred();
  const started = deferred();
  const quick = defineStep('lease.idle.quick', async () => {});
  const long = defineStep('lease.idle.long', async () => {
    started.resolve();
    await gate.promise;
  });
  await h.worker({ steps: [quick, long], leaseMs: 30_000, heartbeatMs: 100 }, t);
  const first = await h.stepping.enqueue([quick({})]);
  assert.equal((await h.stepping.waitForJob(first, { timeoutMs: 10_000 })).status, 'succeeded');
  // Several beat periods with nothing held: the timer has stopped by now.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const id = await h.stepping.enqueue([long({})]);
  await withTimeout(started.promise, 10_000, 'handler start');
  const { rows } = await h.pool.query<{ claimed_at: Date }>(
    'SELECT claimed_at FROM stepping.jobs WHERE id = $1',
    [id],
  );
  await h.shiftClock('20 seconds');
  await eventually(
    async () =>
      (
        await h.pool.query(
          // Extended, not claimed again after its lease ran out (attempt 2 would also have
          // a later available_at).
          `SELECT attempt = 1 AND available_at > $2::timestamptz + interval '45 seconds' AS ok
             FROM stepping.jobs WHERE id = $1`,
          [id, rows[0]!.claimed_at],
        )
      ).rows[0]?.ok === true,
    10_000,
    'a heartbeat to extend the lease of the unit claimed after the idle spell',
  );
  gate.resolve();
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
});
