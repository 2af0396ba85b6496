/**
 * `migrate`: table DDL through node-pg-migrate (versioned files in migrations/), then every
 * function and view in sql/ re-applied with CREATE OR REPLACE. Safe to run concurrently:
 * a session advisory lock per schema serialises runners.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { runner } from 'node-pg-migrate';
import type pg from 'pg';
import { quoteIdent } from '../config.js';
import { packageRoot } from '../paths.js';

/** sql/ files in dependency order: later files call functions of earlier ones. */
export const SQL_FILES = [
  'time.sql',
  'enqueue.sql',
  'transitions.sql',
  'claim.sql',
  'report.sql',
  'lease.sql',
  'admin.sql',
  'views.sql',
] as const;

const silentLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** Brings `schema` in the connected database up to date. Idempotent. */
export async function migrateSchema(client: pg.ClientBase, schema: string): Promise<{ applied: string[] }> {
  const lockKey = `stepping.migrate:${schema}`;
  await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey]);
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
    const ran = await runner({
      dbClient: client,
      dir: path.join(packageRoot, 'migrations'),
      direction: 'up',
      migrationsTable: 'pgmigrations',
      schema,
      migrationsSchema: schema,
      checkOrder: true,
      singleTransaction: true,
      // Our advisory lock above already serialises runners of this schema.
      noLock: true,
      logger: silentLogger,
    });
    await client.query('BEGIN');
    try {
      // Functions are created with SET search_path FROM CURRENT, which pins this path:
      // the schema first, then pg_catalog, pg_temp last (safe for SECURITY DEFINER).
      await client.query(
        `SELECT set_config('search_path', format('%I, pg_catalog, pg_temp', $1::text), true)`,
        [schema],
      );
      for (const file of SQL_FILES) {
        await client.query(await readFile(path.join(packageRoot, 'sql', file), 'utf8'));
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    }
    return { applied: ran.map((m) => m.name) };
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey]);
  }
}
