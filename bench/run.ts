/**
 * `npm run bench` (full) or `npm run bench -- --quick`: Stepping, graphile-worker and
 * pg-boss, each at its defaults and at its best settings, on fresh databases of one
 * PostgreSQL server (DATABASE_URL when set, else an embedded one), configurations
 * interleaved, several repetitions. Prints markdown on stdout (progress on stderr) and
 * writes bench/results/latest.json. See docs/benchmarks.md.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startDatabaseServer } from '../scripts/embedded-db.js';
import { ensureBuilt } from './lib/built-package.js';
import { BenchContext } from './lib/context.js';
import { DatabaseFactory, serverFacts } from './lib/db.js';
import { resolveNodeBinary } from './lib/node-binary.js';
import { parseArgs } from './lib/params.js';
import {
  deriveFigures,
  goals,
  markdownEnqueue,
  markdownFigures,
  markdownGoals,
  markdownProfiles,
  markdownSettings,
  markdownSweep,
  profiles,
  summarizeAll,
} from './lib/report.js';
import { ServerCpu } from './lib/server-cpu.js';
import type { LibraryName, Variant } from './lib/variants.js';
import { WalMeter } from './lib/wal.js';
import { bulkDrainScenario } from './scenarios/bulk-drain.js';
import { chainScenario } from './scenarios/chain.js';
import { enqueueScenario } from './scenarios/enqueue.js';
import { floorScenario } from './scenarios/floor.js';
import { latencyScenario } from './scenarios/latency.js';
import {
  type ManyDatabasesResult,
  manyDatabasesScenario,
  markdownManyDatabases,
} from './scenarios/many-databases.js';
import { markdownRetention, type RetentionResult, retentionScenario } from './scenarios/retention.js';

const t0 = Date.now();
const log = (line: string) =>
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

/** Variants of the chain scenario: pg-boss's defaults are left out (its 2-s poll: a dozen steps per second). */
function chainVariants(variants: readonly Variant[]): Variant[] {
  return variants.filter((v) => v.id !== 'pgboss:default');
}

/** The installed version of a package (some do not export their package.json). */
function versionOf(name: string): string {
  let dir = path.dirname(createRequire(import.meta.url).resolve(name));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === name && pkg.version) return pkg.version;
    } catch {
      // no package.json at this level
    }
    const up = path.dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

