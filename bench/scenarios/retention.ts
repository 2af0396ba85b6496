/**
 * Retention (issue 12; Stepping only): `jobs` one-step jobs pushed through one worker
 * with a short retention, so the leader's maintenance prunes finished jobs while new ones
 * arrive. A producer enqueues at a steady `ratePerSecond` (so the run spans several
 * autovacuum naptimes, 1 min by default) and keeps at most `backlog` jobs unfinished
 * (enqueueMany in batches);
 * every `sampleMs` the scenario reads the size of the hot tables
 * (pg_total_relation_size of jobs and steps, indexes and TOAST included), their live and
 * dead tuples (pg_stat_user_tables) and how many job rows exist. The claim: with pruning
 * and autovacuum at its defaults, size and dead tuples stay flat after warm-up instead of
 * growing with the number of jobs run. Reports the first sample, those at 25/50/75/100%
 * of the run, and the maxima.
 */
import pg from 'pg';

import { createStepping, createWorker, defineStep } from '../../src/index.js';
import type { DatabaseFactory } from '../lib/db.js';
import type { RetentionParams } from '../lib/params.js';
import { sleep } from '../lib/stats.js';

/** One reading of the hot tables. */
export interface RetentionSample {
  /** Seconds since the worker started. */
  atS: number;
  /** Jobs finished by then. */
  done: number;
  /** Rows in jobs (what retention keeps, plus the backlog). */
  jobRows: number;
  jobsBytes: number;
  stepsBytes: number;
  jobsDead: number;
  stepsDead: number;
  /** Autovacuum runs of jobs and steps so far. */
  autovacuums: number;
}

/** Figures of one run. */
export interface RetentionResult {
  params: RetentionParams;
  elapsedS: number;
  jobsPerSecond: number;
  pruned: number;
  leaderRuns: number;
  maxMaintenanceMs: number;
  samples: RetentionSample[];
}

const noop = defineStep('retention.noop', async () => {});

