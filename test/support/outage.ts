/**
 * An outage for resume tests: runs 10 jobs whose handler fails while the database is away
 * through the worker `start` makes, takes the database away for 20 s (connections refused,
 * every backend terminated, longer than the 3 s lease), and returns how long after it came
 * back the first handler started. Every job must then succeed.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';

import pg from 'pg';

import { withDatabase } from '../../scripts/embedded-db.js';
import { type AnyStepDefinition, defineStep, type Worker } from '../../src/index.js';
import { withTimeout } from '../fixtures/core-util.js';
import { serverUrl } from './db.js';
import { eventually, type Harness } from './harness.js';

export async function resumeAfterOutage(
  h: Harness,
  t: TestContext,
  name: string,
  start: (steps: AnyStepDefinition[]) => Promise<Worker>,
): Promise<number> {
  const admin = new pg.Client(withDatabase(serverUrl(), 'postgres'));
  await admin.connect();
  t.after(async () => {
    await admin.query(`ALTER DATABASE "${h.dbName}" ALLOW_CONNECTIONS true`).catch(() => {});
    await admin.end();
  });
  let outage = false;
  const startedAt: number[] = [];
  const slow = defineStep(
    name,
    async () => {
      startedAt.push(Date.now());
      // Fails while the database is away, so its report must wait for the server.
      await new Promise((r) => setTimeout(r, 1500));
      if (outage) throw new Error('failed during the outage');
    },
    { backoff: { baseMs: 10, maxMs: 10 } },
  );
  const worker = await start([slow]);
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
  for (const { jobId } of ids) {
    assert.equal((await h.stepping.waitForJob(jobId, { timeoutMs: 60_000 })).status, 'succeeded');
  }
  return resumedInMs;
}
