/**
 * Fleet-wide queue limits at the SQL level (sql/limits.sql, step_claim, the continuation
 * of step_complete): max_running across claimers, expired leases not counted, a rate
 * limit's window, units held back keeping their attempts, the continuation held to the
 * limits, claims never waiting for one another, the overview, and clearing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { InvalidArgumentError } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

interface Claimed {
  job_id: string;
  lease_token: string;
  queue: string;
  step_index: number;
}

async function claim(queues: string[] | null, limit = 50, db: { query: typeof h.pool.query } = h.pool) {
  const { rows } = await db.query<Claimed>(
    `SELECT job_id::text, lease_token::text, queue, step_index
     FROM stepping.step_claim('t', ARRAY['lim.a'], $1, $2, 60000)`,
    [queues, limit],
  );
  return rows;
}

async function enqueue(queue: string, n: number, steps = 1): Promise<void> {
  await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: n }, () => ({
      steps: Array.from({ length: steps }, () => ({ name: 'lim.a', args: {} })),
      options: { queue },
    })),
  );
}

async function overview(queue: string) {
  return (await h.pool.query(`SELECT * FROM stepping.queue_limits_overview WHERE queue = $1`, [queue]))
    .rows[0];
}

test('max_running holds across claims; other queues are claimed as usual; an expired lease stops counting', async () => {
  await h.stepping.setQueueLimit('lq', { maxRunning: 2 });
  await enqueue('lq', 5);
  await enqueue('free', 3);
  const first = await claim(null);
  assert.equal(first.filter((u) => u.queue === 'lq').length, 2);
  assert.equal(first.filter((u) => u.queue === 'free').length, 3);
  assert.equal((await claim(['lq'])).length, 0);
  const o = await overview('lq');
  assert.equal(o.running, 2);
  assert.equal(o.max_running, 2);
  assert.equal(o.ready, 3);
  assert.equal(o.at_limit, true);
  // Units held back were not touched: no attempt counted.
  const { rows } = await h.pool.query(
    `SELECT max(attempt) AS a FROM stepping.jobs WHERE queue = 'lq' AND status = 'pending'`,
  );
  assert.equal(rows[0].a, 0);
  // A finished unit frees its slot.
  const done = first.find((u) => u.queue === 'lq')!;
  await h.pool.query(`SELECT * FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid])`, [
    done.job_id,
    done.lease_token,
  ]);
  assert.equal((await claim(['lq'])).length, 1);
  assert.equal((await claim(['lq'])).length, 0);
  // Leases that expired (their workers presumed dead) no longer count.
  await h.shiftClock('61 seconds');
  assert.equal((await claim(['lq'])).length, 2);
  await h.stepping.clearQueueLimit('lq');
  assert.equal(await overview('lq'), undefined);
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('a claim whose first scan is taken up by a limited queue scans again for the other queues', async () => {
  await h.stepping.setQueueLimit('hot', { maxRunning: 2 });
  await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 5 }, () => ({
      steps: [{ name: 'lim.a', args: {} }],
      options: { queue: 'hot', priority: -1 },
    })),
  );
  await enqueue('cold', 5);
  const got = await claim(null, 4);
  assert.deepEqual(got.map((u) => u.queue).sort(), ['cold', 'cold', 'hot', 'hot']);
  await h.stepping.clearQueueLimit('hot');
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('a rate limit admits rate_count starts per period; held-back units wait without attempts; next_due_in_ms says when', async () => {
  await h.stepping.setQueueLimit('rq', { rate: { count: 3, periodMs: 1000 } });
  await enqueue('rq', 7);
  assert.equal((await claim(['rq'])).length, 3);
  assert.equal((await claim(['rq'])).length, 0);
  const o = await overview('rq');
  assert.equal(o.window_starts, 3);
  assert.equal(o.at_limit, true);
  const { rows } = await h.pool.query(
    `SELECT stepping.next_due_in_ms(ARRAY['lim.a'], ARRAY['rq']) AS ms, (SELECT max(attempt) FROM stepping.jobs
       WHERE queue = 'rq' AND status = 'pending') AS attempts`,
  );
  assert.ok(rows[0].ms > 0 && rows[0].ms <= 1000, `due in ${rows[0].ms} ms`);
  assert.equal(rows[0].attempts, 0);
  await h.shiftClock('1001 milliseconds');
  assert.equal((await claim(['rq'])).length, 3);
  await h.stepping.clearQueueLimit('rq');
  assert.equal((await claim(['rq'])).length, 1);
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('the continuation a completion leases respects the limits', async () => {
  await h.stepping.setQueueLimit('cq', { maxRunning: 1, rate: { count: 1, periodMs: 3_600_000 } });
  await enqueue('cq', 1, 2);
  const [unit] = await claim(['cq']);
  assert.ok(unit);
  const complete = `SELECT accepted, job_status, (next).job_id AS next_job
    FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid], NULL, NULL, 't', ARRAY['lim.a'], NULL, 60000)`;
  const { rows } = await h.pool.query(complete, [unit.job_id, unit.lease_token]);
  // The rate allows one start an hour: the second step waits, pending, for a claim.
  assert.equal(rows[0].accepted, true);
  assert.equal(rows[0].job_status, 'pending');
  assert.equal(rows[0].next_job, null);
  // Raise the rate: now the continuation is leased on to the same worker.
  await h.stepping.setQueueLimit('cq', { maxRunning: 1 });
  await enqueue('cq', 1, 2);
  const units = await claim(['cq']);
  assert.equal(units.length, 1, 'max_running 1');
  const [u] = units;
  const second = await h.pool.query(complete, [u!.job_id, u!.lease_token]);
  if (u!.step_index === 0) {
    assert.equal(second.rows[0].next_job, u!.job_id, 'the job keeps its own slot');
  } else {
    assert.equal(second.rows[0].job_status, 'succeeded');
  }
  assert.equal((await overview('cq')).running, u!.step_index === 0 ? 1 : 0);
  await h.stepping.clearQueueLimit('cq');
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('a claimer never waits for another holding a limited queue: it skips that queue and claims the rest', async () => {
  await h.stepping.setQueueLimit('wq', { maxRunning: 10 });
  await enqueue('wq', 3);
  await enqueue('other', 2);
  const a = await h.client();
  const b = await h.client();
  await a.query('BEGIN');
  assert.equal((await claim(['wq'], 1, a)).length, 1);
  // b's claim returns at once (statement_timeout would fail it otherwise), without wq units.
  await b.query(`SET statement_timeout = '2s'`);
  const got = await claim(null, 50, b);
  assert.deepEqual(
    got.map((u) => u.queue),
    ['other', 'other'],
  );
  await a.query('COMMIT');
  assert.equal((await claim(['wq'], 50, b)).length, 2);
  await h.stepping.clearQueueLimit('wq');
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('limits are validated by the driver and by the engine', async () => {
  await assert.rejects(h.stepping.setQueueLimit('x', {}), InvalidArgumentError);
  await assert.rejects(h.stepping.setQueueLimit('x', { maxRunning: 0 }), InvalidArgumentError);
  await assert.rejects(
    h.stepping.setQueueLimit('x', { rate: { count: 1, periodMs: 1.5 } }),
    InvalidArgumentError,
  );
  await assert.rejects(
    h.pool.query(`SELECT stepping.queue_limit_set('x')`),
    /needs p_max_running or p_rate_count/,
  );
  await assert.rejects(h.pool.query(`SELECT stepping.queue_limit_set('x', NULL, 5)`), /both/);
  await assert.rejects(h.pool.query(`SELECT stepping.queue_limit_set('', 1)`), /queue name/);
  assert.equal(await h.stepping.clearQueueLimit('x'), false);
  assert.deepEqual(await h.stepping.queueLimits(), []);
});
