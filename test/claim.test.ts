import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep } from '../src/index.js';
import { jitter } from './fixtures/core-util.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

async function jobRows(ids: string[]) {
  const { rows } = await h.pool.query<{
    id: string;
    status: string;
    current_step: number;
    attempt: number;
    locked_by: string | null;
    claimed_at: Date | null;
  }>(
    `SELECT id::text, status, current_step, attempt, locked_by, claimed_at
     FROM stepping.jobs WHERE id = ANY($1::bigint[]) ORDER BY id`,
    [ids],
  );
  return rows;
}

test('three workers never run the same step at once, and every step runs exactly once', async (t) => {
  const running = new Map<string, number>();
  const runs = new Map<string, number>();
  let maxPerStep = 0;
  const step = defineStep('claim.one', async (_args: unknown, ctx) => {
    const key = `${ctx.jobId}:${ctx.stepIndex}`;
    const now = (running.get(key) ?? 0) + 1;
    running.set(key, now);
    maxPerStep = Math.max(maxPerStep, now);
    runs.set(key, (runs.get(key) ?? 0) + 1);
    await jitter(2);
    running.set(key, running.get(key)! - 1);
  });
  const ranOn = new Map<string, number>();
  const workers = await Promise.all(
    [0, 1, 2].map((i) => h.worker({ steps: [step], concurrency: 10, workerId: `claim-${i}` }, t)),
  );
  workers.forEach((w, i) =>
    w.on('step:started', () => ranOn.set(`claim-${i}`, (ranOn.get(`claim-${i}`) ?? 0) + 1)),
  );

  const jobs = await h.stepping.enqueueMany(undefined, [
    ...Array.from({ length: 300 }, (_, i) => ({ steps: [step({ i })] })),
    ...Array.from({ length: 40 }, (_, i) => ({ steps: [step({ i }), step({ i }), step({ i })] })),
  ]);
  const ids = jobs.map((j) => j.jobId);
  await eventually(
    async () =>
      (
        await h.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM stepping.jobs WHERE id = ANY($1::bigint[]) AND status = 'succeeded'`,
          [ids],
        )
      ).rows[0]!.n === ids.length,
    30_000,
    'all 340 jobs to succeed',
  );

  assert.equal(maxPerStep, 1, 'no step ran twice at the same time');
  const expected = jobs.flatMap((j, n) =>
    n < 300 ? [`${j.jobId}:0`] : [0, 1, 2].map((i) => `${j.jobId}:${i}`),
  );
  assert.equal(expected.length, 420);
  assert.deepEqual(
    expected.filter((k) => runs.get(k) !== 1),
    [],
    'steps that did not run exactly once',
  );
  assert.equal(runs.size, 420);
  assert.ok(ranOn.size >= 2, `workers that ran steps: ${[...ranOn.keys()].join(', ')}`);
});

test('step_claim in two open transactions hands out disjoint jobs (SKIP LOCKED, no waiting)', async () => {
  const jobs = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 10 }, (_, i) => ({ steps: [{ name: 'claim.sql', args: { i } }] })),
  );
  const c1 = await h.client();
  const c2 = await h.client();
  // If the second claim waited for the first transaction's locks, it would fail here instead of hanging.
  await c2.query(`SET statement_timeout = '5s'`);
  const claimSql = `SELECT job_id::text FROM stepping.step_claim($1, ARRAY['claim.sql'], NULL, 6, 30000)`;
  await c1.query('BEGIN');
  await c2.query('BEGIN');
  try {
    const a = (await c1.query<{ job_id: string }>(claimSql, ['w1'])).rows.map((r) => r.job_id);
    const b = (await c2.query<{ job_id: string }>(claimSql, ['w2'])).rows.map((r) => r.job_id);
    assert.equal(a.length, 6);
    assert.equal(b.length, 4);
    assert.deepEqual(
      a.filter((id) => b.includes(id)),
      [],
      'both transactions claimed the same job',
    );
    assert.deepEqual([...a, ...b].sort(), jobs.map((j) => j.jobId).sort());
    await c1.query('COMMIT');
    await c2.query('COMMIT');
  } catch (error) {
    await c1.query('ROLLBACK');
    await c2.query('ROLLBACK');
    throw error;
  }
  const rows = await jobRows(jobs.map((j) => j.jobId));
  assert.ok(rows.every((r) => r.status === 'running' && r.attempt === 1));
  assert.equal(rows.filter((r) => r.locked_by === 'w1').length, 6);
  assert.equal(rows.filter((r) => r.locked_by === 'w2').length, 4);
});

test('a worker never claims a step it has no handler for; the job waits untouched', async (t) => {
  const known = defineStep('claim.known', async () => {});
  await h.worker({ steps: [known] }, t);
  // Most urgent first: a worker ignoring names would take this one before anything else.
  const unknown = await h.stepping.enqueue([{ name: 'unknown.step', args: {} }], { priority: -100 });
  // A known step followed by an unknown one: the job must stop at the unknown step.
  const mixed = await h.stepping.enqueue([known({}), { name: 'unknown.step2', args: {} }], {
    priority: -100,
  });
  const others = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 20 }, (_, i) => ({ steps: [known({ i })] })),
  );
  for (const o of others) {
    assert.equal((await h.stepping.waitForJob(o.jobId, { timeoutMs: 10_000 })).status, 'succeeded');
  }
  const steps = await h.pool.query(
    'SELECT step_index AS idx, status, attempts FROM stepping.step_overview WHERE job_id = $1 ORDER BY step_index',
    [mixed],
  );
  // The job's first step ran, which proves the worker reached it.
  assert.deepEqual(steps.rows, [
    { idx: 0, status: 'succeeded', attempts: 1 },
    { idx: 1, status: 'pending', attempts: 0 },
  ]);
  const [u, m] = await jobRows([unknown, mixed]);
  assert.deepEqual(
    { ...u, claimed_at: u!.claimed_at === null },
    { id: unknown, status: 'pending', current_step: 0, attempt: 0, locked_by: null, claimed_at: true },
  );
  assert.equal(m!.status, 'pending');
  assert.equal(m!.current_step, 1);
  assert.equal(m!.attempt, 0);
  assert.equal(m!.locked_by, null);

  // Both were runnable all along: a claimer with the right names gets them.
  const { rows } = await h.pool.query<{ job_id: string }>(
    `SELECT job_id::text FROM stepping.step_claim('x', ARRAY['unknown.step', 'unknown.step2'], NULL, 10, 1000)`,
  );
  assert.deepEqual(rows.map((r) => r.job_id).sort(), [unknown, mixed].sort());
});

test('step_claim picks by priority (lower first), then due time; never what is not due', async () => {
  const ago = (ms: number) => new Date(Date.now() - ms);
  const name = 'claim.prio';
  const enq = (priority: number, runAt: Date) =>
    h.stepping.enqueue([{ name, args: {} }], { priority, runAt });
  const p5old = await enq(5, ago(60_000));
  const p0new = await enq(0, ago(1_000));
  const p0old = await enq(0, ago(5_000));
  const pNeg = await enq(-3, ago(2_000));
  const p0mid = await enq(0, ago(3_000));
  await enq(-10, new Date(Date.now() + 3_600_000)); // most urgent, but not due

  const order: string[] = [];
  for (;;) {
    const { rows } = await h.pool.query<{ job_id: string }>(
      `SELECT job_id::text FROM stepping.step_claim('w', ARRAY[$1], NULL, 1, 30000)`,
      [name],
    );
    if (rows.length === 0) break;
    assert.equal(rows.length, 1);
    order.push(rows[0]!.job_id);
  }
  assert.deepEqual(order, [pNeg, p0old, p0mid, p0new, p5old]);
});

test('with a limit, step_claim takes the most urgent jobs', async () => {
  const name = 'claim.limit';
  const ids = [];
  for (const priority of [3, 1, 4, 1, 5, 9, 2, 6]) {
    ids.push({ priority, id: await h.stepping.enqueue([{ name, args: {} }], { priority }) });
  }
  const { rows } = await h.pool.query<{ job_id: string; priority: number }>(
    `SELECT c.job_id::text, j.priority FROM stepping.step_claim('w', ARRAY[$1], NULL, 3, 30000) c
     JOIN stepping.job_overview j USING (job_id)`,
    [name],
  );
  assert.deepEqual(rows.map((r) => r.priority).sort(), [1, 1, 2]);
});

test('a worker serving queue a never claims queue b jobs', async (t) => {
  const step = defineStep('claim.q', async () => {});
  await h.worker({ steps: [step], queues: ['claim-a'] }, t);
  const b = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 5 }, () => ({ steps: [step({})], options: { queue: 'claim-b', priority: -100 } })),
  );
  const a = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 5 }, () => ({ steps: [step({})], options: { queue: 'claim-a' } })),
  );
  for (const j of a) {
    assert.equal((await h.stepping.waitForJob(j.jobId, { timeoutMs: 10_000 })).status, 'succeeded');
  }
  const rows = await jobRows(b.map((j) => j.jobId));
  assert.deepEqual(
    rows.map((r) => [r.status, r.attempt, r.locked_by]),
    b.map(() => ['pending', 0, null]),
  );
  // SQL-level: a queue filter returns only its own queue; queue b's jobs were claimable all along.
  const none = await h.pool.query(
    `SELECT 1 FROM stepping.step_claim('w', ARRAY['claim.q'], ARRAY['claim-a', 'claim-zzz'], 10, 30000)`,
  );
  assert.equal(none.rowCount, 0);
  const got = await h.pool.query<{ job_id: string; queue: string }>(
    `SELECT job_id::text, queue FROM stepping.step_claim('w', ARRAY['claim.q'], ARRAY['claim-b'], 10, 30000)`,
  );
  assert.deepEqual(got.rows.map((r) => r.job_id).sort(), b.map((j) => j.jobId).sort());
  assert.ok(got.rows.every((r) => r.queue === 'claim-b'));
});

test('a worker with a long list of step names (looked up as a set) claims exactly the steps it names', async () => {
  // Names that are easy to get wrong as jsonb keys: quotes, backslashes, unicode, case.
  const mine = ['n.a', 'n."quoted"', 'n.back\\slash', 'n.ünï', 'N.A'];
  const others = ['n.b', 'n.a ', 'n.Ünï', 'n.quoted'];
  const filler = Array.from({ length: 40 }, (_, i) => `filler.${i}`);
  for (const name of [...others, ...mine]) {
    await h.stepping.enqueue([{ name, args: {} }], { queue: 'names-set' });
  }
  const claimed = async (names: string[]) =>
    (
      await h.pool.query<{ name: string }>(
        `SELECT name FROM stepping.step_claim('t', $1, ARRAY['names-set'], 50, 60000) ORDER BY name`,
        [names],
      )
    ).rows.map((r) => r.name);
  const due = async (names: string[]) =>
    (
      await h.pool.query<{ ms: number | null }>(
        `SELECT stepping.next_due_in_ms($1, ARRAY['names-set']) AS ms`,
        [names],
      )
    ).rows[0]!.ms;
  assert.ok((await due([...filler, ...mine])) !== null);
  // A NULL in the list (from SQL) is no name, as with a short list.
  assert.deepEqual(
    await (async () => {
      const { rows } = await h.pool.query<{ ms: number | null }>(
        `SELECT stepping.next_due_in_ms(array_append($1::text[], NULL), ARRAY['names-set']) AS ms`,
        [[...filler, ...mine]],
      );
      return rows[0]!.ms !== null;
    })(),
    true,
  );
  assert.deepEqual(await claimed([...filler, ...mine, 'n.a']), [...mine].sort());
  // What is left belongs to names no list above had: a long list of others sees it, a
  // long list without them does not.
  assert.equal(await due([...filler, 'n.zzz']), null);
  assert.deepEqual(await claimed([...filler, ...others]), [...others].sort());
  await h.pool.query(`DELETE FROM stepping.jobs WHERE queue = 'names-set'`);
});
