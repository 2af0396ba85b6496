import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { ListenCheck } from '../src/db/listen-check.js';
import { NotificationHub } from '../src/db/notifications.js';
import { createWorker, defineStep } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

// Ten minutes: if a job runs within seconds, something other than the poll woke the worker.
const POLL = 600_000;
// A functional bound far below the poll interval, not a performance target.
const PROMPT_MS = 5000;

test('NOTIFY wakes an idle worker whose poll interval is 10 minutes', async (t) => {
  const ran = new Map<string, number>();
  const step = defineStep('notify.step', async (_args: unknown, ctx) => {
    ran.set(ctx.jobId, Date.now());
  });
  // A long lease too, so the idle worker's only timer (its own lease expiring) is far away.
  await h.worker({ steps: [step], pollIntervalMs: POLL, leaseMs: POLL }, t);

  // Run one job first, so the worker has claimed, finished and gone back to sleep.
  const first = await h.stepping.enqueue([step({})]);
  assert.equal((await h.stepping.waitForJob(first, { timeoutMs: PROMPT_MS })).status, 'succeeded');

  for (let round = 0; round < 3; round++) {
    const enqueuedAt = Date.now();
    const id = await h.stepping.enqueue([step({ round })]);
    const job = await h.stepping.waitForJob(id, { timeoutMs: PROMPT_MS });
    assert.equal(job.status, 'succeeded');
    assert.ok(
      ran.get(id)! - enqueuedAt < PROMPT_MS,
      `round ${round} ran ${ran.get(id)! - enqueuedAt} ms after enqueue`,
    );
  }
});

test('a worker given a pool with libpq options (-c ...) listens: NOTIFY wakes it', async (t) => {
  // The LISTEN connection took the pool config's `options` (here a libpq options string)
  // for a pool's own config, and connected without a user: the worker fell back to polling.
  const pool = new pg.Pool({ connectionString: h.url, options: '-c statement_timeout=60000' });
  const ran = new Map<string, number>();
  const step = defineStep('notify.options', async (_args: unknown, ctx) => {
    ran.set(ctx.jobId, Date.now());
  });
  const listenErrors: string[] = [];
  const worker = createWorker({ pool, steps: [step], pollIntervalMs: POLL, leaseMs: POLL });
  worker.on('error', (e) => listenErrors.push(`${e.during}: ${e.error.message}`));
  t.after(async () => {
    await worker.stop();
    await pool.end();
  });
  await worker.start();
  assert.deepEqual(
    worker.databaseStates().map((d) => d.listening),
    [true],
  );
  const first = await h.stepping.enqueue([step({})]);
  assert.equal((await h.stepping.waitForJob(first, { timeoutMs: PROMPT_MS })).status, 'succeeded');
  const enqueuedAt = Date.now();
  const id = await h.stepping.enqueue([step({})]);
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: PROMPT_MS })).status, 'succeeded');
  assert.ok(ran.get(id)! - enqueuedAt < PROMPT_MS, `ran ${ran.get(id)! - enqueuedAt} ms after enqueue`);
  assert.deepEqual(listenErrors, []);
});

test('a job scheduled 300 ms ahead runs when due, not before, without waiting for the poll', async (t) => {
  const startedAt = new Map<string, number>();
  const step = defineStep('notify.scheduled', async (_args: unknown, ctx) => {
    startedAt.set(ctx.jobId, Date.now());
  });
  await h.worker({ steps: [step], pollIntervalMs: POLL, leaseMs: POLL }, t);

  const runAt = new Date(Date.now() + 300);
  const id = await h.stepping.enqueue([step({})], { runAt });
  const job = await h.stepping.waitForJob(id, { timeoutMs: PROMPT_MS });
  assert.equal(job.status, 'succeeded');
  const start = startedAt.get(id)!;
  assert.ok(start >= runAt.getTime(), `started ${runAt.getTime() - start} ms before its runAt`);
  assert.ok(start - runAt.getTime() < PROMPT_MS, `started ${start - runAt.getTime()} ms after its runAt`);

  // The same for a delayMs job enqueued while the worker sleeps towards nothing in particular.
  const enqueuedAt = Date.now();
  const delayed = await h.stepping.enqueue([step({ delayed: true })], { delayMs: 300 });
  assert.equal((await h.stepping.waitForJob(delayed, { timeoutMs: PROMPT_MS })).status, 'succeeded');
  assert.ok(startedAt.get(delayed)! - enqueuedAt >= 300, 'the delayed job did not run early');
});

