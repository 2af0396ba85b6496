/**
 * Many databases (Stepping only: no peer serves several databases from one worker).
 * 20 databases on one server: a hot tenant with `hotJobs` queued one-step jobs and 19
 * quiet ones with 10 each, all enqueued before one worker (concurrency 24, budget of
 * 40 connections) starts. Reports when the quiet tenants were done compared with the hot
 * one (fairness), overall throughput, and the peak connection count seen by the server.
 */
import pg from 'pg';
import { createStepping, createWorker, defineStep } from '../../src/index.js';
import type { DatabaseFactory } from '../lib/db.js';

/** Figures of one run. */
export interface ManyDatabasesResult {
  databases: number;
  hotJobs: number;
  quietJobs: number;
  maxConnections: number;
  /** ms from worker start until the last quiet job finished. */
  quietDoneMs: number;
  /** ms from worker start until the hot tenant's last job finished. */
  hotDoneMs: number;
  /** How many hot jobs were done when the last quiet job finished. */
  hotDoneWhenQuietDone: number;
  jobsPerSecond: number;
  peakConnections: number;
}

const DATABASES = 20;
const QUIET_JOBS = 10;
const MAX_CONNECTIONS = 40;

/** Runs the scenario once; the databases are dropped by the factory at the end of the run. */
export async function manyDatabasesScenario(
  factory: DatabaseFactory,
  hotJobs: number,
  log: (line: string) => void,
): Promise<ManyDatabasesResult> {
  const template = await factory.create('many_template');
  const migrator = createStepping({ connectionString: factory.url(template) });
  await migrator.migrate();
  await migrator.close();
  const names: string[] = [];
  for (let i = 0; i < DATABASES; i++) names.push(await factory.create(`many_${i}`, template));
  const noop = defineStep('bench.noop', async () => {});
  for (const [i, name] of names.entries()) {
    const s = createStepping({ connectionString: factory.url(name) });
    const n = i === 0 ? hotJobs : QUIET_JOBS;
    for (let done = 0; done < n; done += 5000) {
      const chunk = Math.min(5000, n - done);
      await s.enqueueMany(
        undefined,
        Array.from({ length: chunk }, () => ({ steps: [noop({})] })),
      );
    }
    await s.close();
  }
  log(`many databases: ${DATABASES} databases, ${hotJobs} hot + ${(DATABASES - 1) * QUIET_JOBS} quiet jobs`);

  const worker = createWorker({
    databases: names.map((name) => ({ id: name, connectionString: factory.url(name) })),
    steps: [noop],
    concurrency: 24,
    maxConnections: MAX_CONNECTIONS,
  });
  const hot = names[0]!;
  let hotDone = 0;
  let quietDone = 0;
  let quietDoneMs = -1;
  let hotDoneMs = -1;
  let hotDoneWhenQuietDone = -1;
  const finished = new Promise<void>((resolve) => {
    worker.on('job:succeeded', (e) => {
      if (e.database === hot) {
        if (++hotDone === hotJobs) {
          hotDoneMs = Date.now() - started;
          if (quietDoneMs >= 0) resolve();
        }
      } else if (++quietDone === (DATABASES - 1) * QUIET_JOBS) {
        quietDoneMs = Date.now() - started;
        hotDoneWhenQuietDone = hotDone;
        if (hotDoneMs >= 0) resolve();
      }
    });
  });
  let peakConnections = 0;
  let sampling = true;
  const sampler = (async () => {
    const admin = new pg.Client(factory.url('postgres'));
    await admin.connect();
    try {
      while (sampling) {
        const { rows } = await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'stepping-worker'`,
        );
        peakConnections = Math.max(peakConnections, rows[0].n as number);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await admin.end();
    }
  })();
  const started = Date.now();
  await worker.start();
  await finished;
  const totalMs = Date.now() - started;
  sampling = false;
  await sampler;
  await worker.stop();
  return {
    databases: DATABASES,
    hotJobs,
    quietJobs: (DATABASES - 1) * QUIET_JOBS,
    maxConnections: MAX_CONNECTIONS,
    quietDoneMs,
    hotDoneMs,
    hotDoneWhenQuietDone,
    jobsPerSecond: Math.round(((hotJobs + (DATABASES - 1) * QUIET_JOBS) * 1000) / totalMs),
    peakConnections,
  };
}
