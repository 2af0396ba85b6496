import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';

import { defineStep, DuplicateJobError, EnqueueValidationError, MAX_JSON_BYTES } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
const noop = defineStep('noop', async () => {});

async function jobCount(): Promise<number> {
  return Number((await h.pool.query('SELECT count(*)::int AS n FROM stepping.jobs')).rows[0].n);
}

test('commit makes the job exist; rollback leaves no job and no step row', async () => {
  const c = await h.client();
  await c.query('BEGIN');
  await h.stepping.enqueue(c, [noop({}), noop({})], { queue: 'rolled' });
  await c.query('ROLLBACK');
  const rolled = await h.pool.query(`SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = 'rolled'`);
  assert.equal(rolled.rows[0].n, 0);
  const steps = await h.pool.query(`SELECT count(*)::int AS n FROM stepping.steps s
                                    WHERE NOT EXISTS (SELECT 1 FROM stepping.jobs j WHERE j.id = s.job_id)`);
  assert.equal(steps.rows[0].n, 0);

  await c.query('BEGIN');
  const id = await h.stepping.enqueue(c, [noop({}), noop({ b: 1 })], { queue: 'committed' });
  // Not visible to others before commit.
  const before = await h.pool.query('SELECT count(*)::int AS n FROM stepping.jobs WHERE id = $1', [id]);
  assert.equal(before.rows[0].n, 0);
  await c.query('COMMIT');
  const job = await h.stepping.getJob(id);
  assert.equal(job?.status, 'pending');
  assert.equal(job?.stepCount, 2);
});

test('enqueue through a Kysely transaction commits and rolls back with it', async () => {
  const db = new Kysely<Record<string, never>>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: h.url, max: 2 }) }),
  });
  try {
    const id = await db
      .transaction()
      .execute(async (trx) => h.stepping.enqueue(trx, [noop({ k: 1 })], { queue: 'ky' }));
    assert.equal((await h.stepping.getJob(id))?.status, 'pending');
    await assert.rejects(
      db.transaction().execute(async (trx) => {
        await h.stepping.enqueue(trx, [noop({ k: 2 })], { queue: 'ky-rolled' });
        throw new Error('business rule failed');
      }),
      /business rule failed/,
    );
    const n = await h.pool.query(`SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = 'ky-rolled'`);
    assert.equal(n.rows[0].n, 0);
  } finally {
    await db.destroy();
  }
});

test('enqueue without a transaction commits at once; plain { name, args } objects work', async () => {
  const id = await h.stepping.enqueue([{ name: 'remote.thing', args: { a: [1, 2, { b: null }] } }]);
  const { rows } = await h.pool.query('SELECT name, args FROM stepping.steps WHERE job_id = $1', [id]);
  assert.deepEqual(rows, [{ name: 'remote.thing', args: { a: [1, 2, { b: null }] } }]);
});

test('bad input throws EnqueueValidationError before any SQL, and the transaction still commits', async () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const big = 'x'.repeat(MAX_JSON_BYTES + 1);
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    ['no steps', () => h.stepping.enqueue(c, []), /at least one step/],
    [
      'empty name',
      () => h.stepping.enqueue(c, [{ name: '', args: {} }]),
      /name must be a string of 1 to 200/,
    ],
    [
      'long name',
      () => h.stepping.enqueue(c, [{ name: 'n'.repeat(201), args: {} }]),
      /name must be a string of 1 to 200/,
    ],
    ['BigInt', () => h.stepping.enqueue(c, [noop({ n: 10n })]), /BigInt/],
    ['cycle', () => h.stepping.enqueue(c, [noop(cyclic)]), /cycle/],
    ['function', () => h.stepping.enqueue(c, [noop({ f: () => 1 })]), /function/],
    ['NUL in string', () => h.stepping.enqueue(c, [noop({ s: 'a\u0000b' })]), /\\u0000/],
    ['NUL in key', () => h.stepping.enqueue(c, [noop({ ['k\u0000']: 1 })]), /\\u0000/],
    ['NaN', () => h.stepping.enqueue(c, [noop({ n: NaN })]), /NaN/],
    ['too big', () => h.stepping.enqueue(c, [noop({ big })]), /over the limit/],
    [
      'unknown option',
      () => h.stepping.enqueue(c, [noop({})], { qeueu: 'x' } as never),
      /unknown enqueue option "qeueu"/,
    ],
    ['bad priority', () => h.stepping.enqueue(c, [noop({})], { priority: 1.5 }), /priority/],
    ['bad runAt', () => h.stepping.enqueue(c, [noop({})], { runAt: new Date('nope') }), /runAt/],
    ['bad maxAttempts', () => h.stepping.enqueue(c, [noop({})], { maxAttempts: 0 }), /maxAttempts/],
    ['definition not call', () => h.stepping.enqueue(c, [noop as never]), /step definition, not a call/],
  ];
  const c = await h.client();
  await c.query('BEGIN');
  await c.query(
    `INSERT INTO stepping.jobs (queue, step_count, step_name, available_at) VALUES ('marker', 1, 'x', now())`,
  );
  for (const [what, run, message] of cases) {
    await assert.rejects(run, (e: unknown) => {
      assert.ok(
        e instanceof EnqueueValidationError,
        `${what}: expected EnqueueValidationError, got ${String(e)}`,
      );
      assert.match((e as Error).message, message, what);
      return true;
    });
  }
  // The transaction was never touched by the rejected calls: it still works and commits.
  const id = await h.stepping.enqueue(c, [noop({ ok: true })], { queue: 'after-errors' });
  await c.query('COMMIT');
  assert.equal((await h.stepping.getJob(id))?.queue, 'after-errors');
  const marker = await h.pool.query(`SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = 'marker'`);
  assert.equal(marker.rows[0].n, 1);
});

