import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import { NotificationHub } from '../src/db/notifications.js';
import { WAIT_POLL_MS } from '../src/db/wait-for-job.js';
import {
  createStepping,
  defineStep,
  InvalidArgumentError,
  JobNotFoundError,
  SteppingError,
  WaitTimeoutError,
} from '../src/index.js';
import { withTimeout } from './fixtures/core-util.js';
import { start, trackChildren } from './fixtures/processes.js';
import { deferred, eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
const gate = deferred();
const gated = defineStep('w.gated', async () => {
  await gate.promise;
});
/** A step no worker has a handler for: its job stays pending. */
const unserved = { name: 'w.unserved', args: {} };
await h.worker({ steps: [gated], concurrency: 2, pollIntervalMs: 600_000 });

test('waitForJob resolves with the final state when the job finishes', async () => {
  const id = await h.stepping.enqueue([gated({}), gated({})]);
  let settled = false;
  const waiting = h.stepping.waitForJob(id, { timeoutMs: 10_000 }).finally(() => (settled = true));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(settled, false, 'must not resolve while the job runs');
  gate.resolve();
  const state = await waiting;
  assert.equal(state.status, 'succeeded');
  assert.equal(state.jobId, id);
  // Already final: resolves at once.
  assert.equal((await h.stepping.waitForJob(id)).status, 'succeeded');
});

test('waitForJob gives up with WaitTimeoutError, and rejects unknown jobs', async () => {
  const id = await h.stepping.enqueue([unserved]);
  await assert.rejects(h.stepping.waitForJob(id, { timeoutMs: 150 }), WaitTimeoutError);
  await assert.rejects(h.stepping.waitForJob('987654321', { timeoutMs: 150 }), JobNotFoundError);
});

test(
  'many waitForJob calls at once on one client raise no listener-leak warning',
  { timeout: 60_000 },
  async (t) => {
    // Each wait listens for the client's close(): 11 at once made Node warn of a possible
    // EventTarget memory leak, which users read as one (the listeners are removed after).
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    const ids = await Promise.all(Array.from({ length: 25 }, () => h.stepping.enqueue([unserved])));
    const waits = ids.map((id) => h.stepping.waitForJob(id, { timeoutMs: 30_000 }).then((s) => s.status));
    // Every wait is subscribed (and so listening for close) once its first read is out.
    await new Promise((r) => setTimeout(r, 300));
    for (const id of ids) await h.stepping.cancel(id);
    assert.deepEqual(
      await Promise.all(waits),
      ids.map(() => 'cancelled'),
    );
    // A warning is emitted on the next tick; let it arrive.
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
      [],
    );
  },
);

test(
  'a process whose waits were ended by their signal and by close() exits by itself',
  { timeout: 60_000 },
  async () => {
    // Before, a wait ended while asleep left its sleep's timer running: with LISTEN working
    // that sleep lasts until the wait's deadline (here 10 minutes), and the process lived on.
    trackChildren();
    const child = start('test/fixtures/wait-exit.ts', [h.url], {});
    const finished = await withTimeout(child.exited, 30_000, 'the process to exit once its waits ended');
    assert.equal(finished.code, 0, finished.stderr);
    assert.match(finished.stdout, /^closed \["Error","SteppingError"\]$/m);
  },
);

test(
  'waitForJob is woken by NOTIFY, not by polling: no query runs while it waits',
  { timeout: 60_000 },
  async () => {
    const id = await h.stepping.enqueue([unserved]);
    const start = await statementsOf(h.stepping.pool);
    const waiting = h.stepping.waitForJob(id, { timeoutMs: 30_000 });
    // Its first read is out (it used to be assumed done after 50 ms, which a loaded server
    // does not keep to): from here on only a poll would read.
    await eventually(async () => (await statementsOf(h.stepping.pool)) > start, 30_000, 'the first read');
    const before = await statementsOf(h.stepping.pool);
    // Longer than the poll interval (WAIT_POLL_MS): a waiter that polled would read meanwhile.
    await new Promise((r) => setTimeout(r, WAIT_POLL_MS + 500));
    assert.equal(await statementsOf(h.stepping.pool), before, 'waitForJob queried while waiting');
    // Finishing the job (here by cancelling it) wakes the waiter through <schema>_done.
    await h.pool.query('SELECT stepping.job_cancel($1)', [id]);
    assert.equal((await waiting).status, 'cancelled');
  },
);

