/**
 * After a database outage, a many-databases worker whose database has no LISTEN
 * connection resumes as soon as its activity watch reads the server again (found by the
 * torture run: two-database workers resumed 3.5–6.4 s after outages, their claim backoff
 * of up to 5 s running out first). Its own file: the outage terminates every backend of
 * the file's database, and each file has its own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createWorker } from '../src/index.js';
import { setup } from './support/harness.js';
import { resumeAfterOutage } from './support/outage.js';

const h = await setup(import.meta.url);

test('a many-databases worker without a listener resumes as soon as its activity watch reads the server again', async (t) => {
  // A budget of 4 connections: the activity watch takes the one listener permit, so the
  // database has no LISTEN connection and nothing but the watch tells the worker that the
  // server is back. Its claim backoff (up to 5 s without a listener) used to run out
  // first: the torture's two-database workers resumed 3.5–6.4 s after outages.
  const resumedInMs = await resumeAfterOutage(h, t, 'outage.slow-many', async (steps) => {
    const w = createWorker({ databases: [h.url], maxConnections: 4, steps, concurrency: 10, leaseMs: 3000 });
    await w.start();
    assert.equal(
      w.databaseStates().filter((d) => d.listening).length,
      0,
      'the database has no listener (the watch holds the only listener permit)',
    );
    return w;
  });
  // The watch reads every 500 ms; a claim and a handler start take milliseconds.
  assert.ok(resumedInMs < 2500, `the worker resumed only ${resumedInMs} ms after the outage ended`);
});
