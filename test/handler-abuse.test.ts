/**
 * Handlers as a careless or hostile author writes them: they end the worker's transaction,
 * throw values that cannot be read, touch ctx.tx after their attempt ended, commit writes
 * the database refuses, ignore their abort signal, crash the process on every attempt,
 * mutate their args, or compensate transactionally. None of it may commit what was rolled
 * back, stop the worker, hang its stop, loop forever or undo with the wrong args.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep, PermanentError } from '../src/index.js';
import { start, trackChildren, within } from './fixtures/processes.js';
import { deferred, eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();
await h.pool.query(`
  CREATE TABLE abuse_log (entry text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
  CREATE TABLE abuse_ledger (entry text NOT NULL);
  CREATE TABLE abuse_parent (id int PRIMARY KEY);
  CREATE TABLE abuse_child (parent int NOT NULL
    REFERENCES abuse_parent (id) DEFERRABLE INITIALLY DEFERRED);
`);

const fast = { backoff: { baseMs: 10, maxMs: 20 } };

async function ledger(): Promise<string[]> {
  const { rows } = await h.pool.query('SELECT entry FROM abuse_ledger ORDER BY entry');
  return rows.map((r: { entry: string }) => r.entry);
}

async function logged(prefix: string): Promise<string[]> {
  const { rows } = await h.pool.query(
    `SELECT entry FROM abuse_log WHERE entry LIKE $1 || '%' ORDER BY at, entry`,
    [prefix],
  );
  return rows.map((r: { entry: string }) => r.entry);
}

test('ctx.tx refuses COMMIT, ROLLBACK and the like: the attempt writes only inside its own transaction', async (t) => {
  const refused: string[] = [];
  const ran: string[] = [];
  const step = defineStep(
    'abuse.commit',
    async (_args: unknown, ctx) => {
      const tx = ctx.tx!;
      await tx.query('INSERT INTO abuse_ledger (entry) VALUES ($1)', [`sneaky ${ctx.attempt}`]);
      // Savepoints are the handler's to use.
      await tx.query('SAVEPOINT s1');
      await tx.query(`INSERT INTO abuse_ledger (entry) VALUES ('rolled back to s1')`);
      await tx.query('ROLLBACK TO SAVEPOINT s1');
      await tx.query('RELEASE SAVEPOINT s1');
      if (ctx.attempt === 1) {
        for (const sql of [
          'COMMIT',
          ' commit;',
          '/* hidden */ END',
          '-- a comment\nROLLBACK',
          'abort',
          'COMMIT AND CHAIN',
          `PREPARE TRANSACTION 'x'`,
        ]) {
          try {
            await tx.query(sql);
            ran.push(sql);
          } catch (error) {
            refused.push((error as Error).message);
          }
        }
        await tx.query({ text: 'COMMIT' }).then(
          () => ran.push('{ text: COMMIT }'),
          (error: Error) => refused.push(error.message),
        );
        // Callback style: the refusal reaches the callback, nothing is thrown at the caller.
        const called = deferred<Error | null>();
        (tx.query as unknown as (sql: string, cb: (e: Error | null) => void) => void)('COMMIT', (e) =>
          called.resolve(e),
        );
        const viaCallback = await called.promise;
        if (viaCallback) refused.push(viaCallback.message);
        else ran.push('COMMIT (callback)');
        throw new Error('the first attempt fails after its write');
      }
    },
    { transactional: true, ...fast },
  );
  const w = await h.worker({ steps: [step], queues: ['commit'], pollIntervalMs: 100 }, t);
  const id = await h.stepping.enqueue([step(null)], { queue: 'commit' });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'succeeded', final.lastError ?? '');
  assert.deepEqual(ran, [], 'no transaction-control statement ran');
  assert.equal(refused.length, 9);
  for (const message of refused)
    assert.match(message, /ctx\.tx cannot run (COMMIT|END|ROLLBACK|ABORT|PREPARE)/i);
  assert.deepEqual(await ledger(), ['sneaky 2'], "the failed attempt's write was rolled back");
  await h.pool.query('DELETE FROM abuse_ledger');
  await w.stop();
});

