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

/**
 * A pg.Client class whose connections never crash the process with an unhandled 'error'
 * event: pg-pool listens for errors on idle clients only, so a checked-out connection
 * terminated by the server (restart, pg_terminate_backend) would otherwise emit one with
 * no listener. The error still reaches the caller through the failing query.
 */
function quietClient(Base: typeof pg.Client): typeof pg.Client {
  return class QuietClient extends Base {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      this.on('error', () => {});
    }
  };
}

/** A labelled pool that survives its connections being dropped. */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: withApplicationName(options.connectionString, options.applicationName),
    max: options.max,
    ...(options.idleTimeoutMillis !== undefined ? { idleTimeoutMillis: options.idleTimeoutMillis } : {}),
    Client: quietClient(options.Client ?? pg.Client),
  });
  pool.on('error', options.onError ?? (() => {}));
  return pool;
}
