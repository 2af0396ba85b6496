/**
 * Issue 15: after a database outage longer than the lease, a worker resumes claiming as
 * soon as the server answers again. The old worker could stop claiming for good: claim
 * errors pushed its backoff up to 12.8 s, a later timer replaced the backoff's timer and
 * fired inside the backoff window, and that wake-up (and the listener's reconnect) was
 * dropped. The outage here: the database refuses connections and every backend of it is
 * terminated, for longer than the lease, while the handlers run and fail.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { setup } from './support/harness.js';
import { resumeAfterOutage } from './support/outage.js';

const h = await setup(import.meta.url);

test('a worker resumes claiming within seconds of the server answering again after an outage longer than its lease', async (t) => {
  const resumedInMs = await resumeAfterOutage(h, t, 'outage.slow', (steps) =>
    h.worker({ steps, concurrency: 10, leaseMs: 3000 }, t),
  );
  assert.ok(resumedInMs < 5000, `the worker resumed only ${resumedInMs} ms after the outage ended`);
});