test('waitForJob polls when its LISTEN connection cannot be made, and still sees the job finish', async (t) => {
  // Nothing listens on port 1: the LISTEN connection is refused, the queries still work.
  const polling = createStepping({
    connectionString: h.url,
    listenConnectionString: 'postgres://postgres@127.0.0.1:1/nowhere',
  });
  t.after(() => polling.close());
  const id = await h.stepping.enqueue([unserved]);
  // Reads of the job's state: how many were sent, and how many had their answer.
  let sent = 0;
  let answered = 0;
  const original = polling.pool.query.bind(polling.pool) as (...args: unknown[]) => Promise<unknown>;
  (polling.pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const read = typeof args[0] === 'string' && args[0].includes('job_overview');
    if (read) sent++;
    const result = original(...args);
    if (read) void result.finally(() => answered++).catch(() => {});
    return result;
  };
  const waiting = polling.waitForJob(id, { timeoutMs: 10_000 });
  let settled = false;
  waiting.then(
    () => (settled = true),
    () => (settled = true),
  );
  // Cancel only once the first read has answered (pending): from then on only a poll can
  // see the job finish, since no NOTIFY can arrive.
  while (answered < 1 && !settled) await new Promise((r) => setTimeout(r, 20));
  await h.pool.query('SELECT stepping.job_cancel($1)', [id]);
  const state = await waiting;
  assert.equal(state.status, 'cancelled');
  // The first read answered "pending" before the cancel: a later read, a poll, saw it.
  assert.ok(sent >= 2, `expected a poll to see the cancel, saw ${sent} reads`);
});

