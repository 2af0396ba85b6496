/**
 * Issue 12: maintenance leadership through PgBouncer in transaction pooling mode. The
 * lock is a transaction lock, so calls through the pool leave nothing behind on pooled
 * server connections, and a worker connected through PgBouncer registers, heartbeats and
 * leads maintenance like a direct one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { OpsCalls } from '../src/db/ops.js';
import { createWorker, defineStep, type WorkerEventMap } from '../src/index.js';
import { serverUrl } from './support/db.js';
import { eventually, setup } from './support/harness.js';
import { startPgBouncer } from './support/pgbouncer.js';

const h = await setup(import.meta.url);
const ops = new OpsCalls('stepping');

test('maintenance_run through PgBouncer leaves no advisory lock, and a worker behind it leads and registers', async () => {
  const bouncer = await startPgBouncer(serverUrl());
  const pool = new pg.Pool({ connectionString: bouncer.url(h.dbName), max: 4 });
  const advisoryLocks = async () =>
    (
      await h.pool.query(
        `SELECT count(*)::int AS n FROM pg_locks
          WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      )
    ).rows[0].n as number;
  const worker = createWorker({
    connectionString: bouncer.url(h.dbName),
    steps: [defineStep('pgbm.noop', async () => {})],
    workerId: 'pgbm-worker',
    maintenanceIntervalMs: 50,
    // Alive means a beat within three periods: 100 ms periods made the worker look dead
    // whenever a loaded machine delayed a beat by 300 ms (seen in a full parallel run).
    registryHeartbeatMs: 5000,
  });
  const runs: WorkerEventMap['maintenance'][] = [];
  worker.on('maintenance', (e) => runs.push(e));
  worker.on('error', () => {}); // LISTEN through the bouncer hears nothing: it says so and polls
  try {
    for (let i = 0; i < 6; i++) assert.equal((await ops.maintenance(pool, null)).leader, true);
    assert.equal(await advisoryLocks(), 0, 'nothing held between calls');
    await worker.start();
    await eventually(() => runs.some((r) => r.leader), 10_000, 'a leader run through the bouncer');
    assert.ok((await ops.liveWorkers(h.pool)).some((w) => w.workerId === 'pgbm-worker'));
    await worker.stop();
    assert.equal(await advisoryLocks(), 0);
    assert.ok(!(await ops.liveWorkers(h.pool)).some((w) => w.workerId === 'pgbm-worker'), 'deregistered');
  } finally {
    await worker.stop();
    await pool.end();
    await bouncer.stop();
  }
});
