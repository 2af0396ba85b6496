/**
 * Analysis tool, not part of `npm run bench`: an idle many-databases worker, watched for
 * longer than the scenario's 10-s window (issue 17: idle CPU under 1%). Makes `n` fresh
 * copies of a migrated database, runs one `stepping-worker --databases <file>
 * --max-connections 60 --concurrency 24` on them with nothing to do, lets it settle for
 * `warmup` seconds (its start-up, the first garbage collections), then reports over
 * `window` seconds its CPU (user + system, from /proc; per 10 s too), and the tenants'
 * transactions and new connections a second (pg_stat_database). Then drops the copies.
 *
 *   npx tsx bench/tools/idle-watch.ts <serverUrl> [n=300] [warmup=60] [window=90]
 *
 * The worker is the compiled bin (dist/, built first when src/ is newer), as a user runs
 * it. `STEPPING_ROOT=<checkout>` runs the worker of another checkout (with its own
 * node_modules and dist/), to compare two versions side by side; `STEPPING_TSX=1` runs
 * src/ through tsx instead; `CPU_PROF_DIR=<dir>` writes the worker's CPU profile there
 * (the profiler itself costs several % of CPU).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { ensureBuilt } from '../lib/built-package.js';
import { DatabaseFactory } from '../lib/db.js';
import { cpuMsOf } from '../lib/server-cpu.js';
import { tenantCopies, tenantTemplate } from '../lib/tenants.js';

const [serverUrl, nArg, warmupArg, windowArg] = process.argv.slice(2);
if (!serverUrl) throw new Error('usage: tsx bench/tools/idle-watch.ts <serverUrl> [n] [warmup s] [window s]');
const N = Number(nArg ?? 300);
const WARMUP_S = Number(warmupArg ?? 60);
const WINDOW_S = Number(windowArg ?? 90);
const ROOT = process.env.STEPPING_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
if (!process.env.STEPPING_ROOT) ensureBuilt((line) => console.error(line));
const factory = new DatabaseFactory(serverUrl);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const admin = new pg.Client({ connectionString: factory.url('postgres') });
await admin.connect();
/** Transactions and sessions so far, in all and per database. */
const counters = async () => {
  const { rows } = await admin.query<{ d: string; x: string; s: string }>(
    `SELECT datname AS d, (xact_commit + xact_rollback)::text AS x, sessions::text AS s
       FROM pg_stat_database WHERE datname LIKE $1 AND datname NOT LIKE '%\\_tpl\\_%'`,
    [`${factory.prefix}%`],
  );
  const per = new Map(rows.map((r) => [r.d, Number(r.x)]));
  return {
    xacts: rows.reduce((n, r) => n + Number(r.x), 0),
    sessions: rows.reduce((n, r) => n + Number(r.s), 0),
    per,
  };
};

/** The databases with the most transactions between two readings, for seeing who is busy. */
function busiest(before: Map<string, number>, after: Map<string, number>, k: number): string {
  return [...after]
    .map(([d, x]) => [d.replace(`${factory.prefix}_`, ''), x - (before.get(d) ?? 0)] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([d, x]) => `${d} ${x}`)
    .join(', ');
}

try {
  const names = await tenantCopies(factory, await tenantTemplate(factory, 'idle_tpl', 0), 'idle', N);
  const file = path.join(tmpdir(), `idle-watch-${process.pid}.txt`);
  writeFileSync(file, names.map((n) => factory.url(n)).join('\n') + '\n');

  const profile = process.env.CPU_PROF_DIR
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CPU_PROF_DIR}`]
    : [];
  const child = spawn(
    process.execPath,
    [
      ...profile,
      '--import',
      'tsx',
      process.env.STEPPING_TSX === '1'
        ? path.join(ROOT, 'src/cli/stepping-worker.ts')
        : path.join(ROOT, 'dist/src/cli/stepping-worker.js'),
      '--steps',
      path.join(ROOT, 'bench/worker/many-steps.ts'),
      '--databases',
      file,
      '--max-connections',
      '60',
      '--concurrency',
      '24',
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await sleep(WARMUP_S * 1000);
    const cpu0 = cpuMsOf(child.pid!);
    const k0 = await counters();
    const t0 = Date.now();
    const per10: number[] = [];
    for (let i = 0; i < Math.ceil(WINDOW_S / 10); i++) {
      const c = cpuMsOf(child.pid!);
      await sleep(10_000);
      per10.push((cpuMsOf(child.pid!) - c) / 100);
    }
    const seconds = (Date.now() - t0) / 1000;
    const cpu = (cpuMsOf(child.pid!) - cpu0) / 10 / seconds;
    const k1 = await counters();
    console.log(
      `${N} idle databases, ${seconds.toFixed(0)} s after ${WARMUP_S} s: CPU ${cpu.toFixed(2)}% ` +
        `(per 10 s: ${per10.map((x) => x.toFixed(1)).join(' ')}), ` +
        `${((k1.xacts - k0.xacts) / seconds).toFixed(1)} transactions/s, ` +
        `${((k1.sessions - k0.sessions) / seconds).toFixed(2)} new connections/s; ` +
        `most transactions: ${busiest(k0.per, k1.per, 5)}`,
    );
  } finally {
    child.kill('SIGINT');
    await exited;
  }
} finally {
  await admin.end();
  await factory.dropAll();
}
