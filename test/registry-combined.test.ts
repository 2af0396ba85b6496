/**
 * A worker's presence in one database: when its registry beat and a maintenance round are
 * due at the same instant (always, on the grid of a many-databases worker), it makes them
 * one statement. Before, they were two statements and two transactions on each visit of an
 * idle database.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep } from '../src/index.js';
import { resolveWorkerConfig } from '../src/worker/options.js';
import { WorkerPresence } from '../src/worker/registry.js';
import type { Emit } from '../src/worker/settle.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
const noop = defineStep('registry.noop', async () => {});

/** A presence on the grid of a period of 300 ms, recording its statements and events. */
function presence(workerId: string) {
  const statements: string[] = [];
  const events: { event: string; payload: unknown }[] = [];
  const db = {
    query: (text: string, values?: unknown[]) => {
      statements.push(text);
      return h.pool.query(text, values);
    },
  };
  const emit = Object.assign(
    (event: string, payload: unknown) => {
      events.push({ event, payload });
    },
    { wants: () => true },
  ) as unknown as Emit;
  const config = resolveWorkerConfig({
    connectionString: h.url,
    steps: [noop],
    workerId,
    registryHeartbeatMs: 300,
    maintenanceIntervalMs: 300,
  });
  const p = new WorkerPresence(config, db, h.dbName, emit, { spread: () => 300, gridOffsetMs: () => 0 });
  return { p, statements, events };
}

const heartbeatAt = async (id: string): Promise<Date | null> =>
  (await h.pool.query<{ at: Date }>('SELECT heartbeat_at AS at FROM stepping.workers WHERE id = $1', [id]))
    .rows[0]?.at ?? null;

test('a beat and a maintenance round due together are one statement', async () => {
  const { p, statements, events } = presence('registry-combined-1');
  await p.start();
  try {
    await eventually(
      () => events.filter((e) => e.event === 'maintenance').length >= 3,
      10_000,
      'three maintenance rounds',
    );
  } finally {
    await p.stop();
  }
  const beats = statements.filter((s) => s.includes('worker_heartbeat'));
  const rounds = statements.filter((s) => s.includes('maintenance_run'));
  assert.ok(beats.length >= 3, `beats: ${beats.length}`);
  assert.deepEqual(
    beats.filter((s) => !s.includes('maintenance_run')),
    [],
    'no beat on its own',
  );
  assert.deepEqual(
    rounds.filter((s) => !s.includes('worker_heartbeat')),
    [],
    'no maintenance round on its own',
  );
  assert.deepEqual(
    events.filter((e) => e.event === 'error'),
    [],
  );
  assert.equal(await heartbeatAt('registry-combined-1'), null, 'deregistered at stop');
});

test('a worker row deleted as dead is registered again by the combined beat', async () => {
  const id = 'registry-combined-2';
  const { p, events } = presence(id);
  await p.start();
  try {
    assert.ok(await heartbeatAt(id), 'registered');
    await h.pool.query('DELETE FROM stepping.workers WHERE id = $1', [id]);
    await eventually(async () => (await heartbeatAt(id)) !== null, 10_000, 'the row registered again');
  } finally {
    await p.stop();
  }
  assert.deepEqual(
    events.filter((e) => e.event === 'error'),
    [],
  );
});
