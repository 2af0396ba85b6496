/**
 * The one pool factory of the driver and the worker: every connection Stepping opens is
 * labelled in pg_stat_activity (application_name) and an idle connection dropped by the
 * server (restart, terminate) never crashes the process.
 */
import pg from 'pg';
import { parseConnectionUrl } from '../redact.js';

/**
 * `connectionString` with application_name set, unless it sets its own. pg ignores an
 * application_name option next to a connection string, so it goes into the string: as a
 * URL parameter, or appended to a keyword/value string.
 */
export function withApplicationName(connectionString: string, name: string): string {
  if (/(^|[?&\s])application_name=/.test(connectionString)) return connectionString;
  if (/^postgres(ql)?:\/\//i.test(connectionString)) {
    // A URL that a URL parser misreads (a password with an unencoded / ? #) is left alone:
    // rewriting it through new URL() would change where it connects.
    if (parseConnectionUrl(connectionString)?.ambiguity !== 'none') return connectionString;
    try {
      const url = new URL(connectionString);
      url.searchParams.set('application_name', name);
      return url.toString();
    } catch {
      return connectionString;
    }
  }
  return connectionString.includes('=') ? `${connectionString} application_name=${name}` : connectionString;
}

/** Options of createPool. */
export interface PoolOptions {
  connectionString: string;
  /** Shown in pg_stat_activity: `stepping`, `stepping-worker`, ... */
  applicationName: string;
  max: number;
  idleTimeoutMillis?: number;
  /** A pg.Client subclass (the connection budget of multi-database workers). */
  Client?: typeof pg.Client;
  /** Receives errors of idle connections (the pool replaces them on next use). */
  onError?: (error: Error) => void;
}

/** A labelled pool that survives its idle connections being dropped. */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: withApplicationName(options.connectionString, options.applicationName),
    max: options.max,
    ...(options.idleTimeoutMillis !== undefined ? { idleTimeoutMillis: options.idleTimeoutMillis } : {}),
    ...(options.Client ? { Client: options.Client } : {}),
  });
  pool.on('error', options.onError ?? (() => {}));
  return pool;
}
