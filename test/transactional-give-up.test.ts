/**
 * A transactional attempt given up while a statement of its handler still runs (timeout,
 * stop after gracefulStopMs): PostgreSQL does not notice a closed socket while a statement
 * runs, so destroying the connection alone would leave its session running and holding the
 * row locks its handler took. The worker ends that session before it reports the attempt
 * (and before stop() returns). Also: ctx.tx cannot take the worker's own 'error' listener
 * off the connection.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep } from '../src/index.js';
import { deferred, eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
await h.pool.query('CREATE TABLE give_up (id int PRIMARY KEY, n int NOT NULL)');
await h.pool.query('INSERT INTO give_up VALUES (1, 0), (2, 0), (3, 0)');

/** The sessions still running the handler's sleep (a marker in its text). */
async function sleepers(marker: string): Promise<number> {
  const { rows } = await h.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE $1`,
    [`%${marker}%`],
  );
  return rows[0]!.n;
}

/** True when row `id` can be locked at once (no session holds it). */
async function rowFree(id: number): Promise<boolean> {
  const c = await h.pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT 1 FROM give_up WHERE id = $1 FOR UPDATE NOWAIT', [id]);
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === '55P03') return false;
    throw error;
  } finally {
    await c.query('ROLLBACK').catch(() => {});
    c.release();
  }
}

test(
  'a transactional step timed out inside a query has its session ended before its failure is reported',
  { timeout: 120_000 },
  async (t) => {
    const slow = defineStep(
      'give_up.timeout',
      async (_args: unknown, ctx) => {
        await ctx.tx!.query('UPDATE give_up SET n = n + 1 WHERE id = 1');
        await ctx.tx!.query('SELECT pg_sleep(60) /* give_up_timeout */');
      },
      { transactional: true, timeoutMs: 500, maxAttempts: 1 },
    );
    const w = await h.worker({ steps: [slow], queues: ['give_up_timeout'], pollIntervalMs: 100 }, t);
    const failed = deferred<string>();
    w.on('step:failed', (e) => failed.resolve(e.error.message));
    await h.stepping.enqueue([slow(null)], { queue: 'give_up_timeout' });
    assert.match(await failed.promise, /timed out after 500 ms/);
    assert.equal(await sleepers('give_up_timeout'), 0, 'the timed-out statement still runs on the server');
    assert.equal(await rowFree(1), true, 'the timed-out session still holds its row lock');
  },
);

test(
  'stop() does not return while a transactional handler it gave up still runs a statement',
  { timeout: 120_000 },
  async () => {
    const slow = defineStep(
      'give_up.stop',
      async (_args: unknown, ctx) => {
        await ctx.tx!.query('UPDATE give_up SET n = n + 1 WHERE id = 2');
        await ctx.tx!.query('SELECT pg_sleep(60) /* give_up_stop */');
      },
      { transactional: true, maxAttempts: 2 },
    );
    const w = await h.worker({
      steps: [slow],
      queues: ['give_up_stop'],
      pollIntervalMs: 100,
      gracefulStopMs: 200,
    });
    await h.stepping.enqueue([slow(null)], { queue: 'give_up_stop' });
    await eventually(async () => (await sleepers('give_up_stop')) === 1, 30_000, 'the handler to sleep');
    await w.stop();
    assert.equal(await sleepers('give_up_stop'), 0, 'the given-up statement still runs after stop()');
    assert.equal(await rowFree(2), true, 'the given-up session still holds its row lock after stop()');
  },
);

test(
  "ctx.tx.removeAllListeners() and off() leave the worker's 'error' listener on the connection",
  { timeout: 120_000 },
  async (t) => {
    const counts: number[] = [];
    const stripped = defineStep(
      'give_up.listeners',
      async (_args: unknown, ctx) => {
        const tx = ctx.tx!;
        for (const listener of tx.listeners('error')) tx.off('error', listener as () => void);
        tx.removeAllListeners('error');
        tx.removeAllListeners();
        counts.push(tx.listenerCount('error'));
        if (ctx.attempt === 1) await tx.query('SELECT pg_sleep(60) /* give_up_listeners */');
      },
      { transactional: true },
    );
    const w = await h.worker({ steps: [stripped], queues: ['give_up_listeners'], pollIntervalMs: 100 }, t);
    const succeeded = deferred();
    w.on('step:succeeded', () => succeeded.resolve());
    await h.stepping.enqueue([stripped(null)], { queue: 'give_up_listeners' });
    await eventually(async () => (await sleepers('give_up_listeners')) === 1, 30_000, 'the handler to sleep');
    // The server ends the connection under the handler: without a listener, an unhandled
    // 'error' event would end this process.
    await h.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%give_up_listeners%'`,
    );
    await succeeded.promise;
    assert.ok(
      counts.every((n) => n >= 1),
      `the worker's 'error' listener was removed by the handler (listeners left: ${counts.join(', ')})`,
    );
  },
);