test("a handler that ends the worker's transaction anyway fails for good and is never run again", async (t) => {
  const step = defineStep(
    'abuse.sneaky-commit',
    async (args: { sql: string }, ctx) => {
      // Several statements in one string: the first is not transaction control, so only
      // what the transaction turned into afterwards can tell.
      await ctx.tx!.query(args.sql);
    },
    { transactional: true, ...fast },
  );
  const w = await h.worker({ steps: [step], queues: ['sneaky'], pollIntervalMs: 100 }, t);
  const ids = [
    await h.stepping.enqueue([step({ sql: `INSERT INTO abuse_ledger VALUES ('sneaky a'); COMMIT; BEGIN` })], {
      queue: 'sneaky',
    }),
    await h.stepping.enqueue([step({ sql: `INSERT INTO abuse_ledger VALUES ('sneaky b'); COMMIT` })], {
      queue: 'sneaky',
    }),
    await h.stepping.enqueue([step({ sql: `SELECT 1; ROLLBACK` })], { queue: 'sneaky' }),
  ];
  for (const id of ids) {
    const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
    assert.equal(final.status, 'failed');
    assert.match(final.lastError ?? '', /ended the worker's transaction/);
    assert.equal((await h.stepping.steps(id))[0]!.attempts, 1, 'not run again');
  }
  // What it committed itself stays committed: the engine says so rather than retrying it.
  assert.deepEqual(await ledger(), ['sneaky a', 'sneaky b']);
  await h.pool.query('DELETE FROM abuse_ledger');
  await w.stop();
});

test('thrown values that cannot be read fail the attempt; the worker goes on', async (t) => {
  const revocable = Proxy.revocable({}, {});
  revocable.revoke();
  const throwing = new Proxy(
    {},
    {
      get() {
        throw new Error('trap: get');
      },
      getPrototypeOf() {
        throw new Error('trap: getPrototypeOf');
      },
      has() {
        throw new Error('trap: has');
      },
      ownKeys() {
        throw new Error('trap: ownKeys');
      },
      getOwnPropertyDescriptor() {
        throw new Error('trap: getOwnPropertyDescriptor');
      },
    },
  );
  const badName = new Error('bad name');
  Object.defineProperty(badName, 'name', {
    get() {
      throw new Error('trap: name');
    },
  });
  const values: Record<string, unknown> = { revoked: revocable.proxy, throwing, badName };
  const step = defineStep(
    'abuse.throw',
    (args: { kind: string }) => {
      throw values[args.kind];
    },
    { maxAttempts: 1 },
  );
  const ok = defineStep('abuse.ok', () => 'fine');
  const w = await h.worker({ steps: [step, ok], queues: ['throw'], pollIntervalMs: 100 }, t);
  for (const kind of Object.keys(values)) {
    const id = await h.stepping.enqueue([step({ kind })], { queue: 'throw' });
    const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
    assert.equal(final.status, 'failed', kind);
    assert.ok(final.lastError, `${kind}: an error is stored`);
  }
  const id = await h.stepping.enqueue([ok(null)], { queue: 'throw' });
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 20_000 })).status, 'succeeded');
  await w.stop();
});

test('ctx.tx used from a timer after a timeout rejects; nothing is thrown at the caller', async (t) => {
  const late = deferred<string>();
  const step = defineStep(
    'abuse.late-tx',
    async (_args: unknown, ctx) => {
      const tx = ctx.tx!;
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      setTimeout(() => {
        try {
          tx.query('SELECT 1').then(
            () => late.resolve('ran'),
            (error: Error) => late.resolve(`rejected: ${error.message}`),
          );
        } catch (error) {
          late.resolve(`thrown: ${(error as Error).message}`);
        }
      }, 20);
      if (ctx.attempt === 1) throw new Error('stopped');
    },
    { transactional: true, timeoutMs: 300, maxAttempts: 1 },
  );
  const w = await h.worker({ steps: [step], queues: ['late'], pollIntervalMs: 100 }, t);
  const id = await h.stepping.enqueue([step(null)], { queue: 'late' });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'failed');
  assert.match(final.lastError ?? '', /timed out/);
  assert.match(await late.promise, /^rejected: .*after its attempt ended/);
  await w.stop();
});

