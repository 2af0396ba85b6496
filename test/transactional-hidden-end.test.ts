/**
 * A transactional handler that ends the worker's transaction where ctx.tx cannot see it (a
 * COMMIT hidden after another statement, then BEGIN) and then hits a SQL error: what it
 * wrote before the COMMIT is committed, so the step must fail for good, never run again.
 * And a handler that makes its transaction READ ONLY: its success is still reported.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep, type Worker } from '../src/index.js';
import { deferred, setup } from './support/harness.js';

const h = await setup(import.meta.url);
await h.pool.query('CREATE TABLE hidden_end (mode text NOT NULL, attempt int NOT NULL)');

/** Resolves with the first step:failed event that is not followed by a retry. */
function finalFailure(w: Worker): Promise<{ message: string; attempt: number }> {
  const done = deferred<{ message: string; attempt: number }>();
  w.on('step:failed', (e) => {
    if (e.outcome !== 'retry') done.resolve({ message: e.error.message, attempt: e.attempt });
  });
  return done.promise;
}

for (const [mode, statements] of [
  ['separate', ['INSERT INTO hidden_end VALUES ($mode, $attempt); COMMIT; BEGIN', 'SELECT 1/0']],
  ['one string', ['INSERT INTO hidden_end VALUES ($mode, $attempt); COMMIT; BEGIN; SELECT 1/0']],
  [
    'rollback, autocommit',
    ['SELECT 1; ROLLBACK; INSERT INTO hidden_end VALUES ($mode, $attempt)', 'BEGIN', 'SELECT 1/0'],
  ],
] as const) {
  test(
    `a hidden COMMIT followed by a SQL error fails the step for good (${mode})`,
    { timeout: 120_000 },
    async (t) => {
      const queue = `hidden_${mode.replace(/\W+/g, '_')}`;
      const step = defineStep(
        `hidden_end.${queue}`,
        async (_args: unknown, ctx) => {
          for (const text of statements) {
            await ctx.tx!.query(text.replace('$mode', `'${mode}'`).replace('$attempt', String(ctx.attempt)));
          }
        },
        { transactional: true, maxAttempts: 3, backoff: { baseMs: 10, maxMs: 10 } },
      );
      const w = await h.worker({ steps: [step], queues: [queue], pollIntervalMs: 100 }, t);
      const failed = finalFailure(w);
      await h.stepping.enqueue([step(null)], { queue });
      const { message, attempt } = await failed;
      const { rows } = await h.pool.query<{ attempt: number }>(
        'SELECT attempt FROM hidden_end WHERE mode = $1 ORDER BY attempt',
        [mode],
      );
      assert.deepEqual(
        rows.map((r) => r.attempt),
        [1],
        `the step ran again after committing (final failure at attempt ${attempt}: ${message})`,
      );
      assert.equal(attempt, 1);
      assert.match(message, /ended the worker's transaction/);
    },
  );
}

test(
  'a transactional handler that makes its transaction READ ONLY succeeds',
  { timeout: 120_000 },
  async (t) => {
    const readOnly = defineStep(
      'hidden_end.read_only',
      async (_args: unknown, ctx) => {
        await ctx.tx!.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ ONLY');
        const { rows } = await ctx.tx!.query<{ v: number }>('SELECT 41 + 1 AS v');
        return rows[0]!.v;
      },
      { transactional: true, maxAttempts: 1 },
    );
    const w = await h.worker({ steps: [readOnly], queues: ['hidden_ro'], pollIntervalMs: 100 }, t);
    const ended = deferred<string>();
    w.on('step:succeeded', () => ended.resolve('succeeded'));
    w.on('step:failed', (e) => ended.resolve(`failed: ${e.error.message}`));
    const id = await h.stepping.enqueue([readOnly(null)], { queue: 'hidden_ro' });
    assert.equal(await ended.promise, 'succeeded');
    const { rows } = await h.pool.query<{ result: unknown }>(
      'SELECT result FROM stepping.steps WHERE job_id = $1',
      [id],
    );
    assert.deepEqual(rows[0]?.result, 42);
  },
);

test(
  'a handler that writes and then makes its transaction READ ONLY fails for good, its writes rolled back',
  { timeout: 120_000 },
  async (t) => {
    // PostgreSQL allows READ ONLY after writes: committing such a transaction before the
    // report (as for one that wrote nothing) would commit its writes without the step.
    const late = defineStep(
      'hidden_end.late_read_only',
      async (_args: unknown, ctx) => {
        await ctx.tx!.query(`INSERT INTO hidden_end VALUES ('late read only', ${ctx.attempt})`);
        await ctx.tx!.query('SET TRANSACTION READ ONLY');
      },
      { transactional: true, maxAttempts: 3, backoff: { baseMs: 10, maxMs: 10 } },
    );
    const w = await h.worker({ steps: [late], queues: ['hidden_late_ro'], pollIntervalMs: 100 }, t);
    const ended = deferred<string>();
    void finalFailure(w).then(({ message, attempt }) =>
      ended.resolve(`failed at attempt ${attempt}: ${message}`),
    );
    w.on('step:succeeded', () => ended.resolve('succeeded'));
    await h.stepping.enqueue([late(null)], { queue: 'hidden_late_ro' });
    assert.match(await ended.promise, /^failed at attempt 1: .*READ ONLY after writing/);
    const { rows } = await h.pool.query(`SELECT 1 FROM hidden_end WHERE mode = 'late read only'`);
    assert.equal(rows.length, 0);
  },
);
