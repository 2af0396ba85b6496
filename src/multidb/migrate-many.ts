/**
 * Migrates many databases concurrently (bounded), reporting each result as it lands;
 * one database failing never stops the others.
 */
import pg from 'pg';

import { schemaName } from '../config.js';
import { migrateSchema } from '../db/migrate.js';
import { maskConnectionString } from '../redact.js';
import { type DatabaseSource, readSource } from './sources.js';

/**
 * Databases migrated at once. Checking an up-to-date database is a connection and one
 * fingerprint read, mostly waiting on the server, so many lanes pay off.
 */
export const DEFAULT_MIGRATE_LANES = 16;

/** Outcome for one database. */
export interface MigrateResult {
  database: string;
  ok: boolean;
  applied: string[];
  /**
   * Roles the schema's grants name that do not exist and that this role may not create
   * (see `stepping roles`): until a DBA creates them, only the schema's owner can use it.
   */
  missingRoles: string[];
  error: string | null;
  ms: number;
}

/** Migrates every database of `source`; `onResult` sees each one as it finishes. */
export async function migrateDatabases(
  source: DatabaseSource,
  options: {
    schema?: string;
    concurrency?: number;
    onResult?: (r: MigrateResult, done: number, total: number) => void;
  } = {},
): Promise<MigrateResult[]> {
  const schema = schemaName(options.schema);
  const databases = await readSource(source);
  const results: MigrateResult[] = [];
  let next = 0;
  const lane = async () => {
    while (next < databases.length) {
      const db = databases[next++]!;
      const started = Date.now();
      let client: pg.Client | undefined;
      let result: MigrateResult;
      try {
        // Inside the try: pg throws from the constructor for a string it cannot parse.
        client = new pg.Client({ connectionString: db.connectionString, connectionTimeoutMillis: 10_000 });
        await client.connect();
        const { applied, missingRoles } = await migrateSchema(client, schema);
        result = { database: db.id, ok: true, applied, missingRoles, error: null, ms: Date.now() - started };
      } catch (error) {
        result = {
          database: db.id,
          ok: false,
          applied: [],
          missingRoles: [],
          error: maskConnectionString((error as Error).message),
          ms: Date.now() - started,
        };
      } finally {
        await client?.end().catch(() => {});
      }
      results.push(result);
      options.onResult?.(result, results.length, databases.length);
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.max(1, Math.min(options.concurrency ?? DEFAULT_MIGRATE_LANES, databases.length)) },
      lane,
    ),
  );
  const order = new Map(databases.map((d, i) => [d.id, i]));
  return results.sort((a, b) => order.get(a.database)! - order.get(b.database)!);
}
