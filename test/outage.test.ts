/**
 * Issue 15: after a database outage longer than the lease, a worker resumes claiming as
 * soon as the server answers again. The old worker could stop claiming for good: claim
 * errors pushed its backoff up to 12.8 s, a later timer replaced the backoff's timer and
 * fired inside the backoff window, and that wake-up (and the listener's reconnect) was
 * dropped. The outage here: the database refuses connections and every backend of it is
 * terminated, for longer than the lease, while the handlers run and fail.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { withDatabase } from '../scripts/embedded-db.js';
import { defineStep } from '../src/index.js';
import { withTimeout } from './fixtures/core-util.js';
import { serverUrl } from './support/db.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

test('a worker resumes claiming within seconds of the server answering again after an outage longer than its lease', async (t) => {
  const admin = new pg.Client(withDatabase(serverUrl(), 'postgres'));
  await admin.connect();
  t.after(async () => {
    await admin.query(`ALTER DATABASE "${h.dbName}" ALLOW_CONNECTIONS true`).catch(() => {});
    await admin.end();
  });
  let outage = false;
  const startedAt: number[] = [];
  const slow = defineStep(
    'outage.slow',
    async () => {
      startedAt.push(Date.now());
      // Fails while the database is away, so its report must wait for the server.
      await new Promise((r) => setTimeout(r, 1500));
      if (outage) throw new Error('failed during the outage');
    },
    { backoff: { baseMs: 10, maxMs: 10 } },
  );
  const worker = await h.worker({ steps: [slow], concurrency: 10, leaseMs: 3000 }, t);
  t.after(() => worker.stop());
  worker.on('error', () => {});
  const ids = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 10 }, () => ({ steps: [slow({})] })),
  );
  await eventually(() => startedAt.length >= 10, 10_000, 'all handlers to start');

  // The outage: refused connections, every backend terminated, for 20 s: long enough for
  // the old claim backoff to reach 12.8 s.
  outage = true;
  await admin.query(`ALTER DATABASE "${h.dbName}" ALLOW_CONNECTIONS false`);
  const kill = () =>
    admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [h.dbName],
    );
  await kill();
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    await kill();
    await new Promise((r) => setTimeout(r, 250));
  }
  const before = startedAt.length;
  outage = false;
  const back = Date.now();
  await admin.query(`ALTER DATABASE "${h.dbName}" ALLOW_CONNECTIONS true`);

  // Every job was left running with a lease that has expired, or retrying: all are due.
  await withTimeout(
    eventually(() => startedAt.length > before, 30_000, 'a handler to start'),
    30_000,
    'the worker to resume',
  );
  const resumedInMs = startedAt[before]! - back;
  console.log(`# resumed ${resumedInMs} ms after the database accepted connections again`);
  assert.ok(resumedInMs < 5000, `the worker resumed only ${resumedInMs} ms after the outage ended`);
  for (const { jobId } of ids) {
    assert.equal((await h.stepping.waitForJob(jobId, { timeoutMs: 60_000 })).status, 'succeeded');
  }
});
