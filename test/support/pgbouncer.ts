/**
 * A real PgBouncer (Debian's `pgbouncer` package) in front of the test server, started by
 * a test on a free local port and stopped after it.
 *
 * - Transaction pooling by default, and `server_round_robin`: when several server
 *   connections are idle, consecutive transactions of one client land on different ones
 *   (after warm()), so code that leans on session state (SET, LISTEN, session advisory
 *   locks, named prepared statements) fails every time instead of by chance.
 * - Works with the embedded server (password: clients log in to PgBouncer with the same
 *   user and password) and with a trust server (no password anywhere).
 * - As root it runs as the `postgres` system user (`-u`; PgBouncer refuses to run as root).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import pg from 'pg';

/** How to run PgBouncer. */
export interface PgBouncerOptions {
  /** `pool_mode`. Default `transaction`. */
  poolMode?: 'transaction' | 'session' | 'statement';
  /** `default_pool_size`: server connections per database and user. Default 4. */
  poolSize?: number;
  /** `server_round_robin` (see the module comment). Default true. */
  roundRobin?: boolean;
}

/** A running PgBouncer. */
export interface PgBouncer {
  /** The local port it listens on (127.0.0.1). */
  readonly port: number;
  /** Connection string of `database` through PgBouncer (the server URL's user and password). */
  url(database: string): string;
  /** Runs a command on the admin console (e.g. `SHOW POOLS`, `SHOW CONFIG`) and returns its rows. */
  admin(command: string): Promise<Record<string, unknown>[]>;
  /**
   * Opens `count` server connections to `database` at once and hands them back to the
   * pool idle, so that round robin has several to alternate between. Returns their
   * backend pids. `count` must not exceed poolSize.
   */
  warm(database: string, count: number): Promise<number[]>;
  /** Everything PgBouncer logged so far. */
  log(): string;
  /** Stops PgBouncer (immediate shutdown) and deletes its files. Idempotent. */
  stop(): Promise<void>;
}

/** Longest wait for PgBouncer to listen after its start. */
const STARTUP_TIMEOUT_MS = 30_000;

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

/** The pgbouncer binary: $PGBOUNCER, or the usual install paths, or one on PATH. */
function findBinary(): string {
  const fromEnv = process.env.PGBOUNCER;
  if (fromEnv) return fromEnv;
  const onPath = (process.env.PATH ?? '').split(':').map((dir) => path.join(dir, 'pgbouncer'));
  const found = [...CANDIDATES, ...onPath].find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      'pgbouncer is not installed: `apt-get install -y pgbouncer` (.ci/run does this), or set PGBOUNCER to its path',
    );
  }
  return found;
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

/** Quotes a value for PgBouncer's libpq-style connection strings. */
function connValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function iniFile(server: URL, port: number, dir: string, options: Required<PgBouncerOptions>): string {
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const target = [
    `host=${connValue(server.hostname)}`,
    `port=${server.port || '5432'}`,
    `user=${connValue(user)}`,
    ...(password ? [`password=${connValue(password)}`] : []),
  ].join(' ');
  return `[databases]
* = ${target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
pidfile =
logfile =
auth_type = ${password ? 'md5' : 'trust'}
auth_file = ${path.join(dir, 'userlist.txt')}
admin_users = ${user}
pool_mode = ${options.poolMode}
default_pool_size = ${options.poolSize}
min_pool_size = 0
max_client_conn = 500
server_round_robin = ${options.roundRobin ? 1 : 0}
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
`;
}

