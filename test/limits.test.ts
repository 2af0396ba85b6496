/**
 * Fleet-wide queue limits at the SQL level (sql/limits.sql, step_claim, the continuation
 * of step_complete): max_running across claimers, expired leases not counted, a rate
 * limit's window, units held back keeping their attempts, the continuation held to the
 * limits, claims never waiting for one another, the overview, and clearing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep, InvalidArgumentError } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

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

async function enqueueKeyed(queue: string, keys: (string | undefined)[], steps = 1): Promise<void> {
  await h.stepping.enqueueMany(
    undefined,
    keys.map((rateKey) => ({
      steps: Array.from({ length: steps }, () => ({ name: 'lim.a', args: {} })),
      options: { queue, ...(rateKey === undefined ? {} : { rateKey }) },
    })),
  );
}

async function rateKeysOf(units: Claimed[]): Promise<string[]> {
  if (units.length === 0) return [];
  const { rows } = await h.pool.query<{ k: string | null }>(
    `SELECT rate_key AS k FROM stepping.jobs WHERE id = ANY ($1::bigint[])`,
    [units.map((u) => u.job_id)],
  );
  return rows.map((r) => r.k ?? '-').sort();
}

test('a per-key rate limit admits rate_count starts per period for each rate key, and a flooding key never holds back the others', async () => {
  await h.stepping.setQueueLimit('kq', { rate: { count: 2, periodMs: 1000, perKey: true } });
  // Customer a floods the queue first; b and jobs without a rate key (one shared bucket) come after.
  await enqueueKeyed('kq', [...Array(30).fill('a'), 'b', 'b', 'b', undefined, undefined, undefined]);
  assert.deepEqual(await rateKeysOf(await claim(['kq'])), ['-', '-', 'a', 'a', 'b', 'b']);
  assert.deepEqual(await claim(['kq']), [], 'every key is at its rate');
  const o = await overview('kq');
  assert.equal(o.rate_per_key, true);
  assert.equal(o.window_starts, 6);
  assert.equal(o.keys_at_limit, 3);
  assert.equal(o.at_limit, true, 'every key with ready work is at its rate');
  const { rows } = await h.pool.query(
    `SELECT stepping.next_due_in_ms(ARRAY['lim.a'], ARRAY['kq']) AS ms,
            (SELECT max(attempt) FROM stepping.jobs WHERE queue = 'kq' AND status = 'pending') AS attempts`,
  );
  assert.ok(rows[0].ms > 0 && rows[0].ms <= 1000, `due in ${rows[0].ms} ms, not at once`);
  assert.equal(rows[0].attempts, 0, 'held-back units keep their attempts');

  // A new window: claims of one unit each still reach b after a's room is used, though
  // a's 28 waiting units come first in claim order.
  await h.shiftClock('1001 milliseconds');
  const one = async () => await rateKeysOf(await claim(['kq'], 1));
  assert.deepEqual(
    [await one(), await one(), await one(), await one(), await one()],
    [['a'], ['a'], ['b'], ['-'], []],
  );
  await h.stepping.clearQueueLimit('kq');
  assert.equal((await claim(['kq'])).length, 26);
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('a per-key rate limit holds for continuations, and together with max_running', async () => {
  await h.stepping.setQueueLimit('kc', {
    maxRunning: 3,
    rate: { count: 1, periodMs: 3_600_000, perKey: true },
  });
  await enqueueKeyed('kc', ['c'], 2);
  const [unit] = await claim(['kc']);
  assert.ok(unit);
  const { rows } = await h.pool.query(
    `SELECT accepted, job_status, (next).job_id AS next_job
     FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid], NULL, NULL, 't', ARRAY['lim.a'], NULL, 60000)`,
    [unit.job_id, unit.lease_token],
  );
  assert.equal(rows[0].accepted, true);
  assert.equal(rows[0].next_job, null, "c's second step waits for c's next window");
  assert.equal(rows[0].job_status, 'pending');
  await enqueueKeyed('kc', ['c', 'd', 'e', 'f', 'g']);
  // d, e, f start (max_running 3); c is at its rate; g waits for a running slot.
  assert.deepEqual(await rateKeysOf(await claim(['kc'])), ['d', 'e', 'f']);
  assert.deepEqual(await claim(['kc']), []);
  await h.shiftClock('61 seconds'); // the leases expire: running slots free, rate windows not
  assert.deepEqual(await rateKeysOf(await claim(['kc'])), ['g']);
  await h.stepping.clearQueueLimit('kc');
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('rate keys and per-key limits are validated by the driver and by the engine', async () => {
  const { EnqueueValidationError } = await import('../src/index.js');
  await assert.rejects(
    h.stepping.enqueue([{ name: 'lim.a', args: {} }], { rateKey: '' }),
    EnqueueValidationError,
  );
  await assert.rejects(
    h.stepping.enqueue([{ name: 'lim.a', args: {} }], { rateKey: 5 as never }),
    /rateKey must be a string of 1 to 500 characters/,
  );
  await assert.rejects(
    h.pool.query(`SELECT * FROM stepping.job_enqueue_batch($1::jsonb)`, [
      JSON.stringify([{ steps: [{ name: 'lim.a' }], rate_key: 'k'.repeat(501) }]),
    ]),
    /stepping: job 0: rate_key must be a string of 1 to 500 characters$/,
  );
  await assert.rejects(
    h.stepping.setQueueLimit('x', { maxRunning: 1, rate: { count: 1, periodMs: 1, perKey: 'yes' as never } }),
    /rate.perKey must be true or false/,
  );
  await assert.rejects(
    h.pool.query(`SELECT stepping.queue_limit_set('x', 1, NULL, NULL, true)`),
    /per-key needs a rate/,
  );
  // Stored and shown.
  const id = await h.stepping.enqueue([{ name: 'lim.a', args: {} }], { queue: 'kv', rateKey: 'customer-42' });
  assert.equal((await h.stepping.getJob(id))?.rateKey, 'customer-42');
  await h.stepping.setQueueLimit('kv', { rate: { count: 5, periodMs: 60_000, perKey: true } });
  const [state] = await h.stepping.queueLimits();
  assert.equal(state?.ratePerKey, true);
  assert.equal(state?.keysAtLimit, 0);
  await h.stepping.clearQueueLimit('kv');
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('a continuation counts as one start against the rate (it was counted twice, and held back by its own count)', async () => {
  await h.stepping.setQueueLimit('rc', { rate: { count: 2, periodMs: 3_600_000 } });
  await enqueue('rc', 2, 2);
  const [unit] = await claim(['rc'], 1);
  assert.ok(unit);
  const { rows } = await h.pool.query(
    `SELECT accepted, job_status, (next).job_id AS next_job
     FROM stepping.step_complete(ARRAY[$1::bigint], ARRAY[$2::uuid], NULL, NULL, 't', ARRAY['lim.a'], NULL, 60000)`,
    [unit.job_id, unit.lease_token],
  );
  // Two starts so far (the claim, the continuation): the rate of 2 allows exactly that.
  assert.deepEqual(rows, [{ accepted: true, job_status: 'running', next_job: unit.job_id }]);
  assert.equal((await overview('rc')).window_starts, 2);
  assert.deepEqual(await claim(['rc']), [], 'the window is used up');
  await h.stepping.clearQueueLimit('rc');
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('a limit set while a claim is in flight counts what that claim leases', async () => {
  await enqueue('sq', 6);
  const a = await h.client();
  await a.query('BEGIN');
  // The claim ran before the limit existed: it leases 4 units and has not committed yet.
  assert.equal((await claim(['sq'], 4, a)).length, 4);
  const setting = h.stepping.setQueueLimit('sq', { maxRunning: 2 });
  let settled = false;
  void setting.then(() => (settled = true));
  // The claim commits only once the set has run or waits for a lock: the order in which the
  // set could count nothing of the claim.
  await eventually(
    async () => {
      if (settled) return true;
      const { rows } = await h.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
         AND query LIKE '%queue_limit_set%'`,
      );
      return rows.length > 0;
    },
    10_000,
    'the limit set to run or wait',
  );
  await a.query('COMMIT');
  await setting;
  assert.equal((await overview('sq')).running, 4);
  assert.deepEqual(await claim(['sq']), [], '4 running against max_running 2: no room');
  await h.stepping.clearQueueLimit('sq');
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('a heartbeat does not bring back an expired lease in a max_running queue (its room may be taken)', async () => {
  await h.stepping.setQueueLimit('xq', { maxRunning: 1 });
  await enqueue('xq', 2);
  const [first] = await claim(['xq'], 1);
  assert.ok(first);
  await h.shiftClock('61 seconds'); // first's lease (60 s) expires: its room goes to the next claim
  const second = await claim(['xq'], 1);
  assert.equal(second.length, 1);
  const extend = `SELECT job_id::text FROM stepping.lease_extend(ARRAY[$1::bigint], ARRAY[$2::uuid], 60000)`;
  assert.deepEqual((await h.pool.query(extend, [first.job_id, first.lease_token])).rows, []);
  assert.equal((await overview('xq')).running, 1);
  // A live lease there is extended as usual, and so is an expired one without max_running.
  assert.equal((await h.pool.query(extend, [second[0]!.job_id, second[0]!.lease_token])).rowCount, 1);
  await h.stepping.clearQueueLimit('xq');
  await enqueue('yq', 1);
  const [free] = await claim(['yq'], 1);
  await h.shiftClock('61 seconds');
  assert.equal((await h.pool.query(extend, [free!.job_id, free!.lease_token])).rowCount, 1);
  await h.pool.query(`DELETE FROM stepping.jobs`);
});

test('a worker does not claim ahead in a fleet-limited queue: units it kept in hand would hold the room without running', async () => {
  await h.stepping.setQueueLimit('pq', { maxRunning: 5 });
  let running = 0;
  let ended = 0;
  // Handlers of 25 ms: a steady rate, which is what sizes a claim-ahead (prefetch).
  const step = defineStep('lim.w', async () => {
    running++;
    await new Promise((r) => setTimeout(r, 25));
    running--;
    ended++;
  });
  const total = 60;
  await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: total }, () => ({ steps: [step({})], options: { queue: 'pq' } })),
  );
  const worker = await h.worker({ steps: [step], concurrency: 1 });
  // Units leased but neither running nor ended (waiting for their report): claimed ahead.
  // Between a claim's answer and its handler's start one unit may be seen so; a worker
  // that claims ahead holds up to the rest of the queue's room (4 here).
  let most = 0;
  while (ended < total) {
    const { rows } = await h.pool.query<{ leased: number; done: number }>(
      `SELECT count(*) FILTER (WHERE status = 'running')::int AS leased,
              count(*) FILTER (WHERE status = 'succeeded')::int AS done
       FROM stepping.jobs WHERE queue = 'pq'`,
    );
    most = Math.max(most, rows[0]!.leased - running - (ended - rows[0]!.done));
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(most <= 1, `units leased ahead of a free slot: ${most}`);
  await eventually(async () => (await overview('pq')).running === 0);
  await worker.stop();
  await h.stepping.clearQueueLimit('pq');
  await h.pool.query(`DELETE FROM stepping.jobs`);
});