test('enqueueMany inserts all jobs in one call, in order', async () => {
  const before = await jobCount();
  const result = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 300 }, (_, i) => ({
      steps: [noop({ i }), noop({ i, second: true })],
      options: { priority: i % 3 },
    })),
  );
  assert.equal(result.length, 300);
  assert.ok(result.every((r) => r.created));
  assert.equal(await jobCount(), before + 300);
  const { rows } = await h.pool.query(
    `SELECT j.id, s.args->>'i' AS i FROM stepping.jobs j JOIN stepping.steps s ON s.job_id = j.id AND s.idx = 0
     WHERE j.id = ANY($1::bigint[])`,
    [result.map((r) => r.jobId)],
  );
  const byId = new Map(rows.map((r) => [String(r.id), Number(r.i)]));
  result.forEach((r, i) => assert.equal(byId.get(r.jobId), i));
});

test('the SQL functions refuse bad input themselves (for psql and other clients), with clear errors', async () => {
  const cases: [string, RegExp][] = [
    [`SELECT stepping.job_enqueue('[]')`, /job 0: steps must be an array of 1 to 1000 steps/],
    [`SELECT stepping.job_enqueue('{"name":"x"}')`, /job 0: steps must be an array of 1 to 1000 steps/],
    [`SELECT stepping.job_enqueue_batch('{"steps":[]}')`, /p_jobs must be a JSON array/],
    [`SELECT stepping.job_enqueue('[{"name":""}]')`, /job 0 step 0: name must be a string of 1 to 200/],
    [`SELECT stepping.job_enqueue('[{"args":{}}]')`, /job 0 step 0: name must be a string of 1 to 200/],
    [
      `SELECT stepping.job_enqueue('[{"name":"x"}]', p_on_duplicate => 'maybe')`,
      /job 0: on_duplicate must be "return" or "error"/,
    ],
    [`SELECT stepping.step_claim('w', ARRAY['x'], NULL, 0, 1000)`, /p_limit from 1 to/],
  ];
  for (const [sql, message] of cases) {
    await assert.rejects(h.pool.query(sql), (e: unknown) => {
      assert.match((e as Error).message, message, sql);
      return true;
    });
  }
  const ok = await h.pool.query(
    `SELECT stepping.job_enqueue('[{"name":"psql.step","args":{"a":1}}]', 'psql') AS id`,
  );
  assert.equal((await h.stepping.getJob(String(ok.rows[0].id)))?.queue, 'psql');
});

test(
  'enqueueMany through a pg Pool is atomic: a refused duplicate inserts none of the batch',
  { timeout: 60_000 },
  async () => {
    // Before: each statement through a Pool commits at once, so the batch's other jobs were
    // committed while DuplicateJobError told the caller to roll back a transaction it did
    // not have. Passing undefined (Stepping's own pool) was atomic; passing a Pool was not.
    const held = await h.stepping.enqueue([noop({})], { queue: 'pool-dup', key: 'pool-dup-held' });
    const pool = new pg.Pool({ connectionString: h.url, max: 2 });
    try {
      await assert.rejects(
        h.stepping.enqueueMany(pool, [
          { steps: [noop({ n: 1 })], options: { queue: 'pool-dup' } },
          {
            steps: [noop({ n: 2 })],
            options: { queue: 'pool-dup', key: 'pool-dup-held', onDuplicate: 'error' },
          },
          { steps: [noop({ n: 3 })], options: { queue: 'pool-dup' } },
        ]),
        (e: unknown) =>
          e instanceof DuplicateJobError &&
          e.existingJobId === held &&
          /; nothing was enqueued by this call$/.test(e.message),
      );
      const { rows } = await h.pool.query(`SELECT id::text FROM stepping.jobs WHERE queue = 'pool-dup'`);
      assert.deepEqual(
        rows.map((r) => r.id),
        [held],
        'only the job holding the key exists',
      );
      // And a Pool still enqueues, committed at once.
      const [made] = await h.stepping.enqueueMany(pool, [
        { steps: [noop({})], options: { queue: 'pool-dup' } },
      ]);
      assert.equal((await h.stepping.getJob(made!.jobId))?.status, 'pending');
    } finally {
      await pool.end();
    }
  },
);
