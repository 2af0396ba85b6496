/**
 * `migrate` through PgBouncer in transaction pooling mode must not leave a session
 * advisory lock on a pooled server connection (today it does: pg_advisory_lock runs on one
 * server connection, pg_advisory_unlock on another, and the next migrate through the pool
 * blocks forever). Either it works without session state, or it refuses with a clear
 * error asking for a direct connection; both pass this test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createStepping, SteppingError } from '../src/index.js';
import { serverUrl } from './support/db.js';
import { setup } from './support/harness.js';
import { startPgBouncer } from './support/pgbouncer.js';

const h = await setup(import.meta.url);

test('migrate through PgBouncer (transaction pooling) leaks no advisory lock and does not hang', async () => {
  const bouncer = await startPgBouncer(serverUrl());
  const stepping = createStepping({ connectionString: bouncer.url(h.dbName) });
  const leakedLocks = async () =>
    (
      await h.pool.query(
        `SELECT count(*)::int AS n FROM pg_locks
          WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      )
    ).rows[0].n as number;
  try {
    // Round robin over k server connections puts the lock and the unlock on different ones
    // unless the statements between them are a multiple of k: try k = 2, 3 and 4.
    for (const k of [2, 3, 4]) {
      await bouncer.warm(h.dbName, k);
      // Not up to date, so migrate does its whole work (an up-to-date one is one query).
      await h.pool.query('UPDATE stepping.settings SET fingerprint = NULL');
      await stepping.migrate().catch((error: unknown) => {
        // A refusal is fine if it says what to do.
        assert.ok(error instanceof SteppingError, String(error));
        assert.match(error.message, /direct/);
      });
      assert.equal(
        await leakedLocks(),
        0,
        `an advisory lock was left on a pooled server connection (k = ${k})`,
      );
    }
  } finally {
    await stepping.close();
    await bouncer.stop();
  }
});