test('a transactional write the database refuses at COMMIT is a failed attempt, retried', async (t) => {
  const failures: string[] = [];
  const step = defineStep(
    'abuse.deferred-fk',
    async (_args: unknown, ctx) => {
      // The foreign key is checked at COMMIT only: the first attempt's commit is refused.
      if (ctx.attempt > 1) await ctx.tx!.query('INSERT INTO abuse_parent (id) VALUES (7)');
      await ctx.tx!.query('INSERT INTO abuse_child (parent) VALUES (7)');
      return ctx.attempt;
    },
    { transactional: true, ...fast },
  );
  const w = await h.worker({ steps: [step], queues: ['fk'], pollIntervalMs: 100 }, t);
  w.on('step:failed', (e) => failures.push(e.error.message));
  const id = await h.stepping.enqueue([step(null)], { queue: 'fk' });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'succeeded', final.lastError ?? '');
  const [state] = await h.stepping.steps(id);
  assert.equal(state!.attempts, 2);
  assert.equal(state!.result, 2);
  assert.equal(failures.length, 1);
  assert.match(failures[0]!, /could not commit.*foreign key/);
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM abuse_child');
  assert.equal(rows[0].n, 1);
  await w.stop();
});

test('stop() ends even when a transactional handler ignores its abort signal; its writes are rolled back', async (t) => {
  const inside = deferred();
  const step = defineStep(
    'abuse.deaf',
    async (_args: unknown, ctx) => {
      await ctx.tx!.query(`INSERT INTO abuse_ledger (entry) VALUES ('deaf')`);
      inside.resolve();
      await new Promise<never>(() => {});
    },
    { transactional: true },
  );
  const w = await h.worker({ steps: [step], queues: ['deaf'], pollIntervalMs: 100, gracefulStopMs: 200 }, t);
  const id = await h.stepping.enqueue([step(null)], { queue: 'deaf' });
  await inside.promise;
  await within(w.stop(), 30_000, 'stop() of a worker whose transactional handler never returns');
  assert.deepEqual(await ledger(), []);
  const [state] = await h.stepping.steps(id);
  assert.notEqual(state!.status, 'succeeded');
  await h.stepping.cancel(id);
});

test('a step that crashes its worker on every attempt stops at maxAttempts without running again', async () => {
  const capped = await h.stepping.enqueue([{ name: 'abuse.crash-capped' }], { queue: 'crash' });
  const uncapped = await h.stepping.enqueue([{ name: 'abuse.crash-uncapped', options: { maxAttempts: 2 } }], {
    queue: 'crash',
  });
  const finalStatus = async () =>
    (
      await h.pool.query(
        `SELECT count(*)::int AS n FROM stepping.jobs WHERE id = ANY($1) AND status IN ('failed', 'succeeded')`,
        [[capped, uncapped]],
      )
    ).rows[0].n as number;
  // Each worker claims one unit at a time and dies with it; the next one finds it once its lease lapsed.
  for (let run = 0; run < 8 && (await finalStatus()) < 2; run++) {
    const w = start(
      'src/cli/stepping-worker.ts',
      [
        '--steps',
        'test/fixtures/abuse-steps.ts',
        '--queue',
        'crash',
        '--concurrency',
        '1',
        '--poll-interval',
        '100',
        '--lease',
        '1000',
      ],
      { DATABASE_URL: h.url },
    );
    const ended = await Promise.race([
      w.exited.then(() => 'exited'),
      eventually(async () => (await finalStatus()) === 2, 60_000, 'a crash or both jobs final').then(
        () => 'final',
      ),
    ]);
    if (ended === 'final') {
      w.child.kill('SIGTERM');
      await within(w.exited, 30_000, 'the last worker to stop');
    }
  }
  for (const [id, tag] of [
    [capped, 'capped'],
    [uncapped, 'uncapped'],
  ] as const) {
    const final = await h.stepping.waitForJob(id, { timeoutMs: 1000 });
    assert.equal(final.status, 'failed', tag);
    assert.match(final.lastError ?? '', /ended without a report .*maxAttempts \(2\)/, tag);
    assert.deepEqual(
      await logged(tag),
      [`${tag} ${id} 1`, `${tag} ${id} 2`],
      `${tag}: run twice, not a third time`,
    );
  }
});