/** Starts PgBouncer once on `port`; resolves when it listens, rejects (with its log) when it exits first. */
async function launch(
  binary: string,
  iniPath: string,
  port: number,
): Promise<{ child: ChildProcess; output: () => string }> {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const args = [...(asRoot ? ['-u', process.env.PGBOUNCER_USER ?? 'postgres'] : []), iniPath];
  // PgBouncer runs under a small shell guard holding our end of a pipe on its stdin: when
  // this process goes, however it goes (a test timeout kills it outright), the pipe closes
  // and the guard stops PgBouncer, so none is left behind. The shell exits with PgBouncer.
  // (fd 3: a background list's own stdin is /dev/null in a non-interactive shell.)
  const guard =
    'exec 3<&0; "$@" </dev/null & p=$!; { cat <&3 >/dev/null; kill -TERM $p 2>/dev/null; } & wait $p';
  const child = spawn('/bin/sh', ['-c', guard, 'pgbouncer-guard', binary, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const listening = `listening on 127.0.0.1:${port}`;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        output += d.toString();
        if (output.includes(listening)) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('error', reject);
      child.once('exit', (code, signal) =>
        reject(new Error(`pgbouncer exited (${signal ?? code}) before listening:\n${output}`)),
      );
      // It listens within milliseconds; this only turns a hang into an error with its log.
      timer = setTimeout(
        () => reject(new Error(`pgbouncer did not listen within ${STARTUP_TIMEOUT_MS} ms:\n${output}`)),
        STARTUP_TIMEOUT_MS,
      );
    });
  } catch (error) {
    child.stdin!.end();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { child, output: () => output };
}

/** Starts PgBouncer in front of the server of `serverUrl` (any database of it). */
export async function startPgBouncer(serverUrl: string, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const settings: Required<PgBouncerOptions> = {
    poolMode: options.poolMode ?? 'transaction',
    poolSize: options.poolSize ?? 4,
    roundRobin: options.roundRobin ?? true,
  };
  const server = new URL(serverUrl);
  const binary = findBinary();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stepping-pgbouncer-'));
  // Readable by the user PgBouncer switches to.
  await chmod(dir, 0o755);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const userlist = path.join(dir, 'userlist.txt');
  await writeFile(userlist, `"${user.replace(/"/g, '""')}" "${password.replace(/"/g, '""')}"\n`);
  await chmod(userlist, 0o644);

  let started: { child: ChildProcess; output: () => string; port: number } | undefined;
  let lastError: unknown;
  // A free port can be taken between our probe and PgBouncer's bind: try a few.
  for (let attempt = 0; attempt < 5 && !started; attempt++) {
    const port = await freePort();
    const iniPath = path.join(dir, 'pgbouncer.ini');
    await writeFile(iniPath, iniFile(server, port, dir, settings));
    await chmod(iniPath, 0o644);
    try {
      started = { ...(await launch(binary, iniPath, port)), port };
    } catch (error) {
      lastError = error;
      if (!String(error).includes('Address already in use')) break;
    }
  }
  if (!started) {
    await rm(dir, { recursive: true, force: true });
    throw lastError;
  }
  const { child, output, port } = started;

  const url = (database: string) => {
    const u = new URL(serverUrl);
    u.hostname = '127.0.0.1';
    u.port = String(port);
    u.pathname = `/${database}`;
    return u.toString();
  };
  let stopping: Promise<void> | undefined;
  return {
    port,
    url,
    async admin(command) {
      const client = new pg.Client(url('pgbouncer'));
      await client.connect();
      try {
        return (await client.query(command)).rows as Record<string, unknown>[];
      } finally {
        await client.end();
      }
    },
    async warm(database, count) {
      if (count > settings.poolSize) throw new Error(`warm(${count}) exceeds poolSize ${settings.poolSize}`);
      const clients = Array.from({ length: count }, () => new pg.Client(url(database)));
      try {
        await Promise.all(clients.map((c) => c.connect()));
        // All inside a transaction at once: each holds a server connection of its own.
        await Promise.all(clients.map((c) => c.query('BEGIN')));
        const pids = await Promise.all(
          clients.map(
            async (c) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid,
          ),
        );
        await Promise.all(clients.map((c) => c.query('COMMIT')));
        return pids;
      } finally {
        await Promise.all(clients.map((c) => c.end().catch(() => {})));
      }
    },
    log: output,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          // Closing the guard's stdin stops PgBouncer (immediate shutdown); the guard then exits.
          child.stdin!.end();
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          timer.unref();
          await exited;
          clearTimeout(timer);
        }
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