async function sample(client: pg.Client, atS: number, done: number): Promise<RetentionSample> {
  const { rows } = await client.query<{
    relname: string;
    bytes: string;
    dead: string;
    vacuums: string;
  }>(
    `SELECT relname, pg_total_relation_size(relid)::text AS bytes, n_dead_tup::text AS dead,
            autovacuum_count::text AS vacuums
     FROM pg_stat_user_tables WHERE schemaname = 'stepping' AND relname IN ('jobs', 'steps')`,
  );
  const [count] = (await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM stepping.jobs`)).rows;
  const of = (name: string) => rows.find((r) => r.relname === name);
  return {
    atS,
    done,
    jobRows: Number(count?.n ?? 0),
    jobsBytes: Number(of('jobs')?.bytes ?? 0),
    stepsBytes: Number(of('steps')?.bytes ?? 0),
    jobsDead: Number(of('jobs')?.dead ?? 0),
    stepsDead: Number(of('steps')?.dead ?? 0),
    autovacuums: Number(of('jobs')?.vacuums ?? 0) + Number(of('steps')?.vacuums ?? 0),
  };
}

/** Runs the scenario on a fresh database of `factory`'s server. */
export async function retentionScenario(
  factory: DatabaseFactory,
  params: RetentionParams,
  log: (line: string) => void,
): Promise<RetentionResult> {
  const name = await factory.create('retention', undefined, { trackFunctions: false });
  const url = factory.url(name);
  const stepping = createStepping({ connectionString: url });
  await stepping.migrate();
  const worker = createWorker({
    connectionString: url,
    steps: [noop],
    concurrency: params.concurrency,
    retention: params.retentionMs,
    maintenanceIntervalMs: params.maintenanceIntervalMs,
  });
  let done = 0;
  let pruned = 0;
  let leaderRuns = 0;
  let maxMaintenanceMs = 0;
  worker.on('job:succeeded', () => (done += 1));
  worker.on('maintenance', (e) => {
    if (!e.leader) return;
    leaderRuns += 1;
    pruned += e.pruned;
    maxMaintenanceMs = Math.max(maxMaintenanceMs, e.durationMs);
  });
  worker.on('error', (e) => log(`retention: worker error during ${e.during}: ${e.error.message}`));
  const reader = new pg.Client({ connectionString: url });
  await reader.connect();
  const samples: RetentionSample[] = [];
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push(await sample(reader, seconds(), done));
      const last = samples.at(-1)!;
      log(
        `retention: ${last.done}/${params.jobs} done, ${last.jobRows} job rows, jobs ${(last.jobsBytes / 1e6).toFixed(1)} MB ` +
          `(${last.jobsDead} dead), steps ${(last.stepsBytes / 1e6).toFixed(1)} MB (${last.stepsDead} dead)`,
      );
      await sleep(params.sampleMs);
    }
  })();
  try {
    await worker.start();
    let enqueued = 0;
    while (enqueued < params.jobs) {
      const paced = params.ratePerSecond > 0 && enqueued >= params.ratePerSecond * seconds();
      if (paced || enqueued - done >= params.backlog) {
        await sleep(5);
        continue;
      }
      const n = Math.min(params.batch, params.jobs - enqueued);
      await stepping.enqueueMany(
        undefined,
        Array.from({ length: n }, () => ({ steps: [noop({})] })),
      );
      enqueued += n;
    }
    while (done < params.jobs) await sleep(20);
  } finally {
    const elapsedS = seconds();
    sampling = false;
    await sampler;
    samples.push(await sample(reader, seconds(), done));
    await worker.stop();
    await reader.end();
    await stepping.close();
    await factory.drop(name).catch(() => {});
    log(
      `retention: ${params.jobs} jobs in ${elapsedS.toFixed(1)} s, ${pruned} pruned by ${leaderRuns} leader runs`,
    );
    return {
      params,
      elapsedS,
      jobsPerSecond: params.jobs / elapsedS,
      pruned,
      leaderRuns,
      maxMaintenanceMs,
      samples,
    };
  }
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** The report's section: the samples at each quarter of the run, and the maxima. */
export function markdownRetention(r: RetentionResult): string {
  const at = (fraction: number) =>
    r.samples.find((s) => s.done >= fraction * r.params.jobs) ?? r.samples.at(-1)!;
  const max = (f: (s: RetentionSample) => number) => Math.max(...r.samples.map(f));
  const rows: (readonly [string, RetentionSample])[] = [
    ['first', r.samples.find((s) => s.done > 0) ?? r.samples[0]!],
    ['25%', at(0.25)],
    ['50%', at(0.5)],
    ['75%', at(0.75)],
    ['last (100%)', r.samples.at(-1)!],
  ];
  const line = (label: string, s: RetentionSample) =>
    `| ${label} | ${s.done.toLocaleString('en-US')} | ${s.jobRows.toLocaleString('en-US')} | ${mb(s.jobsBytes)} | ` +
    `${s.jobsDead.toLocaleString('en-US')} | ${mb(s.stepsBytes)} | ${s.stepsDead.toLocaleString('en-US')} |`;
  return [
    `### Retention (${r.params.jobs.toLocaleString('en-US')} one-step jobs, one worker, retention ${r.params.retentionMs / 1000} s, ` +
      `${r.params.ratePerSecond > 0 ? `enqueued at ${r.params.ratePerSecond} jobs/s` : 'unpaced'})`,
    '',
    `${r.jobsPerSecond.toFixed(0)} jobs/s over ${r.elapsedS.toFixed(0)} s; ${r.pruned.toLocaleString('en-US')} jobs ` +
      `pruned by ${r.leaderRuns} leader maintenance calls (longest ${r.maxMaintenanceMs} ms); ` +
      `${r.samples.length} samples, ${r.samples.at(-1)!.autovacuums} autovacuum runs of jobs and steps.`,
    '',
    '| point of the run | jobs done | job rows | jobs size | jobs dead tuples | steps size | steps dead tuples |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(([label, s]) => line(label, s)),
    `| max | | ${max((s) => s.jobRows).toLocaleString('en-US')} | ${mb(max((s) => s.jobsBytes))} | ` +
      `${max((s) => s.jobsDead).toLocaleString('en-US')} | ${mb(max((s) => s.stepsBytes))} | ` +
      `${max((s) => s.stepsDead).toLocaleString('en-US')} |`,
  ].join('\n');
}
