/**
 * Many databases (issue 17; Stepping only: no peer serves several databases from one
 * worker). N tenant databases made from a migrated template: a hot tenant with
 * `hotJobs` queued one-step jobs, every other tenant `quietJobs`, all queued before one
 * `stepping-worker --databases <file> --max-connections M --concurrency C` process
 * starts (the real bin, on the run's Node binary). Measures:
 *
 * - `stepping migrate --databases <file>` when every database is already migrated;
 * - from the worker's "started" line: all quiet jobs done, hot jobs done by then, the hot
 *   tenant done, jobs/s overall, the quiet jobs' p99 wait;
 * - the hot tenant's throughput while the quiet ones drain, against the same worker
 *   serving the hot tenant alone (a separate run before the main one);
 * - new server connections per second under load (pg_stat_database.sessions of the
 *   tenants) and peak connections;
 * - CPU from the worker's start until the quiet tenants are done: the worker's and, on a
 *   local server, the server's (who uses the host's cores while databases start);
 * - the drained worker, idle: its CPU, the tenants' transactions/s and new connections/s;
 * - a tenant appended to the file (re-read every 30 s) until its one job is done.
 *
 * Completion times come from the worker's own timestamped `job succeeded ... db=` lines,
 * so the benchmark opens no connection to the tenants while the worker runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { createStepping } from '../../src/index.js';
import { type DatabaseFactory, queryOnce } from '../lib/db.js';
import type { NodeBinary } from '../lib/node-binary.js';
import type { ManyParams } from '../lib/params.js';
import { cpuMsOf, type ServerCpu } from '../lib/server-cpu.js';
import { percentile, sleep } from '../lib/stats.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// The compiled bin, as a user runs it (see bench/lib/built-package.ts; bench/run.ts builds
// it first when src/ is newer). tsx stays loaded for the worker's steps module, which is
// TypeScript; the operator CLI runs without it (under tsx, its start-up and the compiling
// of its modules were part of the migrate --databases time).
const WORKER_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'stepping-worker.js');
const OPERATOR_BIN = path.join(ROOT, 'dist', 'src', 'cli', 'stepping.js');
const STEPS_MODULE = path.join(ROOT, 'bench', 'worker', 'many-steps.ts');
/** The step name of many-steps.ts. */
const STEP = 'noop';

/** Figures of one run. */
export interface ManyDatabasesResult {
  databases: number;
  hotJobs: number;
  quietJobs: number;
  maxConnections: number;
  /** --start-concurrency given to the worker (null: its default). */
  startConcurrency: number | null;
  concurrency: number;
  serverMaxConnections: number;
  /** Creating the tenants from the template (setup, not a worker figure). */
  createSeconds: number;
  strategy: string;
  /** `stepping migrate --databases` on the already-migrated tenants, wall time. */
  migrateAllMigratedMs: number;
  /** Worker process spawn until its "started" line (Node + tsx + loading). */
  bootMs: number;
  /** From the started line until the last quiet job finished. */
  quietDoneMs: number;
  /** Quiet jobs' finish times, p99 (all were queued before the worker started). */
  quietWaitP99Ms: number;
  /** Hot jobs done when the last quiet job finished. */
  hotDoneWhenQuietDone: number;
  /** From the started line until the hot tenant's last job finished. */
  hotDoneMs: number;
  jobsPerSecond: number;
  /**
   * The hot tenant's jobs/s while the quiet tenants drained (until the first of the two was
   * done), and alone (same worker, only the hot tenant).
   */
  hotJobsPerSecondWhileQuiet: number;
  hotAloneJobsPerSecond: number;
  peakConnections: number;
  /** New server connections to the tenants per second, from start until all jobs were done. */
  newConnectionsPerSecondUnderLoad: number;
  /**
   * From the started line until the last quiet job finished: CPU as a percentage of one
   * core (200 = both of a 2-core host), the worker's and the server's (NaN when the
   * server is not a local process).
   */
  quietPhaseCpu: { workerPercent: number; serverPercent: number };
  idle: {
    seconds: number;
    cpuPercent: number;
    transactionsPerSecond: number;
    newConnectionsPerSecond: number;
  };
  /** A tenant appended to the file until its job was done (null: not measured). */
  appendedTenantMs: number | null;
  workerHwmMb: number;
  errorLines: number;
  firstErrors: string[];
}

