/**
 * The server process behind a connection, and ending it from another connection: for a
 * query the worker stopped waiting for (a transactional handler's query left running, an
 * engine call past its deadline) whose process would otherwise run on.
 */
import type pg from 'pg';

import type { Queryable } from './queryable.js';

/** A server process, as pg_stat_activity identifies it. */
export interface ServerProcess {
  pid: number;
  /** The client port the server sees (the connection's local TCP port; -1 over a Unix socket). */
  port: number;
}

/**
 * The server process a connection's BackendKeyData names, with the client port the server
 * sees for it. Read without a query: any query at BEGIN would keep a handler from setting
 * its isolation level.
 */
export function serverProcessOf(client: pg.ClientBase): ServerProcess | undefined {
  const { processID, connection } = client as unknown as {
    processID?: unknown;
    connection?: { stream?: { localPort?: unknown } };
  };
  if (typeof processID !== 'number') return undefined;
  const port = connection?.stream?.localPort;
  return { pid: processID, port: typeof port === 'number' ? port : -1 };
}

/**
 * Ends that server process. Only the process serving that very socket: behind PgBouncer
 * the key a client got is the bouncer's, and its number may be some other process's pid.
 * Every name is schema-qualified: a database's owner may set its search_path.
 */
export async function terminateServerProcess(db: Queryable, process: ServerProcess): Promise<void> {
  await db.query(
    `SELECT pg_catalog.pg_terminate_backend(a.pid) FROM pg_catalog.pg_stat_activity a
     WHERE a.pid OPERATOR(pg_catalog.=) $1 AND a.client_port OPERATOR(pg_catalog.=) $2`,
    [process.pid, process.port],
  );
}
