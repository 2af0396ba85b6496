/**
 * Analysis tool, not part of `npm run bench`: what fleet-wide limits (issue 14) cost a
 * queue without limits, on the SQL path alone (no worker process, no handler). Compares,
 * on one server and interleaved, fresh databases whose claim/report functions are
 *   - `before`: those of a base commit (default `main`; transitions.sql, claim.sql and
 *     report.sql from `git show <base>:sql/...`, applied over this checkout's migrate),
 *   - `after`: this checkout's,
 *   - `after+other-limited`: this checkout's, with a limit set on another queue (the
 *     claim then takes the limited-queue pass and excludes it from the main pass).
 * Each repetition drains N one-step jobs (and N/2 two-step jobs: the second step is a
 * continuation leased by step_complete) with 2 connections looping step_claim(…, 100)
 * and step_complete, as a worker does. Prints, per run and as medians, units/s and the
 * server's CPU time per unit (all its processes: on a shared, loaded machine the wall-clock
 * rate swings with the neighbours, the CPU the server spends per unit much less).
 *
 *   npx tsx bench/tools/limits-overhead.ts [base-ref] [repetitions] [units] [steps,...] [config,...]
 *
 * e.g. `… main 7 20000` (all), `… main 10 20000 2 before,after` (continuations only).
 */
import { execFileSync } from 'node:child_process';

import pg from 'pg';

import { startDatabaseServer } from '../../scripts/embedded-db.js';
import { createStepping } from '../../src/index.js';
import { DatabaseFactory, queryOnce } from '../lib/db.js';
import { ServerCpu } from '../lib/server-cpu.js';

const [base = 'main', repsArg = '5', jobsArg = '20000', stepsArg = '1,2', configsArg] = process.argv.slice(2);
const reps = Number(repsArg);
const N = Number(jobsArg);
const beforeSql =
  'SET search_path = pg_catalog, stepping, pg_temp;\n' +
  ['transitions.sql', 'claim.sql', 'report.sql']
    .map((f) => execFileSync('git', ['show', `${base}:sql/${f}`], { encoding: 'utf8' }))
    .join('\n');

type Config = 'before' | 'after' | 'after+other-limited';
const CONFIGS: Config[] = configsArg
  ? (configsArg.split(',') as Config[])
  : ['before', 'after', 'after+other-limited'];
const SHAPES = stepsArg.split(',').map(Number);

async function drain(url: string, cpu: ServerCpu | null): Promise<{ rate: number; cpuUs: number }> {
  const clients = await Promise.all(
    [0, 1].map(async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  const c0 = cpu?.read() ?? NaN;
  const t0 = performance.now();
  let units = 0;
  await Promise.all(
    clients.map(async (c, i) => {
      let held: { job_id: string; lease_token: string }[] = [];
      for (;;) {
        if (held.length === 0) {
          held = (
            await c.query<{ job_id: string; lease_token: string }>(
              'SELECT job_id, lease_token FROM stepping.step_claim($1, $2, NULL, 100, 30000)',
              [`w${i}`, ['noop']],
            )
          ).rows;
          if (held.length === 0) return;
        }
        units += held.length;
        const { rows } = await c.query<{ next_job: string | null; next_token: string | null }>(
          `SELECT (next).job_id AS next_job, (next).lease_token AS next_token
           FROM stepping.step_complete($1::bigint[], $2::uuid[], NULL, NULL, $3, $4, NULL, 30000)`,
          [held.map((r) => r.job_id), held.map((r) => r.lease_token), `w${i}`, ['noop']],
        );
        held = rows
          .filter((r) => r.next_job !== null)
          .map((r) => ({ job_id: r.next_job!, lease_token: r.next_token! }));
      }
    }),
  );
  const ms = performance.now() - t0;
  const c1 = cpu?.read() ?? NaN;
  await Promise.all(clients.map((c) => c.end()));
  if (units !== N) throw new Error(`drained ${units} units, expected ${N}`);
  return { rate: (units / ms) * 1000, cpuUs: ((c1 - c0) * 1000) / units };
}

async function run(
  factory: DatabaseFactory,
  cpu: ServerCpu | null,
  config: Config,
  steps: number,
): Promise<{ rate: number; cpuUs: number }> {
  const name = await factory.create(config.replace(/\W/g, '_'));
  const url = factory.url(name);
  const s = createStepping({ connectionString: url });
  await s.migrate();
  if (config === 'before') await queryOnce(url, beforeSql);
  if (config === 'after+other-limited') await s.setQueueLimit('elsewhere', { maxRunning: 5 });
  const jobs = N / steps;
  for (let i = 0; i < jobs; i += 5000) {
    await s.enqueueMany(
      undefined,
      Array.from({ length: Math.min(5000, jobs - i) }, () => ({
        steps: Array.from({ length: steps }, () => ({ name: 'noop', args: {} })),
      })),
    );
  }
  await s.close();
  await queryOnce(url, 'ANALYZE');
  const result = await drain(url, cpu);
  await factory.drop(name);
  return result;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const server = await startDatabaseServer((line) => console.error(line));
const factory = new DatabaseFactory(server.url);
const cpu = await ServerCpu.locate(server.url);
try {
  const results = new Map<string, { rate: number; cpuUs: number }[]>();
  for (let rep = 0; rep < reps; rep++) {
    for (const steps of SHAPES) {
      // Rotate the order each repetition so no configuration always runs first.
      const order = CONFIGS.map((_, i) => CONFIGS[(i + rep) % CONFIGS.length]!);
      for (const config of order) {
        const r = await run(factory, cpu, config, steps);
        const key = `${steps}-step ${config}`;
        results.set(key, [...(results.get(key) ?? []), r]);
        console.error(
          `rep ${rep} ${key}: ${Math.round(r.rate)} units/s, server ${r.cpuUs.toFixed(1)} µs CPU/unit`,
        );
      }
    }
  }
  console.log(
    `| run (${N} units, 2 connections, claim 100) | median server CPU µs/unit | median units/s | runs (µs/unit) |`,
  );
  console.log('|---|---:|---:|---|');
  for (const [key, runs] of results) {
    const cpuUs = runs.map((r) => r.cpuUs);
    console.log(
      `| ${key} | ${median(cpuUs).toFixed(1)} | ${Math.round(median(runs.map((r) => r.rate)))} | ${cpuUs.map((c) => c.toFixed(1)).join(', ')} |`,
    );
  }
} finally {
  await factory.dropAll();
  await server.stop();
}
