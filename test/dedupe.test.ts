import assert from 'node:assert/strict';
import { test } from 'node:test';

import type pg from 'pg';

import { defineStep, DuplicateJobError } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
const noop = defineStep('d.noop', async () => {});

test('a second enqueue with the same key returns the unfinished job; a finished job frees the key', async () => {
  const a = await h.stepping.enqueue([noop({})], { key: 'order:1', queue: 'nobody-serves-this' });
  const b = await h.stepping.enqueue([noop({ other: true })], {
    key: 'order:1',
    queue: 'nobody-serves-this',
  });
  assert.equal(b, a);
  await h.pool.query(`UPDATE stepping.jobs SET status = 'succeeded', finished_at = now() WHERE id = $1`, [a]);
  const c = await h.stepping.enqueue([noop({})], { key: 'order:1' });
  assert.notEqual(c, a);
});

test("onDuplicate: 'error' throws DuplicateJobError and leaves the caller's transaction usable", async () => {
  const existing = await h.stepping.enqueue([noop({})], { key: 'mail:7', queue: 'nobody-serves-this' });
  const c = await h.client();
  await c.query('BEGIN');
  await assert.rejects(
    h.stepping.enqueue(c, [noop({})], { key: 'mail:7', onDuplicate: 'error' }),
    (e: unknown) => {
      assert.ok(e instanceof DuplicateJobError);
      assert.equal((e as DuplicateJobError).existingJobId, existing);
      return true;
    },
  );
  const other = await h.stepping.enqueue(c, [noop({})], { key: 'mail:8', queue: 'nobody-serves-this' });
  await c.query('COMMIT');
  assert.equal((await h.stepping.getJob(other))?.key, 'mail:8');
  const n = await h.pool.query(`SELECT count(*)::int AS n FROM stepping.jobs WHERE key = 'mail:7'`);
  assert.equal(n.rows[0].n, 1);
});

test('25 concurrent transactions enqueueing one key make exactly one job, even when the first rolls back', async () => {
  const key = 'race:1';
  const first = await h.client();
  await first.query('BEGIN');
  const rolledBackId = await h.stepping.enqueue(first, [noop({ from: 'first' })], {
    key,
    queue: 'nobody-serves-this',
  });

  // 24 more transactions try the same key; they must wait on the first one's outcome.
  const others: pg.Client[] = await Promise.all(Array.from({ length: 24 }, () => h.client()));
  const pids = others.map((c) => (c as unknown as { processID: number }).processID);
  const results = Promise.all(
    others.map(async (c, i) => {
      await c.query('BEGIN');
      const id = await h.stepping.enqueue(c, [noop({ from: i })], { key, queue: 'nobody-serves-this' });
      await c.query('COMMIT');
      return id;
    }),
  );
  await eventually(
    async () => {
      const { rows } = await h.pool.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1) AND wait_event_type = 'Lock'`,
        [pids],
      );
      return rows[0].n === 24;
    },
    10_000,
    'all 24 enqueuers to wait on the first transaction',
  );
  await first.query('ROLLBACK');
  const ids = await results;

  const { rows } = await h.pool.query(`SELECT id::text FROM stepping.jobs WHERE key = $1`, [key]);
  assert.equal(rows.length, 1, 'exactly one job holds the key');
  const winner = rows[0].id as string;
  assert.notEqual(winner, rolledBackId);
  assert.ok(
    ids.every((id) => id === winner),
    'every enqueuer got the one surviving job id',
  );
  const steps = await h.pool.query(`SELECT count(*)::int AS n FROM stepping.steps WHERE job_id = $1`, [
    winner,
  ]);
  assert.equal(steps.rows[0].n, 1);
});

test('duplicate keys inside one bulk enqueue collapse onto the first', async () => {
  const result = await h.stepping.enqueueMany(undefined, [
    { steps: [noop({ n: 1 })], options: { key: 'bulk:1', queue: 'nobody-serves-this' } },
    { steps: [noop({ n: 2 })], options: { key: 'bulk:1', queue: 'nobody-serves-this' } },
    { steps: [noop({ n: 3 })], options: { key: 'bulk:2', queue: 'nobody-serves-this' } },
  ]);
  assert.equal(result[0]!.jobId, result[1]!.jobId);
  assert.deepEqual(
    result.map((r) => r.created),
    [true, false, true],
  );
});
