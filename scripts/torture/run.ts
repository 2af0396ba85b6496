/**
 * `npm run torture [-- --quick] [--seed N] [--minutes M]`: the torture run. Starts a
 * private PostgreSQL with two migrated databases, several `stepping-worker` processes
 * and producers keeping a backlog of multi-step jobs, then injects the seeded fault
 * schedule; after a quiet drain it checks every job against the handlers' ledger and
 * prints the figures and every violation. Exit code 1 on any violation.
 */
import { rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { createStepping } from '../../src/index.js';
import { compileForTests } from '../../test/support/compile.js';
import {
  checkDatabase,
  type CheckInputs,
  checkResume,
  emptyFigures,
  type Violation,
  xminThroughput,
} from './check.js';
import { importSpool, loadEvidence } from './evidence.js';
import { FaultRunner } from './faults.js';
import { Fleet } from './fleet.js';
import { HELP, parseOptions, type TortureOptions, UsageError } from './options.js';
import { PrivateServer } from './postgres.js';
import { produce, ProducerDatabase, ProducerGate } from './producer.js';
import { LEDGER_DDL } from './protocol.js';
import { faultCounts, printSummary, type Summary } from './report.js';
import { buildSchedule, describeFault } from './schedule.js';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

const DATABASES = ['torture_a', 'torture_b'] as const;
/** Extra time a graceful stop may take beyond gracefulStopMs before it counts as hung. */
const GRACEFUL_SLACK_MS = 15_000;
const PRODUCERS_PER_DATABASE = 2;

const t0 = Date.now();
const log = (line: string) =>
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Which databases each worker serves: single-database workers and two-database workers. */
function layout(workers: number): string[][] {
  const shapes: string[][] = [[DATABASES[0]], [DATABASES[1]], [...DATABASES], [...DATABASES], [DATABASES[0]]];
  return Array.from({ length: workers }, (_, i) => shapes[i % shapes.length]!);
}

async function prepareDatabases(server: PrivateServer): Promise<Record<string, string>> {
  const admin = new pg.Client({ connectionString: server.url('postgres') });
  await admin.connect();
  const urls: Record<string, string> = {};
  try {
    for (const name of DATABASES) {
      await admin.query(`CREATE DATABASE ${name}`);
      urls[name] = server.url(name);
      const stepping = createStepping({ connectionString: urls[name] });
      try {
        await stepping.migrate();
      } finally {
        await stepping.close();
      }
      const c = new pg.Client({ connectionString: urls[name] });
      await c.connect();
      await c.query(LEDGER_DDL);
      await c.end();
    }
  } finally {
    await admin.end();
  }
  return urls;
}

async function unfinished(urls: Record<string, string>): Promise<number> {
  let n = 0;
  for (const url of Object.values(urls)) {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    try {
      await c.connect();
      const { rows } = await c.query<{ n: string }>(
        `SELECT count(*) AS n FROM stepping.job_overview WHERE status IN ('pending', 'running', 'compensating')`,
      );
      n += Number(rows[0]!.n);
    } finally {
      await c.end().catch(() => {});
    }
  }
  return n;
}

async function main(o: TortureOptions): Promise<number> {
  const workerLayout = layout(o.workers);
  const schedule = buildSchedule({
    seed: o.seed,
    quick: o.quick,
    seconds: o.faultSeconds,
    workers: o.workers,
  });
  const name = (i: number) => `w${i + 1} (${workerLayout[i]!.join('+')})`;
  process.stdout.write(
    `== torture run: seed ${o.seed} (reproduce: npm run torture -- ${o.quick ? '--quick ' : ''}--seed ${o.seed}` +
      `${o.quick ? '' : ` --minutes ${o.faultSeconds / 60}`})\n` +
      `${o.faultSeconds} s of load with faults; ${o.workers} workers x concurrency ${o.concurrency}, lease ${o.leaseMs} ms, ` +
      `graceful stop ${o.gracefulStopMs} ms; backlog ${o.backlogTarget} jobs per database\n== fault schedule\n` +
      schedule.map((f) => `  ${describeFault(f, name)}`).join('\n') +
      '\n== run\n',
  );

  const server = await PrivateServer.create(log);
  let fleet: Fleet | undefined;
  let destroyed = false;
  const cleanup = () => {
    if (destroyed) return;
    destroyed = true;
    fleet?.killAllNow();
    server.destroySync(o.keep);
  };
  // Whatever ends the driver (even an uncaught error), the server and workers go with it.
  process.once('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping workers and the server`);
      cleanup();
      process.exit(130);
    });
  }
  const producers: ProducerDatabase[] = [];
  let compiledTree: string | null = null;
  try {
    const urls = await prepareDatabases(server);
    log(`databases ${DATABASES.join(', ')} created and migrated`);
    let spooled = 0;
    const spoolDir = path.join(server.dir, 'spool');
    await mkdir(spoolDir);
    compiledTree = await compileForTests(projectRoot);
    fleet = new Fleet(
      {
        concurrency: o.concurrency,
        leaseMs: o.leaseMs,
        gracefulStopMs: o.gracefulStopMs,
        urls,
        spoolDir,
        compiledTree,
      },
      workerLayout,
      log,
    );
    await fleet.startAll();
    log(`${o.workers} workers started: ${workerLayout.map((_, i) => name(i)).join(', ')}`);

    for (const db of DATABASES) {
      const p = new ProducerDatabase(db, urls[db]!);
      p.startMonitor();
      producers.push(p);
    }
    let producing = true;
    const gate = new ProducerGate();
    const loops = producers.flatMap((p) =>
      Array.from({ length: PRODUCERS_PER_DATABASE }, (_, i) =>
        produce(
          p,
          i,
          { backlogTarget: o.backlogTarget, leaseMs: o.leaseMs, seed: o.seed },
          () => producing,
          gate,
        ),
      ),
    );
    const faults = new FaultRunner(server, fleet, urls, GRACEFUL_SLACK_MS, gate, o.resumeLimitMs, log);
    const start = Date.now();
    const progress = setInterval(() => {
      const jobs = producers
        .map((p) => `${p.name} ${p.stats.committedJobs} jobs (backlog ${p.backlog})`)
        .join(', ');
      log(`progress: ${jobs}`);
    }, 15_000);
    try {
      await faults.run(schedule, start);
      await pause(start + o.faultSeconds * 1000 - Date.now());
    } finally {
      clearInterval(progress);
      producing = false;
      await Promise.all(loops);
    }
    log(
      `load and faults over: ${producers.map((p) => `${p.name} ${p.stats.committedJobs} jobs`).join(', ')}; ` +
        'draining without faults',
    );

    await fleet.ensureAllRunning();
    const drainStart = Date.now();
    let drainSeconds: number | null = null;
    for (;;) {
      const left = await unfinished(urls).catch(() => -1);
      if (left === 0) {
        drainSeconds = (Date.now() - drainStart) / 1000;
        break;
      }
      if (Date.now() - drainStart > o.drainTimeoutMs) {
        log(`drain: ${left} jobs still unfinished after ${o.drainTimeoutMs / 1000} s`);
        for (const p of fleet.processes.filter((x) => x.exitedAt === null)) {
          log(
            `  worker ${p.worker} pid ${p.pid}: ${p.stepsStarted} steps started, last ${
              p.lastStartAt === null ? 'never' : `${((Date.now() - p.lastStartAt) / 1000).toFixed(1)} s ago`
            }; stderr: ${p.stderrTail.slice(-2).join(' | ') || '(none)'}`,
          );
        }
        break;
      }
      await pause(1000);
    }
    if (drainSeconds !== null) log(`drain: every job final after ${drainSeconds.toFixed(1)} s`);
    await fleet.stopAll(GRACEFUL_SLACK_MS);
    spooled = await importSpool(spoolDir, urls);
    log(
      `workers stopped; ${spooled} ledger rows imported from the spool (written while the server was away); checking`,
    );

    const inputs: CheckInputs = {
      t0,
      leaseMs: o.leaseMs,
      resumeLimitMs: o.resumeLimitMs,
      concurrency: o.concurrency,
      unavailable: faults.unavailable,
      signals: fleet.signals,
      results: fleet.results,
      processes: fleet.processes,
      stalls: fleet.stalls,
      rolledBack: new Map(producers.map((p) => [p.name, p.rolledBackIds])),
    };
    const violations: Violation[] = [];
    const figures = emptyFigures();
    const evidence = [];
    for (const db of DATABASES) {
      const e = await loadEvidence(db, urls[db]!);
      checkDatabase(e, inputs, violations, figures);
      evidence.push(e);
    }
    if (fleet.results.length === 0 && figures.runs > 0)
      log(
        'warning: no "step succeeded/failed/lease lost" lines recognised in the worker logs ' +
          '(format changed?): the log-based checks (double acceptance, accepted failures) did not run',
      );
    const resume = checkResume(evidence, inputs, violations);
    const xmin = xminThroughput(evidence, faults.holds);
    // One violation per kind of worker problem (a restart loop repeats the same one).
    const problems = new Map<string, { first: string; pids: number[] }>();
    for (const p of fleet.problems) {
      const kind = `${p.worker} ${p.message.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '').replace(/\d+ ?ms/g, 'N ms')}`;
      const entry = problems.get(kind) ?? { first: `worker ${p.worker} pid ${p.pid} ${p.message}`, pids: [] };
      entry.pids.push(p.pid);
      problems.set(kind, entry);
    }
    for (const { first, pids } of problems.values()) {
      const more =
        pids.length > 1
          ? ` (the same for ${pids.length - 1} more processes: pids ${pids.slice(1).join(', ')})`
          : '';
      violations.push({ check: 'workers', database: '-', jobId: null, message: first + more });
    }
    for (const e of faults.errors)
      violations.push({
        check: 'workers',
        database: '-',
        jobId: null,
        message: `fault injection failed: ${e}`,
      });

    const summary: Summary = {
      seed: o.seed,
      mode: o.quick ? 'quick' : 'full',
      faultSeconds: o.faultSeconds,
      wallSeconds: Math.round((Date.now() - t0) / 1000),
      server: server.binaries.version,
      drainSeconds,
      figures,
      producers: Object.fromEntries(producers.map((p) => [p.name, p.stats])),
      faults: faultCounts(faults, fleet),
      resume,
      xmin,
      stalls: {
        count: fleet.stalls.length,
        longestMs: Math.max(0, ...fleet.stalls.map((x) => x.to - x.from)),
      },
      spooledRows: spooled,
      violations,
    };
    printSummary(summary, t0);
    if (o.reportFile) await writeFile(o.reportFile, `${JSON.stringify(summary, null, 2)}\n`);
    return violations.length === 0 ? 0 : 1;
  } finally {
    for (const p of producers) await p.close();
    fleet?.killAllNow();
    if (compiledTree) rmSync(compiledTree, { recursive: true, force: true });
    if (!destroyed) {
      destroyed = true;
      await server.destroy(o.keep).catch(() => server.destroySync(o.keep));
    }
    if (o.keep) log(`kept ${server.dir} (data/, server.log)`);
  }
}

let options: TortureOptions | 'help';
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  process.stderr.write(`torture: ${error.message}\n${HELP}`);
  process.exit(2);
}
if (options === 'help') {
  process.stdout.write(HELP);
  process.exit(0);
}
try {
  process.exit(await main(options));
} catch (error) {
  process.stderr.write(`torture: the run itself failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(3);
}