test("a compensation gets the step's args as enqueued, whatever the handler did to them", async (t) => {
  const charge = defineStep(
    'abuse.charge',
    (args: { amount: number; fail: boolean }) => {
      args.amount = 0;
      if (args.fail) throw new PermanentError('card declined');
    },
    { compensate: 'abuse.refund' },
  );
  const refund = defineStep('abuse.refund', async (args: { amount: number }) => {
    await h.pool.query('INSERT INTO abuse_log (entry) VALUES ($1)', [`refund ${args.amount}`]);
  });
  const chargeFn = defineStep(
    'abuse.charge-fn',
    (args: { amount: number }) => {
      args.amount = 0;
    },
    { compensate: (args) => ({ name: 'abuse.refund', args: { amount: args.amount } }) },
  );
  const boom = defineStep('abuse.boom', () => {
    throw new PermanentError('later step fails');
  });
  const w = await h.worker(
    { steps: [charge, refund, chargeFn, boom], queues: ['saga'], pollIntervalMs: 100 },
    t,
  );
  const jobs = [
    await h.stepping.enqueue([charge({ amount: 1999, fail: true })], { queue: 'saga' }),
    await h.stepping.enqueue([charge({ amount: 2999, fail: false }), boom(null)], { queue: 'saga' }),
    await h.stepping.enqueue([chargeFn({ amount: 3999 }), boom(null)], { queue: 'saga' }),
  ];
  for (const id of jobs) {
    assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 20_000 })).status, 'compensated');
  }
  assert.deepEqual((await logged('refund')).sort(), ['refund 1999', 'refund 2999', 'refund 3999']);
  await w.stop();
});

test('a transactional compensation runs in its own transaction with ctx.tx', async (t) => {
  const reserve = defineStep('abuse.reserve', () => {}, { compensate: 'abuse.unreserve' });
  const unreserve = defineStep(
    'abuse.unreserve',
    async (_args: unknown, ctx) => {
      await ctx.tx!.query(`INSERT INTO abuse_ledger (entry) VALUES ('undone')`);
    },
    { transactional: true },
  );
  const boom = defineStep('abuse.boom2', () => {
    throw new PermanentError('later step fails');
  });
  const w = await h.worker({ steps: [reserve, unreserve, boom], queues: ['txcomp'], pollIntervalMs: 100 }, t);
  const id = await h.stepping.enqueue([reserve(null), boom(null)], { queue: 'txcomp' });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'compensated', final.lastError ?? '');
  assert.deepEqual(await ledger(), ['undone']);
  await h.pool.query('DELETE FROM abuse_ledger');
  await w.stop();
});

test('a returned object shaped like a retryLater marker is a result, not "not yet"', async (t) => {
  const forged = { kind: 'stepping.retryLater', delayMs: 604_800_000 };
  const step = defineStep('abuse.forged-later', () => forged);
  const w = await h.worker({ steps: [step], queues: ['forged'], pollIntervalMs: 100 }, t);
  const id = await h.stepping.enqueue([step(null)], { queue: 'forged' });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'succeeded');
  assert.deepEqual((await h.stepping.steps(id))[0]!.result, forged);
  await w.stop();
});

test('a step that answered "not yet" and is then cancelled or overtaken by its deadline is compensated: it ran', async (t) => {
  const poll = defineStep(
    'abuse.poll',
    async (args: { tag: string }, ctx) => {
      await h.pool.query('INSERT INTO abuse_log (entry) VALUES ($1)', [`started ${args.tag}`]);
      return ctx.retryLater(args.tag === 'deadline' ? 6000 : 600_000);
    },
    { compensate: 'abuse.unpoll' },
  );
  const unpoll = defineStep('abuse.unpoll', async (args: { tag: string }) => {
    await h.pool.query('INSERT INTO abuse_log (entry) VALUES ($1)', [`undone ${args.tag}`]);
  });
  const w = await h.worker({ steps: [poll, unpoll], queues: ['poll'], pollIntervalMs: 100 }, t);
  const cancelled = await h.stepping.enqueue([poll({ tag: 'cancel' })], { queue: 'poll' });
  // 4 s: a loaded machine has seconds to start the step before its deadline (a step
  // claimed after it would never run, and this test is about one that ran).
  const overdue = await h.stepping.enqueue([poll({ tag: 'deadline' })], { queue: 'poll', timeoutMs: 4000 });
  await eventually(async () => (await logged('started')).length === 2, 20_000, 'both steps to start');
  await eventually(
    async () => (await h.stepping.steps(cancelled))[0]!.status === 'pending',
    20_000,
    'the "not yet" to be stored',
  );
  await h.stepping.cancel(cancelled, { compensate: true });
  assert.equal((await h.stepping.waitForJob(cancelled, { timeoutMs: 20_000 })).status, 'cancelled');
  assert.equal((await h.stepping.waitForJob(overdue, { timeoutMs: 20_000 })).status, 'compensated');
  assert.deepEqual((await logged('undone')).sort(), ['undone cancel', 'undone deadline']);
  await w.stop();
});

