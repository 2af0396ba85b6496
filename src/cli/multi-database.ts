/**
 * `stepping migrate --databases ...` and `stepping status --databases ...`: the same
 * commands over many databases, concurrently (bounded), each failure reported without
 * stopping the others. Exit code 1 when any database failed.
 */
import pg from 'pg';

import { schemaName } from '../config.js';
import { Engine } from '../db/engine.js';
import { migrateDatabases, type MigrateResult } from '../multidb/migrate-many.js';
import { type DatabaseSpec, readSource, type ResolvedDatabase } from '../multidb/sources.js';
import { maskConnectionString, parseConnectionUrl } from '../redact.js';
import { escapeControl, jsonForTerminal } from '../text.js';
import { type CliIo, errorText, EXIT } from './args.js';
import { progressBar } from './progress.js';
import { formatTable, intervalMs } from './table.js';
import type { TerminalControls } from './terminal.js';

/** Migrates every database, printing progress on stderr and a result table on stdout. */
export async function migrateMany(
  specs: DatabaseSpec[],
  schema: string | undefined,
  json: boolean,
  io: CliIo,
  terminal: TerminalControls,
): Promise<number> {
  // Errors are the databases' own words: masked in case one quotes a connection string.
  const masked = (r: MigrateResult): MigrateResult => ({
    ...r,
    error: r.error === null ? null : maskConnectionString(r.error),
  });
  const databases = await readSource(specs);
  const total = databases.length;
  let done = 0;
  const report = (r: MigrateResult) => {
    done += 1;
    const roles =
      r.missingRoles.length > 0 ? `; roles ${r.missingRoles.join(', ')} missing (see stepping roles)` : '';
    const outcome = r.ok ? `ok (${r.applied.length} applied${roles})` : `FAILED: ${r.error}`;
    terminal.progress('');
    io.stderr(`${escapeControl(`[${done}/${total}] ${r.database}: ${outcome}`)}\n`);
    terminal.progress(`migrating ${progressBar(done, total)} ${done}/${total} databases`);
  };
  // Strings node-postgres cannot use fail here, each on its own row, not the whole run.
  const refused: MigrateResult[] = [];
  const usable: ResolvedDatabase[] = [];
  for (const d of databases) {
    const reason = unusable(d.connectionString);
    if (reason === null) usable.push(d);
    else refused.push({ database: d.id, ok: false, applied: [], missingRoles: [], error: reason, ms: 0 });
  }
  refused.forEach(report);
  const migrated =
    usable.length === 0
      ? []
      : await migrateDatabases(usable, {
          ...(schema !== undefined ? { schema } : {}),
          onResult: (result) => report(masked(result)),
        });
  terminal.progress('');
  const order = new Map(databases.map((d, i) => [d.id, i]));
  const results = [...refused, ...migrated.map(masked)].sort(
    (a, b) => order.get(a.database)! - order.get(b.database)!,
  );
  if (json) io.stdout(`${jsonForTerminal(results)}\n`);
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

/**
 * Why node-postgres cannot use a connection string that resolveDatabase accepted, where its
 * own error would be a bare "Invalid URL" or a connection to the wrong host; else null.
 */
function unusable(connectionString: string): string | null {
  const url = parseConnectionUrl(connectionString);
  if (url?.ambiguity === 'password') {
    return (
      'the password in this connection string holds a /, ? or # that a URL cannot carry: ' +
      'percent-encode it (/ is %2F, ? is %3F, # is %23)'
    );
  }
  if (url?.hosts.includes(',')) return 'node-postgres cannot connect to a list of hosts: give one host';
  return null;
}

async function statusOf(id: string, connectionString: string, schema: string): Promise<DatabaseStatus> {
  const base = { database: id, pending: null, running: null, failed: null, oldest_runnable_ms: null };
  const reason = unusable(connectionString);
  if (reason !== null) return { ...base, state: 'down', error: reason };
  let client: pg.Client | undefined;
  try {
    // Inside the try: pg parses the connection string here and may throw.
    client = new pg.Client({ connectionString, connectionTimeoutMillis: 5000 });
    await client.connect();
    // The same reads as `stepping status`: the engine check and the queue_stats view.
    const engine = new Engine(schema);
    if (!(await engine.isMigrated(client)))
      return { ...base, state: 'not migrated', error: `no schema ${schema}: run stepping migrate` };
    let pending = 0;
    let running = 0;
    let failed = 0;
    let oldest: number | null = null;
    for (const row of await engine.queueStats(client)) {
      const jobs = Number(row.jobs);
      if (row.status === 'pending') pending += jobs;
      else if (row.status === 'running' || row.status === 'compensating') running += jobs;
      else if (row.status === 'failed') failed += jobs;
      const age = intervalMs(row.oldest_runnable_age);
      if (age !== null) oldest = Math.max(oldest ?? 0, age);
    }
    return { database: id, state: 'ok', pending, running, failed, oldest_runnable_ms: oldest, error: null };
  } catch (error) {
    return { ...base, state: 'down', error: errorText(error) };
  } finally {
    await client?.end().catch(() => {});
  }
}

/** One line per database: reachable and migrated, job counts, or why not. */
export async function statusMany(
  specs: DatabaseSpec[],
  schemaOption: string | undefined,
  json: boolean,
  io: CliIo,
): Promise<number> {
  const schema = schemaName(schemaOption);
  const databases = await readSource(specs);
  const results: DatabaseStatus[] = [];
  for (let i = 0; i < databases.length; i += 8) {
    results.push(
      ...(await Promise.all(
        databases.slice(i, i + 8).map((d) => statusOf(d.id, d.connectionString, schema)),
      )),
    );
  }
  if (json) io.stdout(`${jsonForTerminal(results)}\n`);
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