test('a closed NotificationHub opens no connection again: a subscribe after close() is refused', async () => {
  const applicationName = `hub_closed_${process.pid}`;
  const hub = new NotificationHub({ connectionString: h.url, application_name: applicationName });
  const connections = async () =>
    (
      await h.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [applicationName],
      )
    ).rows[0]!.n;
  const unsubscribe = await hub.subscribe('hub_closed_a', () => {});
  assert.equal(await connections(), 1);
  await unsubscribe();
  await hub.close();
  // A worker's database removed while it was starting: its start went on to subscribe (the
  // wake-up channel, the LISTEN probe) after the stop had closed the hub. That opened a
  // LISTEN connection nothing closed, reconnecting forever, and the process never exited.
  await assert.rejects(
    hub.subscribe('hub_closed_b', () => {}),
    /closed/,
  );
  await hub.close();
  assert.equal(await connections(), 0);
});

test('a lost LISTEN probe is tried again: the worker polls meanwhile, then listens again', async (t) => {
  // The probe's NOTIFY fails once, as it would if the connection dropped at that moment.
  const pool = new pg.Pool({ connectionString: h.url, max: 4 });
  t.after(() => pool.end());
  const query = pool.query.bind(pool) as (text: unknown, values?: unknown) => Promise<unknown>;
  let failed = 0;
  (pool as unknown as { query: typeof query }).query = (text, values) => {
    if (
      typeof text === 'string' &&
      text.includes('pg_notify') &&
      Array.isArray(values) &&
      String(values[0]).endsWith('_probe') &&
      failed === 0
    ) {
      failed += 1;
      return Promise.reject(new Error('connection dropped (injected)'));
    }
    return query(text, values);
  };
  const step = defineStep('notify.reprobe', async () => {});
  const worker = createWorker({ pool, steps: [step], pollIntervalMs: 200 });
  t.after(() => worker.stop());
  const errors: string[] = [];
  worker.on('error', (e) => errors.push(`${e.during}: ${e.error.message}`));
  const listening = () => worker.databaseStates()[0]?.listening;
  await worker.start();
  await eventually(() => errors.length > 0, 15_000, 'the lost probe to be reported');
  assert.equal(failed, 1);
  assert.match(errors[0]!, /^listen: stepping: LISTEN does not work .*the probe failed: connection dropped/);
  // The report comes as the probe ends; the worker switches to polling once the probe's
  // UNLISTEN is done (the next probe is 5 s away, so this state holds meanwhile).
  await eventually(() => listening() === false, 10_000, 'the worker to poll while LISTEN seems broken');
  // Work goes on meanwhile (a poll, or a NOTIFY: the subscription is kept).
  const id = await h.stepping.enqueue([step({})]);
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 15_000 })).status, 'succeeded');
  // The next probe (due 5 s after the lost one) arrives: listening again, nothing more reported.
  await eventually(() => listening() === true, 20_000, 'the worker to listen again after the next probe');
  assert.equal(errors.length, 1, errors.join('\n'));
});

test('ListenCheck: a failed probe is kept until its retry is due, told once, and a later probe can succeed', async () => {
  const hub = new NotificationHub({ connectionString: h.url });
  const pool = new pg.Pool({ connectionString: h.url, max: 2 });
  try {
    let broken = true;
    const notifier = {
      query: (text: string, values?: unknown[]) =>
        broken ? Promise.reject(new Error('cannot send (injected)')) : pool.query(text, values),
    };
    const notes: string[] = [];
    const check = new ListenCheck(hub, notifier, 'stepping_probe', {
      reprobeFirstMs: 60_000,
      onUnavailable: (m) => notes.push(m),
    });
    assert.equal(await check.delivers(), false);
    const due = check.reprobeInMs();
    assert.ok(due !== null && due > 50_000 && due <= 60_000, `retry due in ${due} ms`);
    broken = false;
    assert.equal(await check.delivers(), false, 'kept until the retry is due');
    const soon = new ListenCheck(hub, notifier, 'stepping_probe', {
      reprobeFirstMs: 0,
      onUnavailable: (m) => notes.push(m),
    });
    broken = true;
    assert.equal(await soon.delivers(), false);
    assert.equal(await soon.delivers(), false, 'failed again');
    broken = false;
    assert.equal(await soon.delivers(), true, 'the retry arrived');
    assert.equal(soon.reprobeInMs(), null);
    assert.equal(notes.length, 2, 'each check told once');
  } finally {
    await hub.close();
    await pool.end();
  }
});
