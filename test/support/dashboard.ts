/**
 * Dashboards for tests: started in this process on a free port and closed after the test,
 * a plain HTTP client that can send any Host/Origin header (fetch refuses to), failed jobs
 * made through the engine's own functions, and the contract's worker views as fixtures.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import { afterEach } from 'node:test';

import type pg from 'pg';

import { type Dashboard, type DashboardOptions, startDashboard } from '../../src/dashboard/server.js';

const started: Dashboard[] = [];
// Registered when the test file imports this module, so it runs after each of the file's
// tests: a dashboard keeps up to 4 idle connections for 10 s, and kept until the file's end
// twenty of them held 50 connections, which with the other files running beside it took
// the machine's PostgreSQL to its max_connections (a test then saw its role refused).
afterEach(async () => {
  await Promise.all(started.splice(0).map((d) => d.close()));
});

/** Starts a dashboard on a free port of 127.0.0.1; closed after the test unless the test closes it. */
export async function dashboard(options: DashboardOptions): Promise<Dashboard> {
  const d = await startDashboard({ port: 0, ...options });
  started.push(d);
  return d;
}

/** An HTTP answer. */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP request with exactly these headers (node:http, so Host and Origin can be anything). */
export async function request(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const u = new URL(url);
  return await new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        method: init.method ?? 'GET',
        headers: init.headers,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** The form token a page embeds (only pages of a dashboard started with allowActions have one). */
export function formToken(page: string): string | null {
  return /name="_csrf" value="([^"]+)"/.exec(page)?.[1] ?? null;
}

/** Claims the one runnable unit named `name`, which must be job `jobId`'s (give each such job a step name of its own). */
async function claimOne(pool: pg.Pool, jobId: string, name: string): Promise<string> {
  const claimed = await pool.query<{ job_id: string; lease_token: string }>(
    `SELECT job_id::text, lease_token::text FROM stepping.step_claim('test-worker', $1, NULL, 1, 60000)`,
    [[name]],
  );
  const unit = claimed.rows[0];
  if (unit?.job_id !== jobId) throw new Error(`job ${jobId} was not the one claimed for ${name}`);
  return unit.lease_token;
}

/** A job failed at its current step through the engine's own functions, as a worker would fail it. */
export async function failJob(pool: pg.Pool, jobId: string, name: string, error: object): Promise<void> {
  const token = await claimOne(pool, jobId, name);
  const failed = await pool.query(
    `SELECT accepted, job_status FROM stepping.step_fail(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY[$3]::jsonb[])`,
    [jobId, token, JSON.stringify({ error, permanent: true })],
  );
  if (failed.rows[0]?.job_status !== 'failed') throw new Error(`job ${jobId} did not fail`);
}

/** Completes the current step of a job through the engine's own functions, storing `result`. */
export async function completeStep(
  pool: pg.Pool,
  jobId: string,
  name: string,
  result: unknown,
): Promise<void> {
  const token = await claimOne(pool, jobId, name);
  const done = await pool.query(
    `SELECT accepted FROM stepping.step_complete(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY[$3]::jsonb[],
       ARRAY[NULL]::jsonb[], NULL, NULL, NULL, NULL)`,
    [jobId, token, JSON.stringify(result)],
  );
  if (done.rows[0]?.accepted !== true) throw new Error(`job ${jobId}: completion refused`);
}

/** A worker_overview row with the ops contract's columns. */
export interface FixtureWorker {
  workerId: string;
  host: string;
  pid: number;
  queues: string[] | null;
  stepNames: string[];
  concurrency: number;
  startedAgo: string;
  heartbeatAgo: string;
  alive: boolean;
  running: number;
}

/** An unrunnable_steps row with the ops contract's columns. */
export interface FixtureUnrunnable {
  stepName: string;
  queue: string;
  jobs: number;
  oldestAge: string;
}

/**
 * Creates `stepping.worker_overview` and `stepping.unrunnable_steps` with exactly the
 * columns of the ops contract (notes/ops-contract.md), holding the given rows, in place of
 * the real views where the installed version has them (this file's database is its own
 * clone). `grantTo` roles may read them. Returns the function that drops them again.
 */
export async function fixtureWorkerViews(
  pool: pg.Pool,
  workers: readonly FixtureWorker[],
  unrunnable: readonly FixtureUnrunnable[],
  grantTo: readonly string[] = [],
): Promise<() => Promise<void>> {
  await dropWorkerViews(pool);
  await pool.query(
    `CREATE VIEW stepping.worker_overview AS
     SELECT w.worker_id, w.host, w.pid, w.queues, w.step_names, w.concurrency,
            stepping.engine_now() - w.started_ago AS started_at,
            stepping.engine_now() - w.heartbeat_ago AS heartbeat_at,
            w.alive, w.running
     FROM jsonb_to_recordset(${literal(JSON.stringify(workers.map(workerJson)))}::jsonb)
       AS w(worker_id text, host text, pid integer, queues text[], step_names text[], concurrency integer,
            started_ago interval, heartbeat_ago interval, alive boolean, running integer)`,
  );
  await pool.query(
    `CREATE VIEW stepping.unrunnable_steps AS
     SELECT u.step_name, u.queue, u.jobs, u.oldest_age
     FROM jsonb_to_recordset(${literal(JSON.stringify(unrunnable.map(unrunnableJson)))}::jsonb)
       AS u(step_name text, queue text, jobs bigint, oldest_age interval)`,
  );
  for (const role of grantTo) {
    await pool.query(`GRANT SELECT ON stepping.worker_overview, stepping.unrunnable_steps TO "${role}"`);
  }
  return () => dropWorkerViews(pool);
}

/**
 * Drops both worker views (fixtures, or the real ones in this file's own database),
 * unrunnable_steps first: a real one may be built on worker_overview.
 */
export async function dropWorkerViews(pool: pg.Pool): Promise<void> {
  await pool.query(`DROP VIEW IF EXISTS stepping.unrunnable_steps`);
  await pool.query(`DROP VIEW IF EXISTS stepping.worker_overview`);
}

function workerJson(w: FixtureWorker): object {
  return {
    worker_id: w.workerId,
    host: w.host,
    pid: w.pid,
    queues: w.queues,
    step_names: w.stepNames,
    concurrency: w.concurrency,
    started_ago: w.startedAgo,
    heartbeat_ago: w.heartbeatAgo,
    alive: w.alive,
    running: w.running,
  };
}

function unrunnableJson(u: FixtureUnrunnable): object {
  return { step_name: u.stepName, queue: u.queue, jobs: u.jobs, oldest_age: u.oldestAge };
}

/** A string literal for DDL (a view's text cannot take parameters). */
function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
