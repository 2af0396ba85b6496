/**
 * The connection budget of many-database workers: a connection waiting for a permit gets
 * one from a connection idle in another database's pool as soon as that one has been idle
 * RECLAIM_IDLE_MS, not after its pool's idle timeout.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type pg from 'pg';

import { createPool } from '../src/db/pool.js';
import { budgetedClient, ConnectionBudget, ConnectionReclaimedError } from '../src/multidb/budget.js';
import { withTimeout } from './fixtures/core-util.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

/**
 * Two pools sharing `budget` (and the factory for more), both "busy" (so releasing keeps a connection) but not using
 * their connections now unless `inUse` says so, with a 10-minute idle timeout.
 */
function twoPools(
  budget: ConnectionBudget,
  t: { after(fn: () => Promise<void>): void },
  inUse: () => boolean = () => false,
) {
  const errors: Error[] = [];
  // One Client class per pool, as a worker makes for each database.
  const pool = (name: string, max: number): pg.Pool => {
    const p = createPool({
      connectionString: h.url,
      applicationName: name,
      max,
      idleTimeoutMillis: 600_000,
      Client: budgetedClient(budget, () => true, inUse),
      onError: (error) => errors.push(error),
    });
    t.after(() => p.end());
    return p;
  };
  return { a: pool('budget-a', 2), b: pool('budget-b', 1), errors, pool };
}

test('a connection wanted while every permit is held by idle connections gets one at once', async (t) => {
  // Before, it waited for the idle connections' pool to close them: 10 minutes here,
  // 250 ms in a worker, where that wait throttled more busy databases than connections.
  const budget = new ConnectionBudget(2);
  const { a, b, errors } = twoPools(budget, t);
  const [c1, c2] = await Promise.all([a.connect(), a.connect()]);
  c1.release();
  c2.release();
  assert.equal(a.idleCount, 2);
  // Idle longer than RECLAIM_IDLE_MS: closed for the waiter at once.
  await new Promise((r) => setTimeout(r, 50));
  const { rows } = await withTimeout(b.query('SELECT 1 AS one'), 20_000, "b's connection");
  assert.deepEqual(rows, [{ one: 1 }]);
  assert.equal(a.totalCount, 1, 'one idle connection of pool a was closed for it');
  assert.deepEqual((await a.query('SELECT 2 AS two')).rows, [{ two: 2 }], 'pool a still works');
  assert.equal(
    errors.every((e) => e instanceof ConnectionReclaimedError),
    true,
    errors.map((e) => e.message).join('; '),
  );
});

test('a connection already waiting gets the permit of one that goes idle; one in use is never closed', async (t) => {
  const budget = new ConnectionBudget(1);
  const { a, b, errors } = twoPools(budget, t);
  const held = await a.connect();
  let bDone = false;
  const bQuery = b.query('SELECT 1 AS one').then((r) => {
    bDone = true;
    return r;
  });
  // In use: the waiter does not get it, however long it waits.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(bDone, false);
  assert.deepEqual(
    (await held.query('SELECT 3 AS three')).rows,
    [{ three: 3 }],
    'the connection in use still works',
  );
  // Released (kept by its busy pool): handed on once idle for RECLAIM_IDLE_MS.
  held.release();
  assert.deepEqual((await withTimeout(bQuery, 20_000, "b's connection")).rows, [{ one: 1 }]);
  assert.equal(a.totalCount, 0);
  assert.equal(
    errors.every((e) => e instanceof ConnectionReclaimedError),
    true,
    errors.map((e) => e.message).join('; '),
  );
});

test('an idle connection of a database using its connections is not closed for a waiter', async (t) => {
  // Closing it between a claim and its report would only cost that database a new one.
  const budget = new ConnectionBudget(1);
  let inUse = true;
  const { a, b, pool } = twoPools(budget, t, () => inUse);
  const held = await a.connect();
  held.release();
  let bDone = false;
  const bQuery = b.query('SELECT 1 AS one').then((r) => {
    bDone = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(bDone, false, 'the idle connection of a database at work was closed');
  // Its database is done with it: the next look (a new waiter, another connection going
  // idle) hands it on, first to the connection waiting longest.
  inUse = false;
  const c = pool('budget-c', 1);
  const cQuery = c.query('SELECT 2 AS two');
  assert.deepEqual((await withTimeout(bQuery, 20_000, "b's connection")).rows, [{ one: 1 }]);
  assert.deepEqual((await withTimeout(cQuery, 20_000, "c's connection")).rows, [{ two: 2 }]);
});
