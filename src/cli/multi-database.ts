/**
 * `stepping migrate --databases ...` and `stepping status --databases ...`: the same
 * commands over many databases, concurrently (bounded), each failure reported without
 * stopping the others. Exit code 1 when any database failed.
 */
import pg from 'pg';
import { checkSchema, quoteIdent } from '../config.js';
import { migrateDatabases } from '../multidb/migrate-many.js';
import { readSource, type DatabaseSpec } from '../multidb/sources.js';
import { describeError, EXIT, type CliIo } from './args.js';
import { formatTable } from './table.js';

/** Migrates every database, printing progress on stderr and a result table on stdout. */
export async function migrateMany(
  specs: DatabaseSpec[],
  schema: string | undefined,
  json: boolean,
  io: CliIo,
): Promise<number> {
  const results = await migrateDatabases(specs, {
    ...(schema !== undefined ? { schema } : {}),
    concurrency: 4,
    onResult: (r, done, total) =>
      io.stderr(
        `[${done}/${total}] ${r.database}: ${r.ok ? `ok (${r.applied.length} applied)` : `FAILED: ${r.error}`}\n`,
      ),
  });
  if (json) io.stdout(`${JSON.stringify(results, null, 2)}\n`);
  else {
    io.stdout(
      `${formatTable(results, [
        { header: 'database', value: (r) => r.database },
        { header: 'result', value: (r) => (r.ok ? 'migrated' : 'failed') },
        { header: 'applied', value: (r) => r.applied.length, right: true },
        { header: 'ms', value: (r) => r.ms, right: true },
        { header: 'error', value: (r) => r.error },
      ])}\n`,
    );
  }
  return results.every((r) => r.ok) ? EXIT.ok : EXIT.failure;
}

interface DatabaseStatus {
  database: string;
  state: 'ok' | 'down' | 'not migrated';
  pending: number | null;
  running: number | null;
  failed: number | null;
  oldest_runnable_ms: number | null;
  error: string | null;
}

async function statusOf(id: string, connectionString: string, schema: string): Promise<DatabaseStatus> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 5000 });
  const base = { database: id, pending: null, running: null, failed: null, oldest_runnable_ms: null };
  try {
    await client.connect();
    const { rows: ready } = await client.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [
      `${quoteIdent(schema)}.queue_stats`,
    ]);
    if (!ready[0]?.ok)
      return { ...base, state: 'not migrated', error: `no schema ${schema}: run stepping migrate` };
    const { rows } = await client.query(
      `SELECT coalesce(sum(jobs) FILTER (WHERE status = 'pending'), 0)::int AS pending,
              coalesce(sum(jobs) FILTER (WHERE status IN ('running', 'compensating')), 0)::int AS running,
              coalesce(sum(jobs) FILTER (WHERE status = 'failed'), 0)::int AS failed,
              (extract(epoch FROM max(oldest_runnable_age)) * 1000)::bigint AS oldest
       FROM ${quoteIdent(schema)}.queue_stats`,
    );
    const r = rows[0] as { pending: number; running: number; failed: number; oldest: string | null };
    return {
      database: id,
      state: 'ok',
      pending: r.pending,
      running: r.running,
      failed: r.failed,
      oldest_runnable_ms: r.oldest === null ? null : Number(r.oldest),
      error: null,
    };
  } catch (error) {
    return { ...base, state: 'down', error: describeError(error) };
  } finally {
    await client.end().catch(() => {});
  }
}

/** One line per database: reachable and migrated, job counts, or why not. */
export async function statusMany(
  specs: DatabaseSpec[],
  schemaOption: string | undefined,
  json: boolean,
  io: CliIo,
): Promise<number> {
  const schema = checkSchema(schemaOption);
  const databases = await readSource(specs);
  const results: DatabaseStatus[] = [];
  for (let i = 0; i < databases.length; i += 8) {
    results.push(
      ...(await Promise.all(
        databases.slice(i, i + 8).map((d) => statusOf(d.id, d.connectionString, schema)),
      )),
    );
  }
  if (json) io.stdout(`${JSON.stringify(results, null, 2)}\n`);
  else {
    io.stdout(
      `${formatTable(results, [
        { header: 'database', value: (r) => r.database },
        { header: 'state', value: (r) => r.state },
        { header: 'pending', value: (r) => r.pending, right: true },
        { header: 'running', value: (r) => r.running, right: true },
        { header: 'failed', value: (r) => r.failed, right: true },
        { header: 'oldest runnable ms', value: (r) => r.oldest_runnable_ms, right: true },
        { header: 'error', value: (r) => r.error },
      ])}\n`,
    );
  }
  return results.every((r) => r.state === 'ok') ? EXIT.ok : EXIT.failure;
}
