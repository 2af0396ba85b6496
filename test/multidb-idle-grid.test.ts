/**
 * Many databases: an idle worker's periodic calls (registry beat, maintenance, safety poll,
 * schedule look) are spread over their period across databases instead of coming all at
 * once. Before, every database's period started when it did, so databases started together
 * beat together: at 100 tenants a burst of 100 beats on 100 new connections every 100 s,
 * and nothing in between (which a short look at the idle worker took for silence).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import pg from 'pg';

import { createWorker, defineStep, type Worker } from '../src/index.js';
import { nextOnGrid } from '../src/timers.js';
import { withTimeout } from './fixtures/core-util.js';
import { createTestDatabase } from './support/db.js';
import { eventually } from './support/harness.js';

const noop = defineStep('grid.noop', async () => {});

const dbs = await Promise.all([0, 1, 2, 3].map((i) => createTestDatabase(`idle_grid_${i}`)));
for (const d of dbs) console.log(`# database ${d.name}`);

const workers: Worker[] = [];
after(async () => {
  await Promise.all(workers.map((w) => withTimeout(w.stop(), 15_000, 'stop() in cleanup').catch(() => {})));
});

test('nextOnGrid: the first instant after now on the shifted grid', () => {
  assert.equal(nextOnGrid(10_000, 4000, 0), 12_000);
  assert.equal(nextOnGrid(12_000, 4000, 0), 16_000, 'strictly after now');
  assert.equal(nextOnGrid(10_000, 4000, 2500), 10_500);
  assert.equal(nextOnGrid(10_000, 4000, -1500), 10_500, 'a negative offset is the same grid');
  assert.equal(nextOnGrid(10_000, 4000, 6500), 10_500, 'an offset past the period is the same grid');
});

test('databases started together beat the registry at instants spread over the period, not together', async () => {
  // Four databases: the registry period is stretched to 4 × 1 s (registryHeartbeatMs is
  // lower). Their grid phases are 0, 0.618, 0.236 and 0.854 of it: the first beats span
  // about 2.5 s. Before, each beat 4 s after its own registration: all within the few
  // milliseconds the four starts took.
  const w = createWorker({
    databases: dbs.map((d) => ({ id: d.name, connectionString: d.url })),
    steps: [noop],
    maxConnections: 20,
    registryHeartbeatMs: 100,
    maintenanceIntervalMs: 0,
  });
  workers.push(w);
  const errors: string[] = [];
  w.on('error', (e) => errors.push(`${e.database} (${e.during}): ${e.error.message}`));
  await w.start();

  const clients = dbs.map((d) => new pg.Client(d.url));
  await Promise.all(clients.map((c) => c.connect()));
  try {
    // A worker row's heartbeat_at, or null before its first beat (a registration sets it
    // to started_at) or before the row exists.
    const beatOf = async (c: pg.Client): Promise<number | null> => {
      const { rows } = await c.query<{ beat: Date; started: Date }>(
        `SELECT heartbeat_at AS beat, started_at AS started FROM stepping.workers LIMIT 1`,
      );
      const row = rows[0];
      return row && row.beat.getTime() !== row.started.getTime() ? row.beat.getTime() : null;
    };
    // The first beat of each database (the server's clock), read every 20 ms or so, a
    // fraction of the 4-s period. start() returns before the databases are up.
    const first: (number | null)[] = dbs.map(() => null);
    await eventually(
      async () => {
        const now = await Promise.all(clients.map(beatOf));
        now.forEach((b, i) => {
          if (first[i] === null && b !== null) first[i] = b;
        });
        return first.every((b) => b !== null);
      },
      20_000,
      'a first registry beat in every database',
    );
    const beats = first as number[];
    const span = Math.max(...beats) - Math.min(...beats);
    assert.ok(
      span >= 1500,
      `first beats at ${JSON.stringify(beats.map((b) => b - Math.min(...beats)))} ms: spread over ${span} ms, want ≥ 1500`,
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  await withTimeout(w.stop(), 15_000, 'stop()');
  assert.deepEqual(errors, []);
});