test('session settings a transactional handler changes do not outlive its attempt on the pooled connection', async (t) => {
  const poison = defineStep(
    'abuse.session',
    async (_args: unknown, ctx) => {
      const tx = ctx.tx!;
      await tx.query(`SET default_transaction_read_only = on`);
      await tx.query(`SET statement_timeout = '1ms'`);
      await tx.query(`SET search_path = pg_catalog`);
      await tx.query(`SELECT pg_advisory_lock(4242)`);
      await tx.query(`LISTEN abuse_channel`);
    },
    { transactional: true },
  );
  const write = defineStep(
    'abuse.write',
    async (args: { n: number }, ctx) => {
      await ctx.tx!.query('SELECT pg_sleep(0.01)');
      await ctx.tx!.query('INSERT INTO public.abuse_ledger (entry) VALUES ($1)', [`write ${args.n}`]);
    },
    { transactional: true },
  );
  // Two connections: the poisoned one is the only one transactional steps and reports can use.
  const w = await h.worker(
    { steps: [poison, write], queues: ['session'], pollIntervalMs: 100, poolSize: 2 },
    t,
  );
  const first = await h.stepping.enqueue([poison(null)], { queue: 'session' });
  assert.equal((await h.stepping.waitForJob(first, { timeoutMs: 20_000 })).status, 'succeeded');
  const ids = [];
  for (let n = 0; n < 10; n++) ids.push(await h.stepping.enqueue([write({ n })], { queue: 'session' }));
  for (const id of ids) {
    const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
    assert.equal(final.status, 'succeeded', final.lastError ?? '');
    assert.equal((await h.stepping.steps(id))[0]!.attempts, 1, 'no attempt failed on a poisoned connection');
  }
  const { rows } = await h.pool.query(
    `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242`,
  );
  assert.equal(rows[0].n, 0, 'the session advisory lock was released with the attempt');
  await h.pool.query('DELETE FROM abuse_ledger');
  await w.stop();
});

test('a transactional handler that returns with a query still running fails the attempt; the query is ended', async (t) => {
  const step = defineStep(
    'abuse.unawaited',
    async (_args: unknown, ctx) => {
      await ctx.tx!.query(`INSERT INTO abuse_ledger (entry) VALUES ('unawaited')`);
      // Not awaited: the connection is still busy when the handler returns.
      ctx.tx!.query(`SELECT pg_sleep(600) /* abuse.unawaited */`).catch(() => {});
    },
    { transactional: true, maxAttempts: 1 },
  );
  const ok = defineStep(
    'abuse.after-unawaited',
    async (_args: unknown, ctx) => {
      await ctx.tx!.query(`INSERT INTO abuse_ledger (entry) VALUES ('after')`);
    },
    { transactional: true },
  );
  const w = await h.worker({ steps: [step, ok], queues: ['unawaited'], pollIntervalMs: 100, poolSize: 2 }, t);
  const id = await h.stepping.enqueue([step(null)], { queue: 'unawaited' });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
  assert.equal(final.status, 'failed');
  assert.match(final.lastError ?? '', /still running a query .* after it returned/);
  await eventually(
    async () =>
      (
        await h.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%abuse.unawaited */' AND pid <> pg_backend_pid()`,
        )
      ).rows[0].n === 0,
    20_000,
    'the abandoned query to be ended on the server',
  );
  const next = await h.stepping.enqueue([ok(null)], { queue: 'unawaited' });
  assert.equal((await h.stepping.waitForJob(next, { timeoutMs: 20_000 })).status, 'succeeded');
  assert.deepEqual(await ledger(), ['after'], "the failed attempt's write was rolled back");
  await h.pool.query('DELETE FROM abuse_ledger');
  await w.stop();
});

test('a transactional handler may choose its isolation level with its first statement', async (t) => {
  const step = defineStep(
    'abuse.serializable',
    async (_args: unknown, ctx) => {
      await ctx.tx!.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
      const { rows } = await ctx.tx!.query<{ level: string }>(
        `SELECT current_setting('transaction_isolation') AS level`,
      );
      return rows[0]!.level;
    },
    { transactional: true, maxAttempts: 1 },
  );
  const w = await h.worker({ steps: [step], queues: ['isolation'], pollIntervalMs: 100 }, t);
  const id = await h.stepping.enqueue([step(null)], { queue: 'isolation' });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'succeeded', final.lastError ?? '');
  assert.equal((await h.stepping.steps(id))[0]!.result, 'serializable');
  await w.stop();
});
