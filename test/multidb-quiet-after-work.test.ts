/**
 * Many databases: a tenant whose jobs are done stays quiet. A look-up of the next due time
 * made while the worker still held the tenant's units saw their own leases as the next
 * thing due, and every quiet tenant woke a lease's length later to claim nothing (at 300
 * tenants: about 40 transactions and 13 new connections a second, 30 s after the drain).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { Engine } from '../src/db/engine.js';
import { createWorker, defineStep } from '../src/index.js';
import { withTimeout } from './fixtures/core-util.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
const noop = defineStep('quiet.noop', async () => {});

test('after its jobs are done, a tenant makes no claim when the leases it held would have expired', async (t) => {
  const leaseMs = 1500;
  // Counts the engine calls of this process's worker (the database is not mocked: the
  // calls run as usual).
  const calls = { claim: 0, due: 0 };
  let inFlight = 0;
  const counted = <T>(call: Promise<T>): Promise<T> => {
    inFlight++;
    return call.finally(() => inFlight--);
  };
  const claim = Engine.prototype.claim;
  const nextDueInMs = Engine.prototype.nextDueInMs;
  Engine.prototype.claim = function (this: Engine, ...args: Parameters<Engine['claim']>) {
    calls.claim++;
    return counted(claim.apply(this, args));
  };
  Engine.prototype.nextDueInMs = function (this: Engine, ...args: Parameters<Engine['nextDueInMs']>) {
    calls.due++;
    return counted(nextDueInMs.apply(this, args));
  };
  t.after(() => {
    Engine.prototype.claim = claim;
    Engine.prototype.nextDueInMs = nextDueInMs;
  });

  // Enqueued on a connection of its own that then flushes its statistics: the worker's
  // activity watch wakes a database on new inserts in pg_stat_database, which a backend
  // reports up to a second after its transaction. Reported after the worker had done the
  // three jobs, they woke it for one more claim and look-up (seen once in CI).
  const producer = new pg.Client(h.url);
  await producer.connect();
  try {
    await h.stepping.enqueueMany(
      producer,
      Array.from({ length: 3 }, () => ({ steps: [noop({})] })),
    );
    await producer.query('SELECT pg_catalog.pg_stat_force_next_flush()');
  } finally {
    await producer.end();
  }
  const w = createWorker({
    databases: [{ id: 'tenant', connectionString: h.url }],
    steps: [noop],
    leaseMs,
    // The safety poll of a watched database: far beyond this test.
    idlePollMaxMs: 600_000,
  });
  t.after(() => withTimeout(w.stop(), 15_000, 'stop()'));
  const errors: string[] = [];
  w.on('error', (e) => errors.push(`${e.during}: ${e.error.message}`));
  await w.start();
  await eventually(
    async () => {
      const { rows } = await h.pool.query(
        `SELECT count(*)::int AS n FROM stepping.jobs WHERE status = 'succeeded'`,
      );
      return rows[0].n === 3;
    },
    20_000,
    'the three jobs done',
  );
  // The worker's look-up after its last report is sent as the last unit is let go (in the
  // same turn): once none is held and no call is in flight, nothing more should come for
  // over two lease lengths.
  await eventually(() => w.running === 0 && inFlight === 0, 10_000, 'no unit held, no call in flight');
  const settled = { ...calls };
  await new Promise((r) => setTimeout(r, 2 * leaseMs + 500));
  assert.deepEqual(
    calls,
    settled,
    `no claim or look-up after the work (before: ${JSON.stringify(settled)}; errors: ${JSON.stringify(errors)})`,
  );
  assert.deepEqual(errors, []);
});
