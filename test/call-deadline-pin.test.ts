/**
 * CallDeadline.pin: a starting database's calls run on one connection (one server
 * process) instead of one pool connection per call, one at a time, and the connection goes
 * back to its pool only once the calls sent on it are done.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { CallDeadline } from '../src/db/deadline.js';
import { EngineCallTimeoutError } from '../src/errors.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

function poolAndDeadline(t: { after(fn: () => Promise<void>): void }, ms = 20_000) {
  const pool = new pg.Pool({ connectionString: h.url, max: 4 });
  t.after(() => pool.end());
  const trips: Error[] = [];
  const deadline = new CallDeadline(pool, ms, (e) => trips.push(e));
  return { pool, deadline, db: deadline.pool(), trips };
}

async function pidOf(db: { query(text: string): Promise<{ rows: unknown[] }> }, sleepS = 0): Promise<number> {
  const { rows } = await db.query(`SELECT pg_backend_pid() AS pid, pg_sleep(${sleepS})`);
  return (rows[0] as { pid: number }).pid;
}

test('while pinned, calls sent at once all run on the pinned connection, one at a time', async (t) => {
  const { pool, deadline, db } = poolAndDeadline(t);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  t.after(() => void process.off('warning', onWarning));
  const client = await pool.connect();
  const pinnedPid = await pidOf(client);
  deadline.pin(client);
  const pids = await Promise.all(Array.from({ length: 6 }, (_, i) => pidOf(db, i % 2 === 0 ? 0.02 : 0)));
  assert.deepEqual(pids, Array(6).fill(pinnedPid), 'every call ran in the pinned server process');
  assert.equal(pool.totalCount, 1, 'no other pool connection was opened');
  // node-postgres warns (and pg@9 will refuse) when a client gets a query while it runs one.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    warnings.filter((w) => w.includes('already executing a query')),
    [],
    'calls were queued by the deadline, not by the client',
  );
  deadline.unpin();
  await new Promise((r) => setImmediate(r));
  assert.equal(pool.idleCount, 1, 'given back to its pool');
});

test('unpin while calls are in flight: they finish on the pinned connection, which then goes back to the pool', async (t) => {
  const { pool, deadline, db } = poolAndDeadline(t);
  const client = await pool.connect();
  const pinnedPid = await pidOf(client);
  deadline.pin(client);
  // The first pinned call waits for a lock the test holds: it is in flight until released.
  const blocker = await h.client();
  await blocker.query('SELECT pg_advisory_lock(4242)');
  const locked = db
    .query('SELECT pg_backend_pid() AS pid, pg_advisory_lock(4242), pg_advisory_unlock(4242)')
    .then(({ rows }) => (rows[0] as { pid: number }).pid);
  const inFlight = [locked, pidOf(db)];
  deadline.unpin();
  // Sent after unpin: a pool connection (the pinned one is still checked out).
  const after = await pidOf(db);
  assert.notEqual(after, pinnedPid, 'a call after unpin took a pool connection');
  assert.equal(pool.idleCount, 1, 'that one is idle again; the pinned one is still busy');
  await blocker.query('SELECT pg_advisory_unlock(4242)');
  assert.deepEqual(
    await Promise.all(inFlight),
    [pinnedPid, pinnedPid],
    'calls sent before unpin were not cut off',
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(pool.idleCount, 2, 'the pinned connection went back to the pool after its calls');
});

test('a failed call on the pinned connection gives it back as broken; later calls take pool connections', async (t) => {
  const { pool, deadline, db } = poolAndDeadline(t);
  const client = await pool.connect();
  const pinnedPid = await pidOf(client);
  deadline.pin(client);
  const failing = db.query('SELECT 1/0');
  const next = pidOf(db);
  await assert.rejects(failing, /division by zero/);
  const nextPid = await next;
  assert.notEqual(nextPid, pinnedPid, 'the call queued behind the failure ran on a pool connection');
  assert.equal(pool.totalCount, 1, 'the failed connection was not put back in the pool');
  deadline.unpin(); // nothing pinned any more: a no-op
  assert.equal(await pidOf(db), nextPid);
});

test('a pinned call past the deadline trips it like any call', async (t) => {
  const { pool, deadline, db, trips } = poolAndDeadline(t, 300);
  const client = await pool.connect();
  deadline.pin(client);
  await assert.rejects(db.query('SELECT pg_sleep(5)'), EngineCallTimeoutError);
  assert.equal(trips.length, 1);
  // Tripped: every later call fails at once without a connection.
  await assert.rejects(db.query('SELECT 1'), EngineCallTimeoutError);
  deadline.unpin();
  await deadline.settled();
});
