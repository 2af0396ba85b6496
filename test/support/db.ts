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
  const admin = new pg.Client(withDatabase(serverUrl(), 'postgres'));
  await admin.connect();
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
    await admin.end();
  }
  return { url: withDatabase(serverUrl(), name), name };
}
