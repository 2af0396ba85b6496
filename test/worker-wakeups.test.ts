/**
 * The worker's timers and wake-ups: times from the database that setTimeout cannot hold
 * (past 2^31 - 1 ms), and a busy worker with free slots waking when work becomes due
 * (a rate limit's window, a scheduled job) rather than when its handlers end.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import { Engine } from '../src/db/engine.js';
import { defineStep } from '../src/index.js';
import { Fetcher, type FetcherDeps } from '../src/worker/fetcher.js';
import { deferred, eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

const DAY_MS = 24 * 3600 * 1000;

/** TimeoutOverflowWarnings seen during the current test: a timer Node fired after 1 ms. */
let overflows: string[] = [];
const onWarning = (warning: Error) => {
  if (warning.name === 'TimeoutOverflowWarning') overflows.push(warning.message);
};
beforeEach(() => {
  overflows = [];
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
});

test('a job deadline 30 days away does not cut its steps short', async (t) => {
  let aborted: unknown = null;
  const step = defineStep(
    'wk.long-deadline',
    async (_args: Record<string, never>, ctx) => {
      // A step of some length: a deadline timer that fires early aborts it meanwhile.
      await h.pool.query('SELECT pg_sleep(0.2)');
      if (ctx.signal.aborted) aborted = ctx.signal.reason;
      return { done: true };
    },
    { maxAttempts: 1 },
  );
  await h.worker({ steps: [step], queues: ['wk-deadline'] }, t);
  const id = await h.stepping.enqueue([step({})], { timeoutMs: 30 * DAY_MS, queue: 'wk-deadline' });
  const done = await h.stepping.waitForJob(id, { timeoutMs: 60_000 });
  assert.equal(aborted, null, `the step's signal was aborted: ${String(aborted)}`);
  assert.equal(done.status, 'succeeded');
  // The warning is emitted on the next tick after the timer was armed.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(overflows, [], 'a timer was armed past 2^31 - 1 ms');
});

test('a wake-up asked for 30 days ahead (a backoff read from the database) waits, and arms no overflowing timer', async () => {
  // The only way in is a retry's time that settle reads back (maxMs up to 2^31 - 1, on the
  // engine's clock) at a moment no sooner wake-up is pending, which is a race between a
  // report and a claim: the fetcher is driven directly. Nothing here stands in for SQL.
  let kicks = 0;
  const deps = { kick: () => kicks++ } as unknown as FetcherDeps;
  const fetcher = new Fetcher(deps);
  try {
    fetcher.wakeAt(Date.now() + 30 * DAY_MS);
    // Node fires an overflowing timer after 1 ms; the warning comes on the next tick.
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(overflows, [], 'a wake-up was armed past 2^31 - 1 ms');
    assert.equal(kicks, 0, 'the wake-up 30 days ahead came at once');
  } finally {
    await fetcher.stop();
  }
});

test('a busy worker with free slots starts rate-limited units when the window has room, not when its handlers end', async (t) => {
  const release = deferred();
  const starts: number[] = [];
  const step = defineStep('wk.rated', async () => {
    starts.push(Date.now());
    await release.promise;
  });
  await h.stepping.setQueueLimit('wk-rate', { rate: { count: 3, periodMs: 1000 } });
  await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 6 }, () => ({ steps: [step({})], options: { queue: 'wk-rate' } })),
  );
  // No poll to fall back on: only the due time can wake the worker while its handlers run.
  await h.worker({ steps: [step], concurrency: 10, pollIntervalMs: 600_000, queues: ['wk-rate'] }, t);
  try {
    // The first three run until released; the window has room again a second after they
    // started, so the other three must start while the first three still run.
    await eventually(
      () => starts.length === 6,
      15_000,
      'the second window of starts while the first still run',
    );
  } finally {
    release.resolve();
  }
});

test('a busy worker with free slots starts a job scheduled a moment ahead while its handlers run', async (t) => {
  const release = deferred();
  const started = new Set<string>();
  const step = defineStep('wk.scheduled', async (args: { tag: string }) => {
    started.add(args.tag);
    if (args.tag === 'long') await release.promise;
  });
  // One call, one transaction: the worker's first claim takes 'long' and finds 'later' not yet due.
  await h.stepping.enqueueMany(undefined, [
    { steps: [step({ tag: 'long' })], options: { queue: 'wk-later' } },
    { steps: [step({ tag: 'later' })], options: { queue: 'wk-later', delayMs: 500 } },
  ]);
  await h.worker({ steps: [step], concurrency: 4, pollIntervalMs: 600_000, queues: ['wk-later'] }, t);
  try {
    await eventually(() => started.has('long'), 15_000, "the long job's start");
    await eventually(
      () => started.has('later'),
      15_000,
      'the scheduled job to start while the long one runs',
    );
  } finally {
    release.resolve();
  }
});