test(
  'close() ends the waits in flight at once with a typed error; a closed client refuses calls and opens nothing',
  {
    timeout: 60_000,
  },
  async () => {
    // Before: a wait without timeoutMs never settled after close(), one with it failed at its
    // deadline with pg's "Cannot use a pool after calling end on the pool", and a waitForJob
    // after close() opened a new LISTEN connection that nothing would ever close.
    const name = 'wait_close_test';
    const s = createStepping({ connectionString: `${h.url}?application_name=${name}` });
    const id = await h.stepping.enqueue([unserved]);
    const reads = await statementsOf(s.pool);
    const waits = [s.waitForJob(id), s.waitForJob(id, { timeoutMs: 600_000 })];
    // Both have read the job once ("pending") and wait for a wake-up.
    await eventually(async () => (await statementsOf(s.pool)) - reads >= 2, 30_000, 'both waiters to read');
    // Handled from now on: they settle while close() runs.
    const outcomes = waits.map((waiting) =>
      waiting.then(
        () => 'resolved',
        (error: unknown) => error,
      ),
    );
    await s.close();
    for (const outcome of await Promise.all(outcomes)) {
      assert.ok(outcome instanceof SteppingError, `expected a SteppingError, got ${String(outcome)}`);
      assert.match(outcome.message, /client was closed/);
    }
    for (const [call, run] of [
      ['waitForJob', () => s.waitForJob(id, { timeoutMs: 1000 })],
      ['getJob', () => s.getJob(id)],
      ['enqueue', () => s.enqueue([unserved])],
    ] as const) {
      await assert.rejects(run(), (error: unknown) => {
        assert.ok(error instanceof SteppingError, `${call}: expected a SteppingError, got ${String(error)}`);
        assert.match(error.message, new RegExp(`^stepping: ${call}: this client was closed`));
        return true;
      });
    }
    await s.close(); // twice is fine
    // No connection of that client is left (its LISTEN included).
    await eventually(
      async () =>
        (await h.pool.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1`, [name]))
          .rowCount === 0,
      30_000,
      'the closed client to hold no connection',
    );
  },
);

test(
  "waitForJob stops at once when its signal is aborted, with the signal's reason",
  { timeout: 60_000 },
  async () => {
    const id = await h.stepping.enqueue([unserved]);
    const reads = await statementsOf(h.stepping.pool);
    const controller = new AbortController();
    const waiting = h.stepping.waitForJob(id, { signal: controller.signal });
    await eventually(async () => (await statementsOf(h.stepping.pool)) > reads, 30_000, 'the waiter to read');
    const reason = new Error('no longer needed');
    controller.abort(reason);
    await assert.rejects(waiting, (error) => error === reason);
    // Already aborted: refused before anything listens or reads.
    const before = await statementsOf(h.stepping.pool);
    await assert.rejects(
      h.stepping.waitForJob(id, { signal: AbortSignal.abort(reason) }),
      (e) => e === reason,
    );
    assert.equal(await statementsOf(h.stepping.pool), before);
    // The job is untouched, and a wait without a signal still sees it finish.
    const later = h.stepping.waitForJob(id, { timeoutMs: 30_000 });
    await h.pool.query('SELECT stepping.job_cancel($1)', [id]);
    assert.equal((await later).status, 'cancelled');
    await assert.rejects(
      h.stepping.waitForJob(id, { signal: 'soon' as unknown as AbortSignal }),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        /^waitForJob: signal must be an AbortSignal/.test(error.message),
    );
  },
);

/**
 * Counts reads of the job's state the pool has sent, by wrapping its query method once
 * (the one-time LISTEN probe that waitForJob sends is not a poll and is not counted).
 */
const counts = new WeakMap<object, { n: number }>();
async function statementsOf(pool: import('pg').Pool): Promise<number> {
  let c = counts.get(pool);
  if (!c) {
    const counter = { n: 0 };
    const original = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('job_overview')) counter.n++;
      return original(...args);
    };
    counts.set(pool, counter);
    c = counter;
  }
  return c.n;
}

test(
  "a second subscriber to a channel is answered only once the channel's LISTEN is in effect",
  {
    timeout: 60_000,
  },
  async (t) => {
    // Before, the second subscribe resolved at once while the first one's LISTEN was still on
    // its way: a waitForJob could then read "pending", miss the job's NOTIFY (sent before the
    // LISTEN took effect) and, LISTEN being known to work, sleep forever.
    const relay = await holdingRelay(h.url);
    const hub = new NotificationHub({ connectionString: relay.url });
    const subscribing: Promise<unknown>[] = [];
    t.after(async () => {
      relay.release();
      await Promise.allSettled(subscribing);
      await hub.close();
      await relay.close();
    });
    // Connected and listening elsewhere first, so that only the LISTEN below is held back.
    await hub.subscribe('wait_warm', () => {});
    const held = relay.holdFrom('wait_race');
    const heard: [string[], string[]] = [[], []];
    const first = hub.subscribe('wait_race', (payload) => heard[0].push(payload));
    const second = hub.subscribe('wait_race', (payload) => heard[1].push(payload));
    subscribing.push(first, second);
    let secondAnswered = false;
    void second.then(
      () => (secondAnswered = true),
      () => {},
    );
    await held;
    // Whatever needs no I/O has run by the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(secondAnswered, false, 'the second subscribe resolved before its LISTEN reached the server');
    relay.release();
    await Promise.all([first, second]);
    await h.pool.query(`SELECT pg_notify('wait_race', 'after')`);
    await eventually(() => heard[0].length > 0 && heard[1].length > 0, 30_000, 'both subscribers to hear it');
    assert.deepEqual(heard, [['after'], ['after']]);
  },
);

test(
  'waitForJob reads a finished job and its results in one snapshot: a prune between them cannot split them',
  { timeout: 60_000 },
  async (t) => {
    // Before, the job and its steps were two statements: a prune (or a retry) committed
    // between them gave status succeeded with output {"n":2} but results [undefined,
    // undefined]. The steps' read is held back at the relay while the job is pruned.
    const echo = defineStep('w.echo', async (args: { n: number }) => ({ n: args.n }));
    await h.worker({ steps: [echo], queues: ['w-snapshot'] }, t);
    const id = await h.stepping.enqueue([echo({ n: 1 }), echo({ n: 2 })], { queue: 'w-snapshot' });
    assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 30_000 })).status, 'succeeded');
    const relay = await holdingRelay(h.url);
    const client = createStepping({ connectionString: relay.url });
    t.after(async () => {
      relay.release();
      await client.close();
      await relay.close();
    });
    const held = relay.holdFrom('step_overview');
    const waiting = client.waitForJob(id, { timeoutMs: 30_000 });
    waiting.catch(() => {});
    await held;
    assert.ok((await h.stepping.prune({ olderThanMs: 0 })) >= 1);
    assert.equal(await h.stepping.getJob(id), null);
    relay.release();
    const state = await waiting;
    assert.deepEqual(
      { status: state.status, output: state.output, results: state.results },
      { status: 'succeeded', output: { n: 2 }, results: [{ n: 1 }, { n: 2 }] },
    );
    // Gone before the read: as for any missing job.
    await assert.rejects(client.waitForJob(id, { timeoutMs: 5000 }), JobNotFoundError);
  },
);

/**
 * A TCP relay in front of the test server that can hold back what clients send, from the
 * first chunk containing a pattern (a statement on its way), until released. The server
 * is real; only the traffic to it is delayed.
 */
async function holdingRelay(target: string): Promise<{
  url: string;
  /** Holds from the next client chunk containing `pattern`; resolves once one was held. */
  holdFrom(pattern: string): Promise<void>;
  release(): void;
  close(): Promise<void>;
}> {
  const upstream = new URL(target);
  let pattern: string | undefined;
  let onHeld: () => void = () => {};
  const links = new Set<{ held: Buffer[] | undefined; send: (chunk: Buffer) => void; destroy: () => void }>();
  const relay = net.createServer((client) => {
    const server = net.connect(Number(upstream.port || 5432), upstream.hostname);
    const link = {
      held: undefined as Buffer[] | undefined,
      send: (chunk: Buffer) => void server.write(chunk),
      destroy: () => {
        client.destroy();
        server.destroy();
      },
    };
    links.add(link);
    client.on('data', (chunk) => {
      if (link.held === undefined && pattern !== undefined && chunk.includes(pattern)) {
        pattern = undefined;
        link.held = [];
        onHeld();
      }
      if (link.held !== undefined) link.held.push(chunk);
      else link.send(chunk);
    });
    server.on('data', (chunk) => client.write(chunk));
    const end = () => {
      links.delete(link);
      link.destroy();
    };
    client.on('close', end).on('error', end);
    server.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.host = `127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
  return {
    url: url.toString(),
    holdFrom(p) {
      pattern = p;
      return new Promise((resolve) => (onHeld = resolve));
    },
    release() {
      for (const link of links) {
        const chunks = link.held ?? [];
        link.held = undefined;
        for (const chunk of chunks) link.send(chunk);
      }
    },
    async close() {
      for (const link of links) link.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}
