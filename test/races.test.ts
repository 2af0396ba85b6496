/**
 * Issue 18: exactly-once, one step at a time, and the state machine's corners. Each test
 * reproduces a defect seen on the old engine with real connections and workers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AttemptEndedError, defineStep, PermanentError, type StepCall } from '../src/index.js';
import { nextEvent, withTimeout } from './fixtures/core-util.js';
import { deferred, eventually, setup } from './support/harness.js';
import { loginRole } from './support/login-role.js';

const h = await setup(import.meta.url);
await h.pool.query('CREATE TABLE ledger (job_id bigint, attempt int, note text)');

async function ledger(jobId: string): Promise<number> {
  const { rows } = await h.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM ledger WHERE job_id = $1',
    [jobId],
  );
  return rows[0]!.n;
}

test('a transactional step past its timeoutMs commits nothing, whatever its handler writes afterwards', async (t) => {
  const refused: unknown[] = [];
  // The reproduction: the handler ignores its aborted signal, sleeps past its
  // timeout and then writes through ctx.tx (the old runner had returned that connection to
  // the pool, so the write autocommitted: 3 ledger rows for a failed job).
  const late = defineStep(
    'race.late-tx',
    async (_args: unknown, ctx) => {
      await new Promise((r) => setTimeout(r, 800));
      try {
        await ctx.tx!.query('INSERT INTO ledger VALUES ($1, $2, $3)', [ctx.jobId, ctx.attempt, 'late']);
      } catch (error) {
        refused.push(error);
        throw error;
      }
    },
    { transactional: true, timeoutMs: 300, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 1 } },
  );
  const worker = await h.worker({ steps: [late] }, t);
  t.after(() => worker.stop());
  const id = await h.stepping.enqueue([{ name: 'race.late-tx', args: {} }]);
  const final = await h.stepping.waitForJob(id, { timeoutMs: 60_000 });
  assert.equal(final.status, 'failed');
  assert.equal(await ledger(id), 0, 'no write of a timed-out attempt may commit');
  assert.equal(refused.length, 3, 'each late write was refused');
  assert.ok(refused.every((e) => e instanceof AttemptEndedError));
});

test('a slow transactional step leases its next step from the clock at commit, so nobody else runs it', async (t) => {
  // The old engine took the continuation's lease from the transaction's start: a step
  // slower than the lease handed out a next step that was already expired at commit.
  // Here the step's transaction lasts an hour on the engine's clock.
  const ranNext: string[] = [];
  const slow = defineStep(
    'race.slow-tx',
    async (_args: unknown, ctx) => {
      await h.shiftClock('1 hour');
      await ctx.tx!.query('INSERT INTO ledger VALUES ($1, $2, $3)', [ctx.jobId, ctx.attempt, 'slow']);
    },
    { transactional: true },
  );
  const checked = deferred();
  const next = defineStep('race.slow-next', async (_args: unknown, ctx) => {
    ranNext.push(ctx.database);
    // Held until the lease was looked at, so the job is still running then.
    await checked.promise;
  });
  // No polls: w1 must not reclaim its own step while the clock jumps.
  const w1 = await h.worker({ steps: [slow, next], workerId: 'w1', pollIntervalMs: 600_000 }, t);
  t.after(() => w1.stop());
  const id = await h.stepping.enqueue([slow({}), next({})]);
  const startedNext = nextEvent(w1, 'step:started', (e) => e.jobId === id && e.stepIndex === 1);
  // A second worker polls often: it would take an expired continuation.
  const w2 = await h.worker({ steps: [next], pollIntervalMs: 20, workerId: 'w2' }, t);
  t.after(() => w2.stop());
  await withTimeout(startedNext, 20_000, 'the next step to start on w1');
  const { rows } = await h.pool.query(
    'SELECT lease_expired, locked_by FROM stepping.job_overview WHERE job_id = $1',
    [id],
  );
  assert.deepEqual(rows[0], { lease_expired: false, locked_by: 'w1' });
  checked.resolve();
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 20_000 })).status, 'succeeded');
  assert.equal(ranNext.length, 1, 'the next step ran exactly once');
});

test('a report half the engine refuses leaves the other half alone: no lost lease, no idle continuation', async (t) => {
  // The worker logs in as a role that may not call step_fail: every failure report is
  // refused, while successes go through. The old completer sent both halves in one
  // Promise.all and retried them together.
  const url = await loginRole(h.url, ['stepping_worker'], 'half');
  await h.pool.query(
    'REVOKE EXECUTE ON FUNCTION stepping.step_fail(bigint[], uuid[], jsonb[]) FROM stepping_worker',
  );
  t.after(async () => {
    await h.pool.query(
      'GRANT EXECUTE ON FUNCTION stepping.step_fail(bigint[], uuid[], jsonb[]) TO stepping_worker',
    );
  });
  const gate = deferred();
  const first = defineStep('race.half-ok', async () => {
    await gate.promise;
    return { ok: true };
  });
  const second = defineStep('race.half-next', async () => {});
  const failing = defineStep('race.half-fail', async () => {
    await gate.promise;
    throw new Error('refused report');
  });
  const { createWorker } = await import('../src/index.js');
  const worker = createWorker({ connectionString: url, steps: [first, second, failing], concurrency: 4 });
  worker.on('error', () => {});
  const lost: string[] = [];
  worker.on('step:lease-lost', (e) => lost.push(`${e.jobId}:${e.stepIndex}`));
  await worker.start();
  t.after(() => worker.stop());
  const okJob = await h.stepping.enqueue([first({}), second({})]);
  const failJob = await h.stepping.enqueue([failing({})]);
  const nextStarted = nextEvent(worker, 'step:started', (e) => e.jobId === okJob && e.stepIndex === 1);
  await eventually(() => worker.running === 2, 10_000, 'both handlers to run');
  gate.resolve();
  const started = await withTimeout(nextStarted, 10_000, 'the continuation to start');
  assert.equal(started.attempt, 1, 'the continuation ran at once, as attempt 1');
  assert.equal((await h.stepping.waitForJob(okJob, { timeoutMs: 10_000 })).status, 'succeeded');
  assert.ok(!lost.includes(`${okJob}:0`), 'the step that succeeded was not reported as lost');
  // The refused failure was given up (its lease left to lapse), never applied twice.
  await eventually(() => lost.includes(`${failJob}:0`), 20_000, 'the refused report to be given up');
  assert.equal((await h.stepping.getJob(failJob))?.status, 'running');
});

test('reports are idempotent: a batch retried after a lost answer applies nothing twice', async () => {
  const id = await h.stepping.enqueue([
    { name: 'race.idem', args: {} },
    { name: 'race.idem', args: {} },
  ]);
  const claim = await h.pool.query(
    `SELECT job_id, lease_token FROM stepping.step_claim('w', ARRAY['race.idem'])`,
  );
  const token = claim.rows[0].lease_token as string;
  const complete = () =>
    h.pool.query(
      `SELECT accepted, job_status, (next).lease_token AS next_token
       FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid], NULL, NULL, 'w', ARRAY['race.idem'])`,
      [id, token],
    );
  const once = (await complete()).rows[0];
  const again = (await complete()).rows[0];
  assert.equal(once.accepted, true);
  assert.deepEqual(again, once, 'the retry is answered like the first call, continuation included');
  const steps = await h.stepping.steps(id);
  assert.deepEqual(
    steps.map((s) => [s.status, s.attempts]),
    [
      ['succeeded', 1],
      ['running', 1],
    ],
  );
  // A failure under the continuation's token, sent twice: applied once.
  const fail = () =>
    h.pool.query(
      `SELECT accepted, job_status FROM stepping.step_fail(ARRAY[$1::bigint], ARRAY[$2::uuid],
         ARRAY['{"error": {"message": "boom"}}'::jsonb])`,
      [id, once.next_token],
    );
  assert.deepEqual((await fail()).rows[0], { accepted: true, job_status: 'pending' });
  assert.deepEqual((await fail()).rows[0], { accepted: true, job_status: 'pending' });
  const after = await h.stepping.steps(id);
  assert.equal(after[1]!.attempts, 1, 'the failure was counted once');
  // A success under a token whose failure was applied is not mistaken for an applied success.
  const late = await h.pool.query(
    `SELECT accepted FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid])`,
    [id, once.next_token],
  );
  assert.equal(late.rows[0].accepted, false);
});

test('reports and heartbeats on overlapping jobs never deadlock', async () => {
  // The old step_complete locked a batch's fast-path jobs (last steps) before the others,
  // not in id order, so a heartbeat of the same jobs could deadlock with it.
  const a = await h.client();
  const b = await h.client();
  let deadlocks = 0;
  for (let i = 0; i < 200; i++) {
    const multi = await h.stepping.enqueue([
      { name: 'race.lock', args: {} },
      { name: 'race.lock-2', args: {} },
    ]);
    const last = await h.stepping.enqueue([{ name: 'race.lock', args: {} }]);
    const { rows } = await h.pool.query<{ job_id: string; lease_token: string }>(
      `SELECT job_id::text, lease_token::text FROM stepping.step_claim('w', ARRAY['race.lock'], NULL, 2, 60000)`,
    );
    const byId = new Map(rows.map((r) => [r.job_id, r.lease_token]));
    const ids = [last, multi];
    const tokens = ids.map((id) => byId.get(id)!);
    const results = await Promise.allSettled([
      a.query('SELECT * FROM stepping.step_complete($1::bigint[], $2::uuid[])', [ids, tokens]),
      b.query('SELECT * FROM stepping.lease_extend($1::bigint[], $2::uuid[], 60000)', [
        [...ids].reverse(),
        [...tokens].reverse(),
      ]),
    ]);
    for (const r of results) {
      if (r.status === 'rejected') {
        if ((r.reason as { code?: string }).code === '40P01') deadlocks++;
        else throw r.reason;
      }
    }
  }
  assert.equal(deadlocks, 0);
});

test('a batch of last steps is finished lock-free in id order: no deadlock with a heartbeat in reverse order', async () => {
  // step_complete finishes an all-last-steps batch with one UPDATE that locks as it writes;
  // it must take the row locks in id order, as lease_extend does.
  const a = await h.client();
  const b = await h.client();
  let deadlocks = 0;
  for (let i = 0; i < 100; i++) {
    const ids: string[] = [];
    for (let k = 0; k < 4; k++) ids.push(await h.stepping.enqueue([{ name: 'race.lockfree', args: {} }]));
    const { rows } = await h.pool.query<{ job_id: string; lease_token: string }>(
      `SELECT job_id::text, lease_token::text FROM stepping.step_claim('w', ARRAY['race.lockfree'], NULL, 4, 60000)`,
    );
    const byId = new Map(rows.map((r) => [r.job_id, r.lease_token]));
    const tokens = ids.map((id) => byId.get(id)!);
    // The report lists the jobs newest first: the function must sort them.
    const results = await Promise.allSettled([
      a.query('SELECT * FROM stepping.step_complete($1::bigint[], $2::uuid[])', [
        [...ids].reverse(),
        [...tokens].reverse(),
      ]),
      b.query('SELECT * FROM stepping.lease_extend($1::bigint[], $2::uuid[], 60000)', [ids, tokens]),
    ]);
    for (const r of results) {
      if (r.status === 'rejected') {
        if ((r.reason as { code?: string }).code === '40P01') deadlocks++;
        else throw r.reason;
      }
    }
    const done = await h.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM stepping.jobs WHERE id = ANY ($1::bigint[]) AND status = 'succeeded'`,
      [ids],
    );
    assert.equal(done.rows[0]!.n, 4);
  }
  assert.equal(deadlocks, 0);
});

test('a job cancelled while its last step’s success is being reported is not finished by the lock-free path', async () => {
  // The batch is classified without locks; a job cancelled between that look and the
  // UPDATE must be handled as a cancelled job, exactly as when the cancel came first.
  const holder = await h.client();
  const reporter = await h.client();
  const claim = async (n: number) => {
    const { rows } = await h.pool.query<{ job_id: string; lease_token: string }>(
      `SELECT job_id::text, lease_token::text FROM stepping.step_claim('w', ARRAY['race.cancel-late'], NULL, $1, 60000)`,
      [n],
    );
    return new Map(rows.map((r) => [r.job_id, r.lease_token]));
  };
  // Reference: cancelled first, then the success is reported.
  const ref = await h.stepping.enqueue([{ name: 'race.cancel-late', args: {} }]);
  const refToken = (await claim(1)).get(ref)!;
  await h.pool.query('SELECT stepping.job_cancel($1)', [ref]);
  const refReport = await h.pool.query<{ job_status: string }>(
    'SELECT job_status FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid])',
    [ref, refToken],
  );
  const expected = refReport.rows[0]!.job_status;
  assert.notEqual(expected, 'succeeded');

  const ids: string[] = [];
  for (let k = 0; k < 3; k++) ids.push(await h.stepping.enqueue([{ name: 'race.cancel-late', args: {} }]));
  const byId = await claim(3);
  const tokens = ids.map((id) => byId.get(id)!);
  const middle = ids[1]!;
  await holder.query('BEGIN');
  await holder.query('SELECT 1 FROM stepping.jobs WHERE id = $1 FOR UPDATE', [middle]);
  const reporterPid = (await reporter.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const report = reporter.query<{ job_id: string; accepted: boolean; job_status: string }>(
    'SELECT job_id::text, accepted, job_status FROM stepping.step_complete($1::bigint[], $2::uuid[])',
    [ids, tokens],
  );
  // The report has looked at the batch and now waits for the middle job's row lock.
  await eventually(
    async () => {
      const { rows } = await h.pool.query<{ waiting: boolean }>(
        `SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1`,
        [reporterPid],
      );
      return rows[0]?.waiting === true;
    },
    10_000,
    'the report waiting for the row lock',
  );
  await holder.query('SELECT stepping.job_cancel($1)', [middle]);
  await holder.query('COMMIT');
  const { rows } = await report;
  const status = new Map(rows.map((r) => [r.job_id, r]));
  assert.deepEqual(
    ids.map((id) => [status.get(id)!.accepted, status.get(id)!.job_status]),
    [
      [true, 'succeeded'],
      [true, expected],
      [true, 'succeeded'],
    ],
  );
  const stored = await h.pool.query<{ status: string }>('SELECT status FROM stepping.jobs WHERE id = $1', [
    middle,
  ]);
  assert.equal(stored.rows[0]!.status, expected);
});

test('plain { name, args } producers get the worker definition’s options; explicit ones override', async (t) => {
  let attempts = 0;
  let overridden = 0;
  const once = defineStep(
    'race.def-once',
    async (args: { tag: string }) => {
      if (args.tag === 'default') attempts++;
      else overridden++;
      throw new Error('always');
    },
    { maxAttempts: 1, backoff: { baseMs: 1, maxMs: 1 } },
  );
  const undone: string[] = [];
  const undo = defineStep('race.def-undo', async (args: { tag: string }) => {
    undone.push(args.tag);
  });
  const compensated = defineStep('race.def-comp', async () => ({ receipt: 'r-1' }), {
    compensate: (args: { tag: string }, result) => ({
      name: 'race.def-undo',
      args: { tag: `${args.tag}:${(result as { receipt?: string } | undefined)?.receipt}` },
    }),
  });
  const stop = defineStep('race.def-stop', async () => {
    throw new PermanentError('stop');
  });
  const writes = defineStep(
    'race.def-tx',
    async (_args: unknown, ctx) => {
      await ctx.tx!.query('INSERT INTO ledger VALUES ($1, $2, $3)', [ctx.jobId, ctx.attempt, 'tx']);
    },
    { transactional: true },
  );
  const worker = await h.worker({ steps: [once, undo, compensated, stop, writes] }, t);
  t.after(() => worker.stop());

  const plain = (name: string, args: unknown, options?: StepCall['options']): StepCall =>
    options ? { name, args, options } : { name, args };
  const a = await h.stepping.enqueue([plain('race.def-once', { tag: 'default' })]);
  assert.equal((await h.stepping.waitForJob(a, { timeoutMs: 20_000 })).status, 'failed');
  assert.equal(attempts, 1, 'maxAttempts: 1 of the definition held for a plain producer');

  const b = await h.stepping.enqueue([
    plain('race.def-once', { tag: 'explicit' }, { maxAttempts: 3, backoff: { baseMs: 1, maxMs: 1 } }),
  ]);
  assert.equal((await h.stepping.waitForJob(b, { timeoutMs: 20_000 })).status, 'failed');
  assert.equal(overridden, 3, 'an explicit maxAttempts at enqueue overrides the definition');

  const c = await h.stepping.enqueue([plain('race.def-comp', { tag: 'c' }), plain('race.def-stop', {})]);
  assert.equal((await h.stepping.waitForJob(c, { timeoutMs: 20_000 })).status, 'compensated');
  assert.deepEqual(undone, ['c:r-1'], "the definition's compensation ran, with the step's result");

  const d = await h.stepping.enqueue([plain('race.def-tx', {})]);
  assert.equal((await h.stepping.waitForJob(d, { timeoutMs: 20_000 })).status, 'succeeded');
  assert.equal(await ledger(d), 1, 'a plain producer still gets a transactional step');
});

test('deadline corners: a step that never ran is not compensated, and retry rescues a job failed on its deadline', async () => {
  const deadline = new Date(Date.now() + 60_000);
  const id = await h.stepping.enqueue(
    [
      { name: 'race.dl-a', args: {}, options: { compensate: { name: 'race.dl-undo-a' } } },
      { name: 'race.dl-b', args: {}, options: { compensate: { name: 'race.dl-undo-b' } } },
    ],
    { deadline },
  );
  const a = await h.pool.query(`SELECT lease_token FROM stepping.step_claim('w', ARRAY['race.dl-a'])`);
  await h.pool.query(`SELECT * FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid])`, [
    id,
    a.rows[0].lease_token,
  ]);
  // The deadline passes before step b is ever claimed; the claim settles the job instead.
  await h.shiftClock('2 minutes');
  const claimed = await h.pool.query(`SELECT * FROM stepping.step_claim('w', ARRAY['race.dl-b'])`);
  assert.equal(claimed.rowCount, 0);
  const steps = await h.stepping.steps(id);
  assert.deepEqual(
    steps.map((s) => [s.name, s.status, s.attempts, s.compensationStatus]),
    [
      ['race.dl-a', 'succeeded', 1, 'pending'],
      ['race.dl-b', 'failed', 0, null],
    ],
    "b never ran: only a's compensation is due",
  );
  assert.match(steps[1]!.lastError ?? '', /deadline passed/);

  // Without compensations the job fails; retry() removes the passed deadline and it runs.
  // timeoutMs, not a Date: the engine's clock was shifted above, this process's was not.
  const solo = await h.stepping.enqueue([{ name: 'race.dl-solo', args: {} }], { timeoutMs: 1000 });
  await h.shiftClock('10 minutes');
  await h.pool.query(`SELECT * FROM stepping.step_claim('w', ARRAY['race.dl-solo'])`);
  assert.equal((await h.stepping.getJob(solo))?.status, 'failed');
  await h.stepping.retry(solo);
  const again = await h.pool.query(`SELECT job_id FROM stepping.step_claim('w', ARRAY['race.dl-solo'])`);
  assert.equal(String(again.rows[0]?.job_id), solo, 'the retried job is claimable, not failed again at once');
});

test('two transactions enqueueing the same keys in opposite orders never deadlock', async () => {
  // Each batch inserted its jobs in input order, so two batches holding the same keys in
  // opposite orders each took a key the other waited for: 40P01 for one caller.
  const a = await h.client();
  const b = await h.client();
  let deadlocks = 0;
  for (let round = 0; round < 3; round++) {
    const keys = Array.from({ length: 2000 }, (_, i) => `race-order-${round}-${String(i).padStart(4, '0')}`);
    const batch = (ks: string[]) =>
      ks.map((key) => ({ steps: [{ name: 'race.keyed', args: {} }], options: { key } }));
    // Each transaction ends as soon as its own batch does: the other one may be waiting for it.
    const inTransaction = async (client: typeof a, ks: string[]) => {
      await client.query('BEGIN');
      try {
        const result = await h.stepping.enqueueMany(client, batch(ks));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
    };
    const results = await Promise.allSettled([inTransaction(a, keys), inTransaction(b, [...keys].reverse())]);
    for (const r of results) {
      if (r.status === 'rejected') {
        if ((r.reason as { code?: string }).code === '40P01') deadlocks++;
        else throw r.reason;
      }
    }
    // One transaction made every job; the other found each key taken.
    const made = results.flatMap((r) => (r.status === 'fulfilled' ? r.value.filter((x) => x.created) : []));
    if (deadlocks === 0) assert.equal(made.length, keys.length);
  }
  assert.equal(deadlocks, 0);
});
