/**
 * Stepping.waitForJob through PgBouncer in transaction pooling mode: with a direct
 * listenConnectionString it is woken by NOTIFY; without one it notices that LISTEN hears
 * nothing, warns once and polls.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { createStepping, defineStep } from '../src/index.js';
import { serverUrl } from './support/db.js';
import { deferred, setup } from './support/harness.js';
import { startPgBouncer } from './support/pgbouncer.js';

const h = await setup(import.meta.url);
const bouncer = await startPgBouncer(serverUrl());
after(() => bouncer.stop());
const viaBouncer = bouncer.url(h.dbName);

const gates = new Map<string, Promise<void>>();
const hold = defineStep('wait.hold', async (args: { gate: string }) => {
  await gates.get(args.gate);
});
await h.worker({ steps: [hold], concurrency: 2 });

/** Enqueues a job held in its step; returns it and its release. */
async function heldJob(): Promise<{ jobId: string; release: () => void }> {
  const gate = `gate-${Math.random().toString(36).slice(2)}`;
  const d = deferred();
  gates.set(gate, d.promise);
  return { jobId: await h.stepping.enqueue([hold({ gate })]), release: () => d.resolve() };
}

/** The next STEPPING_LISTEN_UNAVAILABLE warning; `seen()` counts them until `stop()`. */
function listenWarnings(): { next: Promise<Error>; seen: () => number; stop: () => void } {
  let count = 0;
  let first!: (w: Error) => void;
  const next = new Promise<Error>((resolve) => (first = resolve));
  const onWarning = (w: Error) => {
    if ((w as { code?: string }).code !== 'STEPPING_LISTEN_UNAVAILABLE') return;
    count++;
    first(w);
  };
  process.on('warning', onWarning);
  return { next, seen: () => count, stop: () => process.off('warning', onWarning) };
}

test('without listenConnectionString: polling sees the job finish, and one warning says why', async () => {
  await bouncer.warm(h.dbName, 2);
  const stepping = createStepping({ connectionString: viaBouncer });
  const warnings = listenWarnings();
  try {
    const first = await heldJob();
    const waiting = stepping.waitForJob(first.jobId, { timeoutMs: 120_000 });
    first.release();
    assert.equal((await waiting).status, 'succeeded');
    const warning = await warnings.next;
    assert.match(
      warning.message,
      new RegExp(`LISTEN does not work on 127\\.0\\.0\\.1:${bouncer.port}/${h.dbName} `),
    );
    assert.match(
      warning.message,
      /PgBouncer in transaction pooling mode\. Falling back to polling \(LISTEN is probed again every few minutes\)\. Set listenConnectionString/,
    );
    assert.doesNotMatch(warning.message, /postgres:postgres@/);
    // The answer is kept (until the next probe is due, 5 s on): the next wait polls at once
    // and warns no more.
    const second = await heldJob();
    const again = stepping.waitForJob(second.jobId, { timeoutMs: 120_000 });
    second.release();
    assert.equal((await again).status, 'succeeded');
    assert.equal(warnings.seen(), 1);
  } finally {
    warnings.stop();
    await stepping.close();
  }
});

test('with a direct listenConnectionString: no polling while the job runs, woken by NOTIFY, no warning', async () => {
  const stepping = createStepping({ connectionString: viaBouncer, listenConnectionString: h.url });
  const warnings = listenWarnings();
  // Watches the client's LISTEN probe go by, to know when its check has its answer.
  const watcher = await h.client();
  const probed = deferred();
  watcher.on('notification', (n) => n.channel === 'stepping_probe' && probed.resolve());
  await watcher.query('LISTEN stepping_probe');
  let queries = 0;
  const original = stepping.pool.query.bind(stepping.pool) as (...args: unknown[]) => unknown;
  (stepping.pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    queries++;
    return original(...args);
  };
  try {
    const { jobId, release } = await heldJob();
    const waiting = stepping.waitForJob(jobId);
    await probed.promise;
    const before = queries;
    // An observation window of 2.5 polling intervals: a polling waiter would read at least twice.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(queries, before, 'waitForJob polled although its LISTEN works');
    release();
    assert.equal((await waiting).status, 'succeeded');
    assert.equal(warnings.seen(), 0);
  } finally {
    warnings.stop();
    await stepping.close();
  }
});