test('stop() waits for a look-up of the next due time still on its way: no statement after it returns', async (t) => {
  // A slow look-up, started after a short claim (and not awaited by it), still running
  // when stop() is called.
  const original = Engine.prototype.nextDueInMs;
  const lookup = deferred();
  let afterStop = 0;
  let stopped = false;
  Engine.prototype.nextDueInMs = async function (this: Engine, ...args: Parameters<Engine['nextDueInMs']>) {
    lookup.resolve();
    await new Promise((r) => setTimeout(r, 300));
    if (stopped) afterStop++;
    return await original.apply(this, args);
  };
  t.after(() => {
    Engine.prototype.nextDueInMs = original;
  });
  const step = defineStep('wk.stop-lookup', async () => {});
  // Enqueued first: the worker's first claim gets it, comes back short with slots free, and
  // starts the look-up without waiting for it.
  await h.stepping.enqueue([step({})], { queue: 'wk-stop' });
  const w = await h.worker({ steps: [step], concurrency: 4, queues: ['wk-stop'] });
  const errors: string[] = [];
  w.on('error', (e) => errors.push(`${e.during}: ${e.error.message}`));
  await lookup.promise;
  await w.stop();
  stopped = true;
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(afterStop, 0, 'a look-up ran after stop() returned');
  assert.deepEqual(errors, []);
});

test('a queue at its per-queue cap with due work waiting costs no statements until a slot frees, then its next job starts', async (t) => {
  // The look-up of the next due time counted the full queue's waiting jobs as "due now but
  // not claimed" and retried every 5-50 ms, a claim and a look-up each time, for as long as
  // the handler ran.
  const original = { claim: Engine.prototype.claim, nextDueInMs: Engine.prototype.nextDueInMs };
  let statements = 0;
  // Look-ups that left the full queue out and have returned: after one, nothing is due to run.
  let lookupsWithoutFull = 0;
  Engine.prototype.claim = async function (this: Engine, ...args: Parameters<Engine['claim']>) {
    statements++;
    return await original.claim.apply(this, args);
  };
  Engine.prototype.nextDueInMs = async function (this: Engine, ...args: Parameters<Engine['nextDueInMs']>) {
    statements++;
    const result = await original.nextDueInMs.apply(this, args);
    if (args[2] !== null && !args[2].includes('wk-cap-a')) lookupsWithoutFull++;
    return result;
  };
  t.after(() => {
    Engine.prototype.claim = original.claim;
    Engine.prototype.nextDueInMs = original.nextDueInMs;
  });
  const gates = new Map<string, ReturnType<typeof deferred<void>>>();
  const started: string[] = [];
  const step = defineStep('wk.capped', async (args: { tag: string }) => {
    started.push(args.tag);
    await gates.get(args.tag)?.promise;
  });
  for (const tag of ['first', 'second']) gates.set(tag, deferred());
  await h.stepping.enqueueMany(
    undefined,
    ['first', 'second', 'third'].map((tag) => ({ steps: [step({ tag })], options: { queue: 'wk-cap-a' } })),
  );
  // A long poll: only a freed slot can start the second job in time.
  await h.worker(
    { steps: [step], concurrency: 2, pollIntervalMs: 600_000, queues: { 'wk-cap-a': 1, 'wk-cap-b': 1 } },
    t,
  );
  try {
    await eventually(() => started.length === 1, 15_000, 'the first job to start');
    // The claims and look-ups that follow the first claim end with a look-up that leaves
    // the full queue out (the old code never made one: it kept asking about that queue).
    await eventually(() => lookupsWithoutFull > 0, 15_000, 'a look-up without the full queue');
    const before = statements;
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(
      statements - before <= 2,
      `${statements - before} claims and look-ups while the queue was full`,
    );
    assert.deepEqual(started, ['first']);
    gates.get('first')!.resolve();
    await eventually(() => started.length === 2, 15_000, 'the second job to start when the slot freed');
    gates.get('second')!.resolve();
    await eventually(() => started.length === 3, 15_000, 'the third job to start when the slot freed');
    assert.deepEqual(started, ['first', 'second', 'third']);
  } finally {
    for (const gate of gates.values()) gate.resolve();
  }
});
