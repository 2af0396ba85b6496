/**
 * Database administration for the benchmark: fresh databases (cloned from a migrated
 * template per library), statistics views, and server facts for the report. Every
 * database made here is named bench_<pid>_... and dropped at the end.
 */
import pg from 'pg';

import { withDatabase } from '../../scripts/embedded-db.js';

/** Runs one statement on a short-lived connection. */
export async function queryOnce<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

function ident(name: string): string {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
  return `"${name}"`;
}

/** Creates and drops the benchmark's databases on one server. */
export class DatabaseFactory {
  private readonly created = new Set<string>();
  private counter = 0;
  readonly prefix = `bench_${process.pid}`;

  constructor(readonly serverUrl: string) {}

  /** Connection string of `database` on the server. */
  url(database: string): string {
    return withDatabase(this.serverUrl, database);
  }

  /**
   * Creates a database (optionally a copy of `template`) and returns its name. `strategy`
   * (PostgreSQL 15+) picks how a template is copied; `trackFunctions` turns on
   * per-function statistics for the profile.
   */
  async create(
    label: string,
    template?: string,
    options: { strategy?: 'WAL_LOG' | 'FILE_COPY'; trackFunctions?: boolean } = {},
  ): Promise<string> {
    const name = `${this.prefix}_${label}_${++this.counter}`;
    const strategy =
      template && options.strategy && (await this.serverVersionNum()) >= 150000
        ? ` STRATEGY ${options.strategy}`
        : '';
    await queryOnce(
      this.serverUrl,
      `CREATE DATABASE ${ident(name)}${template ? ` TEMPLATE ${ident(template)}${strategy}` : ''}`,
    );
    this.created.add(name);
    if (options.trackFunctions ?? true) {
      // Per-function call counts and times (pg_stat_user_functions) for the profile; needs
      // superuser, so a server reached through DATABASE_URL may refuse it (then: no profile).
      await queryOnce(this.serverUrl, `ALTER DATABASE ${ident(name)} SET track_functions = 'all'`).catch(
        () => {},
      );
    }
    return name;
  }

  private versionNum: number | null = null;

  /** server_version_num of the server. */
  async serverVersionNum(): Promise<number> {
    if (this.versionNum === null) {
      const [row] = await queryOnce<{ v: string }>(this.serverUrl, 'SHOW server_version_num');
      this.versionNum = Number(row?.v ?? 0);
    }
    return this.versionNum;
  }

  /** Drops a database made by create(), closing its remaining connections. */
  async drop(name: string): Promise<void> {
    await queryOnce(this.serverUrl, `DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
    this.created.delete(name);
  }

  /** Drops every database this factory made and has not dropped yet, four at a time. */
  async dropAll(): Promise<void> {
    const names = [...this.created];
    let next = 0;
    const lane = async () => {
      while (next < names.length) await this.drop(names[next++]!).catch(() => {});
    };
    await Promise.all([lane(), lane(), lane(), lane()]);
  }
}

/** Committed transactions of a database so far (pg_stat_database.xact_commit). */
export async function committedTransactions(url: string): Promise<number> {
  const rows = await queryOnce<{ n: string }>(
    url,
    `SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()`,
  );
  return Number(rows[0]?.n ?? Number.NaN);
}

/** Write counters of one table (pg_stat_user_tables). */
export interface TableStats {
  table: string;
  inserted: number;
  updated: number;
  hotUpdated: number;
  deleted: number;
  seqScans: number;
  indexScans: number;
}

/** Write counters of every user table of the database at `url`. */
export async function tableStats(url: string): Promise<TableStats[]> {
  const rows = await queryOnce<Record<string, string>>(
    url,
    `SELECT schemaname || '.' || relname AS t, n_tup_ins::text AS ins, n_tup_upd::text AS upd,
            n_tup_hot_upd::text AS hot, n_tup_del::text AS del, seq_scan::text AS seq,
            coalesce(idx_scan, 0)::text AS idx
     FROM pg_stat_user_tables ORDER BY 1`,
  );
  return rows.map((r) => ({
    table: String(r.t),
    inserted: Number(r.ins),
    updated: Number(r.upd),
    hotUpdated: Number(r.hot),
    deleted: Number(r.del),
    seqScans: Number(r.seq),
    indexScans: Number(r.idx),
  }));
}

/** Calls and times of one PL/pgSQL or SQL function (pg_stat_user_functions). */
export interface FunctionStats {
  fn: string;
  calls: number;
  totalMs: number;
  selfMs: number;
}

/** Function statistics of the database at `url` (empty unless track_functions is on). */
export async function functionStats(url: string): Promise<FunctionStats[]> {
  const rows = await queryOnce<Record<string, string>>(
    url,
    `SELECT schemaname || '.' || funcname AS f, calls::text AS calls, total_time::text AS total,
            self_time::text AS self
     FROM pg_stat_user_functions ORDER BY total_time DESC`,
  );
  return rows.map((r) => ({
    fn: String(r.f),
    calls: Number(r.calls),
    totalMs: Number(r.total),
    selfMs: Number(r.self),
  }));
}

/** The server's version string and settings that matter to the figures. */
export async function serverFacts(url: string): Promise<Record<string, string>> {
  const rows = await queryOnce<{ name: string; setting: string }>(
    url,
    `SELECT name, setting FROM pg_settings
     WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_compression',
                    'shared_buffers', 'max_connections', 'shared_preload_libraries', 'wal_level',
                    'autovacuum', 'checkpoint_timeout', 'max_wal_size')`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
}

/** Per-table differences of two tableStats() readings (tables only in `after` count from zero). */
export function tableStatsDelta(before: TableStats[], after: TableStats[]): TableStats[] {
  const old = new Map(before.map((t) => [t.table, t]));
  return after.map((t) => {
    const b = old.get(t.table);
    return {
      table: t.table,
      inserted: t.inserted - (b?.inserted ?? 0),
      updated: t.updated - (b?.updated ?? 0),
      hotUpdated: t.hotUpdated - (b?.hotUpdated ?? 0),
      deleted: t.deleted - (b?.deleted ?? 0),
      seqScans: t.seqScans - (b?.seqScans ?? 0),
      indexScans: t.indexScans - (b?.indexScans ?? 0),
    };
  });
}
