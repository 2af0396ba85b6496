/**
 * A database joins its server's activity watch with its own insert count, read by its
 * start in the round trip of its schema check, and takes no reading of the server's
 * statistics of its own. Before, every start asked for a reading begun after it joined:
 * at 1,000 tenants (`npm run bench -- --only many-databases --databases 1000`) the watch
 * read pg_stat_database about 55 times a second, back to back, while the databases
 * started, and each start waited for one. The baseline must still miss nothing: an
 * insert after it wakes the database, also when it joined while a reading that did not
 * ask for it was running.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { Engine } from '../src/db/engine.js';
import { ActivityWatch, type ActivityWatcher } from '../src/multidb/activity-watch.js';
import { withTimeout } from './fixtures/core-util.js';
import { createTestDatabase } from './support/db.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
const engine = new Engine('stepping');

/** Only requested readings: the interval never fires within a test. */
const NO_INTERVAL_MS = 3_600_000;

interface Probe {
  watcher: ActivityWatcher;
  woken: number;
  watched: boolean[];
}

function probe(datname: string, url: string): Probe {
  const p: Probe = {
    woken: 0,
    watched: [],
    watcher: {
      datname,
      config: { connectionString: url },
      wake: () => (p.woken += 1),
      watched: (covered) => p.watched.push(covered),
      ownInserts: 0,
    },
  };
  return p;
}

/** Counts the watch's readings (the statements that read pg_stat_database), and can hold the next one. */
function readingSpy(): {
  count: () => number;
  hold: () => { started: Promise<void>; release: () => void };
  restore: () => void;
} {
  const query = pg.Client.prototype.query;
  let readings = 0;
  let gate: { started: () => void; released: Promise<void> } | null = null;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (typeof args[0] === 'string' && args[0].includes('pg_catalog.pg_stat_database')) {
      readings += 1;
      const g = gate;
      gate = null;
      if (g) {
        g.started();
        return g.released.then(() => (query as (...a: unknown[]) => unknown).apply(this, args));
      }
    }
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  return {
    count: () => readings,
    hold: () => {
      let started: () => void = () => {};
      let release: () => void = () => {};
      const startedP = new Promise<void>((resolve) => (started = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      gate = { started, released };
      return { started: startedP, release };
    },
    restore: () => {
      pg.Client.prototype.query = query;
    },
  };
}

/** A database and its insert count as its start reads it (pg_stat_database's tup_inserted). */
async function tenant(label: string): Promise<{ url: string; name: string; inserted: string }> {
  const db = await createTestDatabase(label);
  const c = new pg.Client(db.url);
  await c.connect();
  try {
    const { rows } = await c.query<{ n: string }>(
      'SELECT tup_inserted::text AS n FROM pg_stat_database WHERE datname = current_database()',
    );
    return { ...db, inserted: rows[0]!.n };
  } finally {
    await c.end();
  }
}

/** Inserts rows in a database on a session of its own; its statistics reach the view as that session ends. */
async function insertRows(url: string): Promise<void> {
  const c = new pg.Client(url);
  await c.connect();
  await c.query('CREATE TEMP TABLE moved (x int); INSERT INTO moved SELECT generate_series(1, 5)');
  await c.end();
}

/** Asks for readings until `done` holds, at most 10 s (the ended session's statistics arrive on their own). */
async function readUntil(watch: ActivityWatch, done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !done(); i++) {
    await watch.firstLook();
    if (!done()) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return done();
}

test('readiness reads the database insert count in the round trip of the schema check', async () => {
  const c = await h.pool.connect();
  try {
    const r = await engine.readiness(c, true);
    assert.equal(r.ready, true);
    assert.equal(r.name, h.dbName);
    assert.match(r.inserted ?? '', /^\d+$/);
    const { rows } = await c.query<{ n: string }>(
      'SELECT tup_inserted::text AS n FROM pg_stat_database WHERE datname = current_database()',
    );
    assert.ok(BigInt(r.inserted!) <= BigInt(rows[0]!.n), 'the count pg_stat_database shows, read before it');
    assert.equal((await engine.readiness(c)).inserted, null, 'not read unless asked');
  } finally {
    c.release();
  }
});

test('databases joining a live watch with their counts take no reading of their own, and an insert after wakes only its database', async () => {
  const spy = readingSpy();
  const errors: Error[] = [];
  const watch = new ActivityWatch(null, (e) => errors.push(e), NO_INTERVAL_MS);
  try {
    const first = probe(h.dbName, h.url);
    watch.add(first.watcher);
    await watch.firstLook(h.dbName);
    assert.equal(spy.count(), 1, 'the first database waits for the first reading');

    const tenants = await Promise.all([1, 2, 3].map((i) => tenant(`awb_${i}`)));
    const probes = tenants.map((t) => probe(t.name, t.url));
    for (const [i, t] of tenants.entries()) {
      watch.add(probes[i]!.watcher, t.inserted);
      await watch.firstLook(t.name);
      assert.deepEqual(probes[i]!.watched, [true], 'told it is watched when it joins');
    }
    assert.equal(spy.count(), 1, 'three databases joined without a reading');

    await insertRows(tenants[1]!.url);
    assert.ok(
      await readUntil(watch, () => probes[1]!.woken > 0),
      'the insert after the baseline woke its database',
    );
    assert.equal(probes[0]!.woken + probes[2]!.woken, 0, 'the others stay asleep');
    assert.deepEqual(
      probes.map((p) => p.watched.at(-1)),
      [true, true, true],
    );
    assert.deepEqual(errors, []);
  } finally {
    spy.restore();
    await watch.close();
  }
});

test('a database joining while a reading that did not ask for it runs keeps its baseline: an insert after it still wakes it', async () => {
  const spy = readingSpy();
  const errors: Error[] = [];
  const watch = new ActivityWatch(null, (e) => errors.push(e), NO_INTERVAL_MS);
  try {
    watch.add(probe(h.dbName, h.url).watcher);
    await watch.firstLook(h.dbName);
    const t = await tenant('awb_inflight');
    const late = probe(t.name, t.url);

    // A reading runs, asking for the databases watched before this one joins.
    const held = spy.hold();
    const look = watch.firstLook();
    await held.started;
    watch.add(late.watcher, t.inserted);
    // Before, it waited for a reading begun after it joined: behind the held one.
    await withTimeout(watch.firstLook(t.name), 5_000, 'a baseline without a reading of its own');
    // Rows inserted after its baseline, while that reading is still held.
    await insertRows(t.url);
    held.release();
    await look;
    // Before, the reading told it it was not watched and dropped its count; the next
    // reading then took the count with these rows in it as its baseline, and never woke it.
    assert.deepEqual(late.watched, [true], 'not told it is unwatched by a reading that did not ask for it');
    assert.ok(await readUntil(watch, () => late.woken > 0), 'the insert after its baseline woke it');
    assert.deepEqual(errors, []);
  } finally {
    spy.restore();
    await watch.close();
  }
});

test('a database joining a watch that has not read yet waits for a reading, as before', async () => {
  const spy = readingSpy();
  const watch = new ActivityWatch(null, () => {}, NO_INTERVAL_MS);
  try {
    const t = await tenant('awb_cold');
    const p = probe(t.name, t.url);
    watch.add(p.watcher, t.inserted);
    assert.deepEqual(p.watched, [], 'a watch with no reading yet takes no baseline');
    await watch.firstLook(t.name);
    assert.equal(spy.count(), 1);
    assert.deepEqual(p.watched, [true]);
  } finally {
    spy.restore();
    await watch.close();
  }
});
