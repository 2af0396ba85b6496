/**
 * `migrate`: table DDL through node-pg-migrate (versioned files in migrations/), then every
 * function and view in sql/ re-applied with CREATE OR REPLACE. Safe to run concurrently:
 * a session advisory lock per schema serialises runners.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
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

/** Drops every view, then every function, of the schema named by the setting stepping.migrate_schema. */
const DROP_CODE = `
DO $drop$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT c.oid::regclass AS v FROM pg_class c
           WHERE c.relnamespace = to_regnamespace(current_setting('stepping.migrate_schema')) AND c.relkind = 'v' LOOP
    EXECUTE format('DROP VIEW %s', r.v);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p
           WHERE p.pronamespace = to_regnamespace(current_setting('stepping.migrate_schema')) LOOP
    EXECUTE format('DROP FUNCTION %s', r.f);
  END LOOP;
END
$drop$`;

const silentLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** Brings `schema` in the connected database up to date. Idempotent. */
export async function migrateSchema(client: pg.ClientBase, schema: string): Promise<{ applied: string[] }> {
  const lockKey = `stepping.migrate:${schema}`;
  // node-pg-migrate sets search_path for the session; the caller's connection gets its own back.
  const { rows } = await client.query<{ path: string }>(`SELECT current_setting('search_path') AS path`);
  const callerPath = rows[0]!.path;
  await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey]);
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
    // Loaded only when migrating, so workers do not carry it.
    const { runner } = await import('node-pg-migrate');
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
      // Replace, not patch: CREATE OR REPLACE cannot change a function's result type, and
      // a function removed from sql/ must not linger. The schema belongs to Stepping;
      // tables are untouched. All in this transaction: callers see old or new, never none.
      await client.query(`SELECT set_config('stepping.migrate_schema', $1, true)`, [schema]);
      await client.query(DROP_CODE);
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
    await client.query(`SELECT set_config('search_path', $1, false)`, [callerPath]);
    await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey]);
  }
}
