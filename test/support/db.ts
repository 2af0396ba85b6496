/**
 * Per-test-file databases cloned from the migrated template (CREATE DATABASE ... TEMPLATE),
 * so test files run in parallel without seeing each other's jobs.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';

import pg from 'pg';

import { withDatabase } from '../../scripts/embedded-db.js';
import { TEMPLATE_DB, TEST_DB_PREFIX } from './names.js';

/** The server `npm test` prepared (DATABASE_URL or the embedded one). */
export function serverUrl(): string {
  const url = process.env.STEPPING_TEST_SERVER;
  if (!url) throw new Error('run the tests with `npm test` (it prepares the database server)');
  return url;
}

/**
 * Creates a fresh database for one test file: migrated (cloned from the template), or
 * with `empty`, one without any Stepping objects. Returns its URL and name.
 */
export async function createTestDatabase(
  label: string,
  options: { empty?: boolean } = {},
): Promise<{ url: string; name: string }> {
  const slug = path
    .basename(label)
    .replace(/\.test\.[jt]s$/, '')
    .replace(/[^a-z0-9]+/gi, '_')
    .toLowerCase()
    .slice(0, 30);
  const name = `${TEST_DB_PREFIX}${slug}_${randomBytes(3).toString('hex')}`;
  const admin = await adminPool().connect();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        // FILE_COPY (PostgreSQL 15+; both servers the suite runs on): a file copy instead of
        // WAL_LOG's 5 MB of WAL per database, about 170 databases per run.
        await admin.query(
          `CREATE DATABASE "${name}" TEMPLATE "${options.empty ? 'template1' : TEMPLATE_DB}" STRATEGY FILE_COPY`,
        );
        break;
      } catch (error) {
        // 55006: another clone is reading the template right now; wait and try again.
        if ((error as { code?: string }).code !== '55006' || attempt > 50) throw error;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
  } finally {
    admin.release();
  }
  return { url: withDatabase(serverUrl(), name), name };
}

let admins: pg.Pool | undefined;

/**
 * The connections that clone databases, kept for the file's other clones: a new server
 * process per clone (files that make 20 tenant databases) was a share of the suite's
 * connection starts, which cost this 2-core machine tens of milliseconds each. Idle ones
 * do not keep the process alive.
 */
function adminPool(): pg.Pool {
  admins ??= new pg.Pool({
    connectionString: withDatabase(serverUrl(), 'postgres'),
    max: 2,
    idleTimeoutMillis: 5000,
    allowExitOnIdle: true,
  });
  return admins;
}
