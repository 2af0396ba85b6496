/**
 * Login roles for tests that must not run as a superuser (who bypasses every grant).
 * Roles are cluster-wide: names carry the run id, and they are dropped after the file.
 */
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';

import pg from 'pg';

import { withDatabase } from '../../scripts/embedded-db.js';
import { serverUrl } from './db.js';
import { TEST_RUN_ID } from './names.js';

const created: string[] = [];

// Registered when a test file imports this module, so roles live until the file ends
// (registered inside a test, the hook would run when that test ends).
after(async () => {
  if (created.length === 0) return;
  await admin(async (c) => {
    for (const role of created) {
      // Objects granted to it in kept test databases would block DROP ROLE; ignore.
      await c.query(`DROP ROLE IF EXISTS "${role}"`).catch(() => {});
    }
  });
});

async function admin<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(withDatabase(serverUrl(), 'postgres'));
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

/**
 * Creates a login role that is a member of `memberOf` (e.g. 'stepping_worker') and
 * returns a connection string for `databaseUrl` that logs in as it.
 */
export async function loginRole(
  databaseUrl: string,
  memberOf: readonly string[],
  label: string,
): Promise<string> {
  const role = `stp_${TEST_RUN_ID}_${label}_${randomBytes(2).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await admin(async (c) => {
    await c.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}'`);
    for (const member of memberOf) await c.query(`GRANT "${member}" TO "${role}"`);
  });
  created.push(role);
  const url = new URL(databaseUrl);
  url.username = role;
  url.password = password;
  return url.toString();
}
