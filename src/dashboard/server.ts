/**
 * `startDashboard`: a node:http server rendering pages from one database or many. No
 * framework, no bundle, nothing fetched from elsewhere at run time. It needs only the
 * operator role: it reads the views and calls job_retry / job_cancel.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { checkInt, schemaName } from '../config.js';
import { ConfigError, SteppingError } from '../errors.js';
import { type DatabaseSpec, readSource, resolveDatabase, type ResolvedDatabase } from '../multidb/sources.js';
import { DatabaseRegistry, DEFAULT_DASHBOARD_MAX_CONNECTIONS } from './databases.js';
import { LIVE_TIMING, type LiveTiming } from './live.js';
import { DashboardQueries } from './queries.js';
import type { RouteContext } from './respond.js';
import { handleRequest } from './routes.js';
import { type ListenAddress, randomToken } from './security.js';

/** Port when none is given. */
export const DEFAULT_DASHBOARD_PORT = 4000;
/** Host when none is given: only this machine can connect. */
export const DEFAULT_DASHBOARD_HOST = '127.0.0.1';
/** How long a shutdown waits for pages being answered before closing their connections. */
const SHUTDOWN_GRACE_MS = 5000;

/** Options of startDashboard: one database (`connectionString`) or many (`databases`). */
export interface DashboardOptions {
  connectionString?: string;
  /** Many-databases mode: a picker at `/`, each database under `/db/<id>/`. */
  databases?: readonly DatabaseSpec[];
  /** Schema holding Stepping (default `stepping`). */
  schema?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 4000; 0 picks a free port (see Dashboard.port). */
  port?: number;
  /** Show retry and cancel buttons and accept their POSTs (default false: read-only). */
  allowActions?: boolean;
  /**
   * With `databases`: most query connections open at once over all of them (default 20);
   * a page waits for one. LISTEN connections of open live pages are not counted.
   */
  maxConnections?: number;
  /** Live-update timing (tests shorten the poll). */
  live?: Partial<LiveTiming>;
  /** Where notes go (actions taken, LISTEN problems, failed pages). Default: nowhere. */
  log?: (line: string) => void;
}

/** A running dashboard. */
export interface Dashboard {
  /** `http://127.0.0.1:4000/` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly allowActions: boolean;
  /** Stops accepting, ends live streams, lets pages being answered finish (up to 5 s), closes connections. Idempotent. */
  close(): Promise<void>;
}

/** The dashboard could not start listening (port in use, address not available). */
export class DashboardListenError extends SteppingError {
  override name = 'DashboardListenError';
}

function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

async function databasesOf(options: DashboardOptions): Promise<{ list: ResolvedDatabase[]; many: boolean }> {
  if ((options.connectionString === undefined) === (options.databases === undefined)) {
    throw new ConfigError('the dashboard needs either connectionString (one database) or databases (many)');
  }
  if (options.databases !== undefined) {
    const list = await readSource(options.databases);
    if (list.length === 0) throw new ConfigError('databases lists no database');
    return { list, many: true };
  }
  const connectionString = options.connectionString!;
  let id = 'database';
  try {
    id = resolveDatabase(connectionString).id;
  } catch {
    // Only a label for the page (node-postgres reports an unusable string itself); never credentials.
  }
  return { list: [{ id, connectionString }], many: false };
}

async function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(error);
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  }).catch((error: NodeJS.ErrnoException) => {
    throw new DashboardListenError(
      `cannot listen on ${urlHost(host)}:${port}: ${error.code ?? error.message}`,
      {
        cause: error,
      },
    );
  });
  return server.address() as AddressInfo;
}

/** Starts the dashboard; resolves once it listens. */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const schema = schemaName(options.schema);
  const host = options.host ?? DEFAULT_DASHBOARD_HOST;
  if (typeof host !== 'string' || host.trim() === '')
    throw new ConfigError('host must be a host name or address');
  const port = checkInt('port', options.port ?? DEFAULT_DASHBOARD_PORT, 0, 65_535);
  const timing: LiveTiming = { ...LIVE_TIMING, ...options.live };
  const log = options.log ?? (() => {});
  const maxConnections = checkInt(
    'maxConnections',
    options.maxConnections ?? DEFAULT_DASHBOARD_MAX_CONNECTIONS,
    1,
    100_000,
  );
  const { list, many } = await databasesOf(options);
  const queries = new DashboardQueries(schema);
  const registry = new DatabaseRegistry(
    list,
    many,
    [queries.engine.readyChannel, queries.engine.doneChannel],
    timing,
    log,
    maxConnections,
  );
  const address: ListenAddress = { host, port };
  const ctx: RouteContext = {
    registry,
    queries,
    address,
    token: randomToken(),
    allowActions: options.allowActions ?? false,
    log,
  };
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => void handleRequest(ctx, req, res));
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  let bound: AddressInfo;
  try {
    bound = await listen(server, host, port);
  } catch (error) {
    await registry.close();
    throw error;
  }
  address.port = bound.port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost(host)}:${bound.port}/`,
    host,
    port: bound.port,
    allowActions: ctx.allowActions,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Live streams never end by themselves; idle keep-alive connections neither.
        await registry.closeStreams();
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            server.closeAllConnections();
            resolve();
          }, SHUTDOWN_GRACE_MS);
        });
        await Promise.race([closed, grace]);
        clearTimeout(timer);
        for (const socket of sockets) socket.destroy();
        await registry.close();
      })();
      return closing;
    },
  };
}
