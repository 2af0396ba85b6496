/**
 * The activity watch's reading (readActivity): one row for a server where nothing moved,
 * every database's insert count when something did. Before, every reading returned a row
 * per served database, twice a second: at 300 idle tenants about a fifth of the worker's
 * busy time went to the watch's tick and to parsing those rows.
 *
 * PostgreSQL's statistics move all the time under a test suite running in parallel, so
 * the readings here share one statistics snapshot (stats_fetch_consistency = snapshot,
 * inside one transaction), and one snapshot of the catalog too (REPEATABLE READ: the
 * signature counts pg_database's rows, which a READ COMMITTED statement reads afresh, and
 * other test files create databases all the time): what moves between them is only what
 * the test does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { readActivity, textArrayLiteral } from '../src/multidb/activity-watch.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

test('a reading returns only the signature while nothing moved, and every count once something did', async () => {
  const c = new pg.Client(h.url);
  await c.connect();
  // This database and one the server does not have: only named databases are counted.
  const names = textArrayLiteral([h.dbName, 'no_such_database']);
  try {
    await c.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL stats_fetch_consistency = snapshot`);
    const first = await readActivity(c, null, names);
    assert.ok(first.counting);
    assert.ok(first.inserted !== null, 'a first reading has counts');
    const mine = first.inserted.get(h.dbName);
    assert.match(mine ?? '', /^\d+$/, `the test database ${h.dbName} is counted`);
    assert.deepEqual([...first.inserted.keys()], [h.dbName], 'only the named databases');

    const again = await readActivity(c, first.signature, names);
    assert.equal(again.signature, first.signature);
    assert.equal(again.inserted, null, 'nothing moved: no per-database rows');

    const stale = await readActivity(c, `${first.signature}x`, names);
    assert.equal(stale.signature, first.signature);
    assert.equal(stale.inserted?.get(h.dbName), mine, 'another signature: every count again');
    await c.query('COMMIT');

    // Inserts (flushed to the statistics by this session's end) move the signature.
    const writer = new pg.Client(h.url);
    await writer.connect();
    await writer.query('CREATE TEMP TABLE moved (x int); INSERT INTO moved SELECT generate_series(1, 5)');
    await writer.end();
    let moved = await readActivity(c, first.signature, names);
    for (let i = 0; i < 200 && moved.inserted === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      moved = await readActivity(c, first.signature, names);
    }
    assert.notEqual(moved.signature, first.signature);
    assert.ok(BigInt(moved.inserted?.get(h.dbName) ?? '0') >= BigInt(mine!) + 5n);
  } finally {
    await c.end();
  }
});

test('textArrayLiteral: names with quotes, backslashes, commas, braces and spaces reach PostgreSQL as they are', async () => {
  const names = ['plain', 'with "quotes"', 'back\\slash', 'a,b', '{braces}', ' spaced ', 'NULL', ''];
  const { rows } = await h.pool.query<{ a: string[] }>('SELECT $1::text[] AS a', [textArrayLiteral(names)]);
  assert.deepEqual(rows[0]!.a, names);
});