async function main(): Promise<void> {
  const { params, only, variants, sweep, out } = parseArgs(process.argv.slice(2));
  ensureBuilt(log);
  const started = Date.now();
  const loadBefore = os.loadavg();
  const node = resolveNodeBinary(params.node, log);
  const server = await startDatabaseServer(log);
  const factory = new DatabaseFactory(server.url);
  try {
    const facts = await serverFacts(server.url);
    const serverCpu = await ServerCpu.locate(server.url).catch(() => null);
    const walMeter = await WalMeter.locate(server.url);
    const serverLabel = server.embedded
      ? 'embedded PostgreSQL (scripts/embedded-db.ts; no DATABASE_URL)'
      : 'the PostgreSQL of DATABASE_URL';
    log(
      `bench (${params.mode}): ${params.reps} repetitions on ${serverLabel}, PostgreSQL ${facts.server_version}, ` +
        `fsync=${facts.fsync}, synchronous_commit=${facts.synchronous_commit}; worker children on Node ` +
        `${node.version} (${node.source}); server CPU ${serverCpu ? 'measured' : 'not measurable'}; WAL ` +
        `${walMeter ? 'decoded per database (pg_waldump)' : 'server-wide (pg_current_wal_lsn)'}`,
    );
    const used = [...variants, ...(only.has('sweep') ? sweep : [])];
    const ctx = await BenchContext.create(params, factory, used, node, serverCpu, walMeter, log);
    const libraries = [...new Set(variants.map((v) => v.library))] as LibraryName[];
    const perRep = [...only].some((name) => name !== 'many-databases' && name !== 'retention');
    for (let rep = 0; perRep && rep < params.reps; rep++) {
      // Alternate the order, so no configuration always runs on a warmer (or busier) server.
      const flip = <T>(list: readonly T[]): T[] => (rep % 2 === 0 ? [...list] : [...list].reverse());
      log(`repetition ${rep + 1}/${params.reps}`);
      if (only.has('enqueue')) for (const l of flip(libraries)) await enqueueScenario(ctx, l);
      if (only.has('bulk-drain')) for (const v of flip(variants)) await bulkDrainScenario(ctx, v, rep);
      if (only.has('floor')) await floorScenario(ctx, rep);
      if (only.has('chain')) for (const v of flip(chainVariants(variants))) await chainScenario(ctx, v, rep);
      if (only.has('latency')) for (const v of flip(variants)) await latencyScenario(ctx, v, rep);
      if (only.has('sweep')) {
        for (const v of flip(sweep)) await bulkDrainScenario(ctx, v, rep, 'sweep', params.sweepJobs);
      }
    }
    // Stepping only (no peer serves many databases from one worker); one run.
    let manyDatabases: ManyDatabasesResult | null = null;
    if (only.has('many-databases')) {
      manyDatabases = await manyDatabasesScenario(factory, params.many, node, log, serverCpu).catch(
        (error: unknown) => {
          ctx.results.failures.push(`many-databases: ${(error as Error).stack ?? String(error)}`);
          return null;
        },
      );
    }

    // Stepping only, one run.
    let retention: RetentionResult | null = null;
    if (only.has('retention')) {
      retention = await retentionScenario(factory, params.retention, log).catch((error: unknown) => {
        ctx.results.failures.push(`retention: ${(error as Error).stack ?? String(error)}`);
        return null;
      });
    }

    const { results } = ctx;
    deriveFigures(results, variants);
    const goalList = goals(results);
    const profileList = profiles(results.profiles);
    const wallSeconds = (Date.now() - started) / 1000;
    const cpus = os.cpus();
    const meta = {
      date: new Date().toISOString(),
      mode: params.mode,
      wallSeconds,
      parentNode: process.version,
      workerNode: node,
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      cpuCount: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
      postgres: facts,
      server: serverLabel,
      libraries: {
        graphileWorker: versionOf('graphile-worker'),
        pgBoss: versionOf('pg-boss'),
      },
      methods: {
        drain:
          'Jobs bulk-enqueued, then ANALYZE (as autovacuum would) and CHECKPOINT; the rate is jobs / time from the ' +
          'call that starts the worker until the database shows no unfinished job. ⏱: stopped at the cap, rate = ' +
          'handler runs / cap.',
        wal:
          'pg_current_wal_lsn() before and after the drain; when pg_waldump of the server version can read the ' +
          "server's pg_wal, only the records of the run's database (its relations, its transactions' commits; " +
          'autovacuum of its tables included) count, else every record of the server.',
        statements:
          'Counted in the worker child: pg.Client.prototype.query wrapped, so every connection of the library ' +
          '(pools, LISTEN) counts; from worker start to the end of the drain.',
        transactions: 'pg_stat_database.xact_commit delta of the database over the worker run.',
        rowUpdates:
          'pg_stat_user_tables n_tup_upd / n_tup_hot_upd / n_tup_del deltas over the drain, all tables.',
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
      variants,
      sweep: only.has('sweep') ? sweep : [],
      goals: goalList,
      figures: summarizeAll(results),
      capped: [...results.capped],
      profiles: profileList,
      manyDatabases,
      retention,
      failures: results.failures,
    };
    // A quick run (CI's smoke run) must not overwrite the full run the README quotes.
    const target =
      out ??
      path.join(
        path.dirname(fileURLToPath(import.meta.url)),
        'results',
        params.mode === 'quick'
          ? 'quick.tmp.json'
          : only.size === 1 && only.has('retention')
            ? 'retention.json'
            : 'latest.json',
      );
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, `${JSON.stringify(document, null, 2)}\n`);

    console.log(
      `## Stepping vs graphile-worker ${meta.libraries.graphileWorker} and pg-boss ${meta.libraries.pgBoss} ` +
        `(${params.mode}, ${params.reps} repetition${params.reps === 1 ? '' : 's'})\n`,
    );
    console.log(
      `${meta.cpuCount} × ${meta.cpuModel}, ${meta.memoryGb} GB; ${serverLabel}: PostgreSQL ${facts.server_version}, ` +
        `fsync=${facts.fsync}, synchronous_commit=${facts.synchronous_commit}, ` +
        `full_page_writes=${facts.full_page_writes}, shared_buffers=${facts.shared_buffers} pages, ` +
        `shared_preload_libraries='${facts.shared_preload_libraries ?? ''}'; ` +
        `worker children on Node ${node.version} (${node.source}); ${meta.date}. ` +
        `Median (min–max) of the repetitions; ${params.analyze ? 'ANALYZE after each pre-load' : 'no ANALYZE after the pre-load'}.\n`,
    );
    const drained = only.has('bulk-drain') || only.has('chain') || only.has('latency');
    if (drained) {
      console.log(markdownSettings(variants));
      console.log('');
      console.log(
        markdownFigures(results, variants, {
          bulk: params.bulkJobs,
          chain: params.chainJobs,
          chainSteps: params.chainSteps,
        }),
      );
      console.log(
        "\nWAL: the run's database's own records, decoded with pg_waldump; † the server-wide " +
          'pg_current_wal_lsn() difference instead (no pg_waldump for this server, or its WAL was recycled).' +
          (results.capped.size > 0
            ? ` ⏱ stopped after ${params.drainCapMs} ms with jobs left; rate = handler runs / time.`
            : ''),
      );
      console.log('');
      console.log(markdownGoals(goalList));
    }
    const enqueue = markdownEnqueue(results, libraries, params.bulkJobs);
    if (enqueue) console.log(`\n${enqueue}`);
    if (only.has('sweep'))
      console.log(
        `\n### Sweep (${params.sweepJobs.toLocaleString('en-US')} jobs per drain)\n\n${markdownSweep(results, sweep)}`,
      );
    if (manyDatabases) console.log(`\n${markdownManyDatabases(manyDatabases)}`);
    if (retention) console.log(`\n${markdownRetention(retention)}`);
    if (drained) console.log(markdownProfiles(profileList));
    if (results.failures.length > 0)
      console.log(`\nFailures:\n${results.failures.map((f) => `- ${f}`).join('\n')}`);
    console.log(
      `\nWall time ${wallSeconds.toFixed(0)} s; results in ${path.relative(process.cwd(), target)}`,
    );
    if (results.failures.length > 0) process.exitCode = 1;
  } finally {
    await factory.dropAll();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