/** Counters of the tenant databases, summed (pg_stat_database). */
interface TenantCounters {
  xacts: number;
  sessions: number;
}

async function tenantCounters(admin: pg.Client, prefix: string): Promise<TenantCounters> {
  const { rows } = await admin.query<{ x: string; s: string }>(
    `SELECT coalesce(sum(xact_commit + xact_rollback), 0)::text AS x, coalesce(sum(sessions), 0)::text AS s
     FROM pg_stat_database WHERE datname LIKE $1`,
    [`${prefix}%`],
  );
  return { xacts: Number(rows[0]?.x ?? 0), sessions: Number(rows[0]?.s ?? 0) };
}

function hwmMbOf(pid: number): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Runs `fn` over `items` with `lanes` at a time. */
async function lanes<T>(
  items: readonly T[],
  n: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

async function enqueue(url: string, jobs: number): Promise<void> {
  const s = createStepping({ connectionString: url });
  try {
    for (let done = 0; done < jobs; done += 5000) {
      const chunk = Math.min(5000, jobs - done);
      await s.enqueueMany(
        undefined,
        Array.from({ length: chunk }, () => ({ steps: [{ name: STEP, args: {} }] })),
      );
    }
  } finally {
    await s.close();
  }
}

/** A running `stepping-worker`, with its job completions parsed from stdout. */
class WorkerProcess {
  readonly child: ChildProcess;
  readonly spawnedAt = Date.now();
  startedAt = Number.NaN;
  readonly done = new Map<string, number[]>();
  errorLines = 0;
  readonly firstErrors: string[] = [];
  private readonly waiters: { test: () => boolean; resolve: () => void }[] = [];
  private readonly exited: Promise<void>;

  constructor(node: NodeBinary, file: string, p: ManyParams) {
    this.child = spawn(
      node.path,
      [
        '--import',
        'tsx',
        WORKER_BIN,
        '--steps',
        STEPS_MODULE,
        '--databases',
        file,
        '--max-connections',
        String(p.maxConnections),
        '--concurrency',
        String(p.concurrency),
        ...(p.startConcurrency === null ? [] : ['--start-concurrency', String(p.startConcurrency)]),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.onLine(line));
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.errorLines += 1;
      if (this.firstErrors.length < 5) this.firstErrors.push(line.slice(0, 300));
    });
  }

  private onLine(line: string): void {
    const space = line.indexOf(' ');
    const at = Date.parse(line.slice(0, space));
    const text = line.slice(space + 1);
    const job = /^job succeeded\s+job=\d+ db=(\S+)/.exec(text);
    if (job) {
      const db = job[1]!;
      const list = this.done.get(db) ?? [];
      list.push(at);
      this.done.set(db, list);
    } else if (text.startsWith('started worker')) {
      this.startedAt = at;
    } else return;
    for (const w of this.waiters.splice(0)) {
      if (w.test()) w.resolve();
      else this.waiters.push(w);
    }
  }

  /** Resolves when `test` holds (checked after every completion), or rejects after `ms`. */
  async until(test: () => boolean, ms: number, what: string): Promise<void> {
    if (test()) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.waiters.push({ test, resolve })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`many-databases: ${what} not seen within ${ms} ms`)), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  count(db: string): number {
    return this.done.get(db)?.length ?? 0;
  }

  /** SIGTERM (graceful stop), then SIGKILL of this child only after 30 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.exited,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.child.kill('SIGKILL');
          resolve();
        }, 30_000);
      }),
    ]);
    clearTimeout(timer);
  }
}

const tenantId = (i: number) => `t${String(i).padStart(4, '0')}`;

/** Runs the scenario once; every database it made is dropped before it returns. */
export async function manyDatabasesScenario(
  factory: DatabaseFactory,
  p: ManyParams,
  node: NodeBinary,
  log: (line: string) => void,
  serverCpu: ServerCpu | null = null,
): Promise<ManyDatabasesResult> {
  const [mc] = await queryOnce<{ n: string }>(
    factory.serverUrl,
    `SELECT current_setting('max_connections') AS n`,
  );
  const serverMaxConnections = Number(mc?.n ?? 0);
  if (serverMaxConnections < p.maxConnections + 10) {
    throw new Error(
      `many-databases: the server allows ${serverMaxConnections} connections; the worker's budget of ` +
        `${p.maxConnections} needs at least ${p.maxConnections + 10}`,
    );
  }
  // WAL_LOG (PostgreSQL 15's default) rather than FILE_COPY: FILE_COPY checkpoints on each
  // CREATE DATABASE, 0.75 s apiece with fsync on against 0.1 s (docs/benchmarks.md).
  const strategy = 'WAL_LOG' as const;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stepping-many-'));
  const made: string[] = [];
  const make = async (label: string, template?: string) => {
    const name = await factory.create(label, template, { strategy, trackFunctions: false });
    made.push(name);
    return name;
  };
  const admin = new pg.Client({ connectionString: factory.url('postgres') });
  await admin.connect();
  let worker: WorkerProcess | null = null;
  try {
    const template = await make('many_tpl');
    const migrator = createStepping({ connectionString: factory.url(template) });
    await migrator.migrate();
    await migrator.close();
    const quietTemplate = await make('many_tplq', template);
    await enqueue(factory.url(quietTemplate), p.quietJobs);

    // The hot tenant alone first: the throughput the hot tenant would have by itself.
    const alone = await make('many_alone', template);
    await enqueue(factory.url(alone), p.hotJobs);
    // Each measured phase starts after a checkpoint, as the drain scenarios do: making the
    // copies writes gigabytes of WAL, and the spread checkpoint it triggers would otherwise
    // run through the shared phase (not the lone one), taking the hot tenant's share.
    await admin.query('CHECKPOINT');
    const aloneFile = path.join(dir, 'alone.txt');
    await writeFile(aloneFile, `alone=${factory.url(alone)}\n`);
    log(`many databases: the hot tenant alone (${p.hotJobs} jobs)`);
    const soloWorker = new WorkerProcess(node, aloneFile, p);
    worker = soloWorker;
    await soloWorker.until(() => soloWorker.count('alone') >= p.hotJobs, 600_000, 'the lone hot tenant done');
    const aloneTimes = soloWorker.done.get('alone')!;
    const hotAloneJobsPerSecond =
      (p.hotJobs * 1000) / Math.max(1, aloneTimes[aloneTimes.length - 1]! - soloWorker.startedAt);
    await soloWorker.stop();
    worker = null;
    await factory.drop(alone);

    const t0 = Date.now();
    const names: string[] = [];
    const ids = Array.from({ length: p.databases }, (_, i) => i);
    await lanes(ids, 4, async (i) => {
      names[i] = await make(`m${tenantId(i)}`, i === 0 ? template : quietTemplate);
      if ((i + 1) % 100 === 0) log(`  ${i + 1}/${p.databases} tenant databases`);
    });
    const createSeconds = (Date.now() - t0) / 1000;
    const hot = tenantId(0);
    await enqueue(factory.url(names[0]!), p.hotJobs);
    await admin.query('CHECKPOINT');
    const file = path.join(dir, 'databases.txt');
    await writeFile(file, names.map((n, i) => `${tenantId(i)}=${factory.url(n)}`).join('\n') + '\n');
    log(
      `many databases: ${p.databases} databases in ${createSeconds.toFixed(1)} s, ` +
        `${p.hotJobs} hot + ${(p.databases - 1) * p.quietJobs} quiet jobs`,
    );

    const m0 = Date.now();
    const migrate = spawn(node.path, [OPERATOR_BIN, 'migrate', '--databases', file], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let migrateErr = '';
    migrate.stderr!.on('data', (d: Buffer) => (migrateErr = (migrateErr + d.toString()).slice(-2000)));
    const migrateCode = await new Promise<number | null>((resolve) => migrate.once('exit', resolve));
    const migrateAllMigratedMs = Date.now() - m0;
    if (migrateCode !== 0)
      throw new Error(`stepping migrate --databases failed (${migrateCode}): ${migrateErr}`);
    log(`  migrate --databases (all migrated): ${migrateAllMigratedMs} ms`);

    const quietTotal = (p.databases - 1) * p.quietJobs;
    const counters0 = await tenantCounters(admin, factory.prefix);
    const w = new WorkerProcess(node, file, p);
    worker = w;
    let peakConnections = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await admin.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname LIKE $1 AND application_name = 'stepping-worker'`,
          [`${factory.prefix}%`],
        );
        peakConnections = Math.max(peakConnections, rows[0]?.n ?? 0);
        await sleep(100);
      }
    })();
    let quietSeen = 0;
    const quietDone = () => {
      quietSeen = 0;
      for (const [db, list] of w.done) if (db !== hot) quietSeen += list.length;
      return quietSeen >= quietTotal;
    };
    const limit = 900_000;
    let quietPhaseCpu = { workerPercent: Number.NaN, serverPercent: Number.NaN };
    try {
      await w.until(() => !Number.isNaN(w.startedAt), 120_000, 'the worker start');
      const [c0, s0, t0] = [cpuMsOf(w.child.pid!), serverCpu?.read() ?? Number.NaN, Date.now()];
      await w.until(quietDone, limit, `all ${quietTotal} quiet jobs done`);
      const elapsed = Math.max(1, Date.now() - t0);
      quietPhaseCpu = {
        workerPercent: ((cpuMsOf(w.child.pid!) - c0) * 100) / elapsed,
        serverPercent: (((serverCpu?.read() ?? Number.NaN) - s0) * 100) / elapsed,
      };
      await w.until(() => w.count(hot) >= p.hotJobs, limit, `all ${p.hotJobs} hot jobs done`);
    } finally {
      sampling = false;
      await sampler;
    }
    const quietTimes = [...w.done.entries()].filter(([db]) => db !== hot).flatMap(([, t]) => t);
    const quietLast = Math.max(...quietTimes);
    const hotTimes = w.done.get(hot)!;
    const hotLast = hotTimes[hotTimes.length - 1]!;
    const hotDoneWhenQuietDone = hotTimes.filter((t) => t <= quietLast).length;
    const allDone = Math.max(quietLast, hotLast);
    // Statistics of the last transactions reach pg_stat_database: a backend that flushed
    // less than a second before flushes again only when idle for 10 s (PostgreSQL 15+).
    await sleep(p.statsWaitSeconds * 1000);
    const counters1 = await tenantCounters(admin, factory.prefix);
    const loadSeconds = (allDone - w.startedAt) / 1000;
    log(
      `  quiet done ${quietLast - w.startedAt} ms (hot ${hotDoneWhenQuietDone}), hot done ${hotLast - w.startedAt} ms`,
    );

    // Idle: watch the drained worker (the load's statistics are all in, see above).
    await sleep(p.idleDelaySeconds * 1000);
    const idle0 = await tenantCounters(admin, factory.prefix);
    const cpu0 = cpuMsOf(w.child.pid!);
    const i0 = Date.now();
    await sleep(p.idleSeconds * 1000);
    const idle1 = await tenantCounters(admin, factory.prefix);
    const cpu1 = cpuMsOf(w.child.pid!);
    const idleSeconds = (Date.now() - i0) / 1000;
    const idle = {
      seconds: idleSeconds,
      cpuPercent: (cpu1 - cpu0) / 10 / idleSeconds,
      transactionsPerSecond: (idle1.xacts - idle0.xacts) / idleSeconds,
      newConnectionsPerSecond: (idle1.sessions - idle0.sessions) / idleSeconds,
    };
    log(
      `  idle: CPU ${idle.cpuPercent.toFixed(1)}%, ${idle.transactionsPerSecond.toFixed(0)} xacts/s, ` +
        `${idle.newConnectionsPerSecond.toFixed(1)} new connections/s`,
    );

    let appendedTenantMs: number | null = null;
    if (p.appendTenant) {
      const fresh = await make('mnew', template);
      await enqueue(factory.url(fresh), 1);
      const appendedAt = Date.now();
      await appendFile(file, `tnew=${factory.url(fresh)}\n`);
      await w.until(() => w.count('tnew') >= 1, 120_000, 'the appended tenant');
      appendedTenantMs = w.done.get('tnew')![0]! - appendedAt;
      log(`  appended tenant: its job done after ${appendedTenantMs} ms`);
    }
    const workerHwmMb = hwmMbOf(w.child.pid!);
    await w.stop();
    worker = null;
    const total = p.hotJobs + quietTotal;
    return {
      databases: p.databases,
      hotJobs: p.hotJobs,
      quietJobs: p.quietJobs,
      maxConnections: p.maxConnections,
      startConcurrency: p.startConcurrency,
      concurrency: p.concurrency,
      serverMaxConnections,
      createSeconds,
      strategy,
      migrateAllMigratedMs,
      bootMs: w.startedAt - w.spawnedAt,
      quietDoneMs: quietLast - w.startedAt,
      quietWaitP99Ms: percentile(
        quietTimes.map((t) => t - w.startedAt),
        99,
      ),
      hotDoneWhenQuietDone,
      hotDoneMs: hotLast - w.startedAt,
      jobsPerSecond: (total * 1000) / (allDone - w.startedAt),
      // Over the time both ran: a hot tenant done before the quiet ones is measured until
      // its last job, not diluted by the time after it.
      hotJobsPerSecondWhileQuiet:
        (hotDoneWhenQuietDone * 1000) / Math.max(1, Math.min(quietLast, hotLast) - w.startedAt),
      hotAloneJobsPerSecond,
      peakConnections,
      newConnectionsPerSecondUnderLoad: (counters1.sessions - counters0.sessions) / loadSeconds,
      quietPhaseCpu,
      idle,
      appendedTenantMs,
      workerHwmMb,
      errorLines: w.errorLines,
      firstErrors: w.firstErrors,
    };
  } finally {
    await worker?.stop();
    await admin.end();
    await lanes([...made].reverse(), 4, async (name) => {
      await factory.drop(name).catch(() => {});
    });
    await rm(dir, { recursive: true, force: true });
  }
}

/** Issue 17's table for one run. */
export function markdownManyDatabases(m: ManyDatabasesResult): string {
  const n = (v: number, d = 0) =>
    Number.isFinite(v)
      ? v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })
      : '–';
  const s = (ms: number) => `${n(ms / 1000, 1)} s`;
  const rows: [string, string][] = [
    ['`stepping migrate --databases` (all already migrated)', s(m.migrateAllMigratedMs)],
    ['quiet tenants all done', s(m.quietDoneMs)],
    ['quiet jobs, p99 wait', s(m.quietWaitP99Ms)],
    [`hot jobs done by then (of ${n(m.hotJobs)})`, n(m.hotDoneWhenQuietDone)],
    ['hot tenant done', s(m.hotDoneMs)],
    ['jobs/s overall', n(m.jobsPerSecond)],
    [
      'hot tenant jobs/s while the quiet ones drain / alone',
      `${n(m.hotJobsPerSecondWhileQuiet)} / ${n(m.hotAloneJobsPerSecond)} (${n((m.hotJobsPerSecondWhileQuiet / m.hotAloneJobsPerSecond) * 100)}%)`,
    ],
    [
      'new connections/s under load (jobs/s ÷ 10 for comparison)',
      `${n(m.newConnectionsPerSecondUnderLoad, 1)} (${n(m.jobsPerSecond / 10, 0)})`,
    ],
    ['peak connections of the worker', n(m.peakConnections)],
    [
      'CPU until the quiet tenants are done: worker, server (% of one core)',
      `${n(m.quietPhaseCpu.workerPercent)}%, ${n(m.quietPhaseCpu.serverPercent)}%`,
    ],
    [
      'idle worker: CPU, transactions/s, new connections/s',
      `${n(m.idle.cpuPercent, 1)}%, ${n(m.idle.transactionsPerSecond)}, ${n(m.idle.newConnectionsPerSecond, 1)}`,
    ],
    [
      'new tenant appended to the file → its job done',
      m.appendedTenantMs === null ? 'not measured' : s(m.appendedTenantMs),
    ],
    ['worker peak RSS', `${n(m.workerHwmMb)} MB`],
  ];
  return [
    `**Many databases** (Stepping only): ${n(m.databases)} databases (${m.strategy} copies of a migrated template, ` +
      `made in ${n(m.createSeconds, 1)} s), a hot tenant with ${n(m.hotJobs)} queued one-step jobs, every other ` +
      `${n(m.quietJobs)}; one \`stepping-worker --databases <file> --max-connections ${m.maxConnections} ` +
      `--concurrency ${m.concurrency}${m.startConcurrency === null ? '' : ` --start-concurrency ${m.startConcurrency}`}\` (boot ${n(m.bootMs)} ms, not counted); server max_connections ` +
      `${m.serverMaxConnections}. Times from the worker's "started" line.${m.errorLines ? ` ${m.errorLines} lines on stderr.` : ''}\n`,
    `| measure | N=${n(m.databases)} |`,
    '|---|---|',
    ...rows.map(([a, b]) => `| ${a} | ${b} |`),
  ].join('\n');
}
