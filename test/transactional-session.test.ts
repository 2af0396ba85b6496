/**
 * Session state a transactional handler leaves behind through ctx.tx beyond settings and
 * roles: a changed session authorization, cursors declared WITH HOLD and statements made
 * with SQL PREPARE all survive the step's COMMIT. None of it may outlive the attempt on
 * the pooled connection, or break the step's own report.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep } from '../src/index.js';
import { deferred, setup } from './support/harness.js';
import { loginRole } from './support/login-role.js';

const h = await setup(import.meta.url);

test(
  'SET SESSION AUTHORIZATION through ctx.tx neither fails the report nor outlives the attempt',
  { timeout: 120_000 },
  async (t) => {
    // A role with no right at all on the engine: the step's report must not run as it.
    const other = decodeURIComponent(new URL(await loginRole(h.url, [], 'sessauth')).username);
    const { rows: login } = await h.pool.query<{ user: string }>('SELECT session_user AS user');
    const become = defineStep(
      'session.become',
      async (args: { role: string }, ctx) => {
        await ctx.tx!.query(`SET SESSION AUTHORIZATION "${args.role}"`);
        const { rows } = await ctx.tx!.query<{ user: string }>('SELECT session_user AS user');
        return rows[0]!.user;
      },
      { transactional: true, maxAttempts: 1 },
    );
    const who = defineStep(
      'session.who',
      async (_args: unknown, ctx) => {
        const { rows } = await ctx.tx!.query<{ user: string }>('SELECT session_user AS user');
        return rows[0]!.user;
      },
      { transactional: true, maxAttempts: 1 },
    );
    const w = await h.worker(
      { steps: [become, who], queues: ['sessauth'], pollIntervalMs: 100, poolSize: 2 },
      t,
    );
    const first = await h.stepping.enqueue([become({ role: other })], { queue: 'sessauth' });
    const done = await h.stepping.waitForJob(first, { timeoutMs: 20_000 });
    assert.equal(done.status, 'succeeded', done.lastError ?? '');
    assert.equal((await h.stepping.steps(first))[0]!.result, other, 'the handler ran as the role it chose');
    for (let n = 0; n < 10; n++) {
      const id = await h.stepping.enqueue([who(null)], { queue: 'sessauth' });
      const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
      assert.equal(final.status, 'succeeded', final.lastError ?? '');
      assert.equal(
        (await h.stepping.steps(id))[0]!.result,
        login[0]!.user,
        'the next attempt runs as the login',
      );
    }
    await w.stop();
  },
);

test(
  'cursors WITH HOLD and SQL PREPARE through ctx.tx do not outlive the attempt, failed or not',
  { timeout: 120_000 },
  async (t) => {
    const leave = defineStep(
      'session.leave',
      async (_args: unknown, ctx) => {
        const tx = ctx.tx!;
        const { rows } = await tx.query<{ cursors: number; statements: number }>(
          `SELECT (SELECT count(*)::int FROM pg_cursors) AS cursors,
                  (SELECT count(*)::int FROM pg_prepared_statements WHERE from_sql) AS statements`,
        );
        // The same names every attempt: left over from an earlier attempt, they would clash.
        await tx.query('DECLARE session_cursor CURSOR WITH HOLD FOR SELECT 1');
        await tx.query('PREPARE session_statement AS SELECT 1');
        return rows[0];
      },
      { transactional: true, maxAttempts: 1 },
    );
    // A statement that fails leaves the transaction aborted: it is only rolled back. ROLLBACK
    // drops a cursor WITH HOLD, but not a PREPAREd statement.
    const failing = defineStep(
      'session.leave-and-fail',
      async (_args: unknown, ctx) => {
        await ctx.tx!.query('PREPARE session_statement AS SELECT 1');
        await ctx.tx!.query('SELECT 1 / 0');
      },
      { transactional: true, maxAttempts: 1 },
    );
    const w = await h.worker(
      { steps: [leave, failing], queues: ['leftovers'], pollIntervalMs: 100, poolSize: 2 },
      t,
    );
    for (let n = 0; n < 10; n++) {
      const failed = await h.stepping.enqueue([failing(null)], { queue: 'leftovers' });
      assert.equal((await h.stepping.waitForJob(failed, { timeoutMs: 20_000 })).status, 'failed');
      const id = await h.stepping.enqueue([leave(null)], { queue: 'leftovers' });
      const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
      assert.equal(final.status, 'succeeded', final.lastError ?? '');
      assert.deepEqual((await h.stepping.steps(id))[0]!.result, { cursors: 0, statements: 0 });
    }
    await w.stop();
  },
);

test(
  'listeners a transactional handler adds to ctx.tx do not stay on the pooled connection',
  { timeout: 120_000 },
  async (t) => {
    const heard: string[] = [];
    const step = defineStep(
      'session.notices',
      async (args: { n: number }, ctx) => {
        const tx = ctx.tx!;
        const before = tx.listenerCount('notice');
        // Logs the notices of its own SQL: a common thing to do with a client.
        tx.on('notice', (notice: { message?: string }) => heard.push(`${args.n}: ${notice.message}`));
        await tx.query(`DO $$ BEGIN RAISE NOTICE 'note %', ${args.n}; END $$`);
        return before;
      },
      { transactional: true, maxAttempts: 1 },
    );
    const w = await h.worker({ steps: [step], queues: ['notices'], pollIntervalMs: 100, poolSize: 2 }, t);
    const counts: unknown[] = [];
    for (let n = 0; n < 10; n++) {
      const id = await h.stepping.enqueue([step({ n })], { queue: 'notices' });
      const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
      assert.equal(final.status, 'succeeded', final.lastError ?? '');
      counts.push((await h.stepping.steps(id))[0]!.result);
    }
    assert.deepEqual(counts, Array(10).fill(counts[0]), 'no listener of an earlier attempt was still there');
    assert.deepEqual(
      heard,
      Array.from({ length: 10 }, (_, n) => `${n}: note ${n}`),
      'each listener heard its own attempt only',
    );
    await w.stop();
  },
);

test(
  'a type parser set on ctx.tx changes neither the worker’s engine calls nor later steps',
  { timeout: 120_000 },
  async (t) => {
    const refused: string[] = [];
    const parse = defineStep(
      'session.type-parser',
      async (_args: unknown, ctx) => {
        try {
          // jsonb as text: the worker's claims and reports read jsonb on these connections.
          ctx.tx!.setTypeParser(3802, (text: string) => text);
        } catch (error) {
          refused.push((error as Error).message);
        }
        await ctx.tx!.query('SELECT 1');
      },
      { transactional: true, maxAttempts: 1 },
    );
    const echo = defineStep('session.echo', (args: { n: number }) => {
      if (typeof args !== 'object') throw new Error(`args arrived as ${typeof args}`);
      return args.n;
    });
    const w = await h.worker(
      { steps: [parse, echo], queues: ['types'], pollIntervalMs: 100, poolSize: 2 },
      t,
    );
    for (let n = 0; n < 5; n++) {
      const id = await h.stepping.enqueue([parse(null), echo({ n }), echo({ n: n + 1 })], { queue: 'types' });
      const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
      assert.equal(final.status, 'succeeded', final.lastError ?? '');
      assert.deepEqual(
        (await h.stepping.steps(id)).map((s) => s.result),
        [undefined, n, n + 1],
      );
    }
    assert.equal(refused.length, 5);
    for (const message of refused) assert.match(message, /setTypeParser/);
    await w.stop();
  },
);

test(
  'a ctx.tx query whose promise nobody awaits cannot end the worker process when it fails',
  { timeout: 120_000 },
  async (t) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    t.after(() => process.off('unhandledRejection', onUnhandled));
    const later = deferred<void>();
    const step = defineStep(
      'session.forgot-await',
      async (_args: unknown, ctx) => {
        const tx = ctx.tx!;
        // A forgotten await on a statement that fails...
        void tx.query('SELECT 1 / 0');
        // ...and one sent from a timer after the attempt ended (refused).
        setTimeout(() => {
          void tx.query('SELECT 1');
          later.resolve();
        }, 50);
      },
      { transactional: true, maxAttempts: 1 },
    );
    const ok = defineStep('session.after-forgot', () => 'fine');
    const w = await h.worker({ steps: [step, ok], queues: ['forgot'], pollIntervalMs: 100 }, t);
    const id = await h.stepping.enqueue([step(null)], { queue: 'forgot' });
    const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
    assert.equal(final.status, 'failed');
    assert.match(final.lastError ?? '', /a statement in its transaction had failed/);
    await later.promise;
    const next = await h.stepping.enqueue([ok(null)], { queue: 'forgot' });
    assert.equal((await h.stepping.waitForJob(next, { timeoutMs: 20_000 })).status, 'succeeded');
    // Unhandled rejections are reported after a turn of the event loop: let one pass.
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, [], 'no rejection of a ctx.tx query went unhandled');
    await w.stop();
  },
);
