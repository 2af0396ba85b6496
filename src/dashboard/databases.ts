/**
 * The databases the dashboard shows: one (its pages at `/`), or many (`/db/<id>/`, with a
 * picker at `/`). Each gets a small pool, opened on first use, and a live feed. In
 * many-databases mode idle pools close their connections, and all pools together hold at
 * most `maxConnections`, so paging through a thousand tenants cannot use up the server's.
 */
import pg from 'pg';

import { budgetedClient, ConnectionBudget } from '../multidb/budget.js';
import type { ResolvedDatabase } from '../multidb/sources.js';
import type { DatabaseLink } from './layout.js';
import { LiveFeed, type LiveTiming } from './live.js';

/** Connections per database: a page runs a few queries at once; many databases get fewer each. */
const POOL_SIZE = { single: 4, many: 2 } as const;
/** A dashboard query that runs longer is cancelled by the server (a page must not pile up scans). */
const STATEMENT_TIMEOUT_MS = 30_000;
/** Connecting longer than this fails the page (a down tenant answers quickly with its error). */
const CONNECT_TIMEOUT_MS = 10_000;
/** Idle connections close after this long. */
const IDLE_MS = 10_000;
/** Default of DashboardOptions.maxConnections: query connections over all databases. */
export const DEFAULT_DASHBOARD_MAX_CONNECTIONS = 20;

/** One database as the routes use it. */
export interface DashboardDatabase extends DatabaseLink {
  /** The pool (created on first use). */
  pool(): pg.Pool;
  live: LiveFeed;
}

class Entry implements DashboardDatabase {
  private created: pg.Pool | undefined;
  readonly live: LiveFeed;

  constructor(
    readonly id: string,
    readonly base: string,
    private readonly connectionString: string,
    private readonly max: number,
    private readonly client: typeof pg.Client | undefined,
    channels: readonly string[],
    timing: LiveTiming,
    private readonly warn: (message: string) => void,
  ) {
    this.live = new LiveFeed(
      () => this.pool(),
      channels,
      timing,
      (m) => warn(`${id}: ${m}`),
    );
  }

  pool(): pg.Pool {
    if (!this.created) {
      const pool = new pg.Pool({
        connectionString: this.connectionString,
        max: this.max,
        idleTimeoutMillis: IDLE_MS,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        statement_timeout: STATEMENT_TIMEOUT_MS,
        application_name: 'stepping-dashboard',
        // Many databases: a connection waits for a permit of the shared budget, and while
        // another waits, a released one closes instead of idling (its database is never
        // "busy"), so the permit moves to the page that needs it.
        ...(this.client ? { Client: this.client } : {}),
      });
      // An idle connection dropped by the server (restart, terminate) must not end the process.
      pool.on('error', (error) => this.warn(`${this.id}: idle connection lost: ${error.message}`));
      this.created = pool;
    }
    return this.created;
  }

  async close(): Promise<void> {
    await this.live.close();
    await this.created?.end().catch(() => {});
  }
}

/** The database(s) of one dashboard. */
export class DatabaseRegistry {
  private readonly entries = new Map<string, Entry>();

  /**
   * `many`: pages under `/db/<id>/` and a picker at `/`; otherwise the one database's pages
   * are at `/`. `channels` are the NOTIFY channels that wake live pages.
   */
  constructor(
    databases: readonly ResolvedDatabase[],
    readonly many: boolean,
    channels: readonly string[],
    timing: LiveTiming,
    warn: (message: string) => void,
    maxConnections = DEFAULT_DASHBOARD_MAX_CONNECTIONS,
  ) {
    const client = many ? budgetedClient(new ConnectionBudget(maxConnections), () => false) : undefined;
    for (const d of databases) {
      const base = many ? `/db/${encodeURIComponent(d.id)}` : '';
      const max = many ? Math.min(POOL_SIZE.many, maxConnections) : POOL_SIZE.single;
      this.entries.set(d.id, new Entry(d.id, base, d.connectionString, max, client, channels, timing, warn));
    }
  }

  /** Every database, in the order given. */
  list(): DashboardDatabase[] {
    return [...this.entries.values()];
  }

  /** The database with this id, if configured. */
  get(id: string): DashboardDatabase | undefined {
    return this.entries.get(id);
  }

  /** Open event streams over all databases. */
  streams(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.live.size;
    return n;
  }

  /** Ends every event stream and LISTEN connection (first step of a shutdown: pages still being answered keep their pools). */
  async closeStreams(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.live.close()));
  }

  /** Ends every stream, LISTEN connection and pool. */
  async close(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.close()));
  }
}
