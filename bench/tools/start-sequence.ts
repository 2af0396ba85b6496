/**
 * Analysis tool, not part of `npm run bench`: where a quiet tenant's time goes when a
 * many-databases worker serves it (issue 17). Makes `n` copies of a migrated database
 * holding 3 queued one-step jobs, connects to each once (as `migrate --databases` does
 * before the worker starts, so the server has built each copy's catalog cache file), then,
 * one copy at a time, times each statement of a worker's start and first job on a new
 * connection — the schema check, registration, schedules, the claim, the next due time,
 * the report — and the disconnect, and prints the median of each. Then drops the copies.
 *
 *   npx tsx bench/tools/start-sequence.ts <serverUrl> [n=40]
 */
import pg from 'pg';

import { DatabaseFactory } from '../lib/db.js';
import { tenantCopies, tenantTemplate } from '../lib/tenants.js';

const [serverUrl, nArg] = process.argv.slice(2);
if (!serverUrl) throw new Error('usage: tsx bench/tools/start-sequence.ts <serverUrl> [n]');
const N = Number(nArg ?? 40);
const factory = new DatabaseFactory(serverUrl);
const times = new Map<string, number[]>();

function record(label: string, ms: number): void {
  const list = times.get(label) ?? [];
  list.push(ms);
  times.set(label, list);
}

/** The statements of a worker's start and first job in one tenant, each timed. */
async function visit(url: string): Promise<void> {
  let t = performance.now();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  record('connect', performance.now() - t);
  const timed = async <R extends pg.QueryResultRow>(label: string, text: string, values: unknown[] = []) => {
    t = performance.now();
    const result = await c.query<R>(text, values);
    record(label, performance.now() - t);
    return result;
  };
  try {
    await timed(
      'schema check',
      'SELECT pg_catalog.to_regprocedure($1) IS NOT NULL AS ready, pg_catalog.current_database() AS name',
      ['stepping.step_complete(bigint[],uuid[],jsonb[],jsonb[],text,text[],text[],integer)'],
    );
    await timed('worker_register', 'SELECT stepping.worker_register($1, $2, $3, $4, $5, $6, $7)', [
      'w',
      'h',
      1,
      null,
      ['noop'],
      24,
      300_000,
    ]);
    await timed('schedule_next_due_in_ms', 'SELECT stepping.schedule_next_due_in_ms($1) AS ms', [[]]);
    const claim = await timed<{ job_id: string; lease_token: string }>(
      'step_claim',
      'SELECT * FROM stepping.step_claim($1, $2, $3, $4, $5)',
      ['w', ['noop'], null, 8, 30_000],
    );
    if (claim.rows.length !== 3) throw new Error(`claimed ${claim.rows.length} units, not the 3 queued`);
    await timed('next_due_in_ms', 'SELECT stepping.next_due_in_ms($1, $2) AS ms', [['noop'], null]);
    const report = await timed<{ accepted: boolean }>(
      'step_complete',
      `SELECT * FROM stepping.step_complete($1::bigint[], $2::uuid[], NULL, NULL, 'w', '{noop}', NULL, 30000)`,
      [claim.rows.map((r) => r.job_id), claim.rows.map((r) => r.lease_token)],
    );
    if (!report.rows.every((r) => r.accepted)) throw new Error('a report was not accepted');
    await timed('next_due_in_ms, again', 'SELECT stepping.next_due_in_ms($1, $2) AS ms', [['noop'], null]);
  } finally {
    t = performance.now();
    await c.end();
    record('disconnect', performance.now() - t);
  }
}

try {
  const names = await tenantCopies(factory, await tenantTemplate(factory, 'seq_tpl', 3), 'seq', N);
  for (const name of names) {
    const c = new pg.Client({ connectionString: factory.url(name) });
    await c.connect();
    await c.query('SELECT 1');
    await c.end();
  }
  for (const name of names) await visit(factory.url(name));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  let sum = 0;
  console.log(`${N} copies, one at a time (${serverUrl.replace(/\/\/[^@]*@/, '//')}); medians:`);
  for (const [label, xs] of times) {
    sum += median(xs);
    console.log(`  ${label.padEnd(24)} ${median(xs).toFixed(2)} ms`);
  }
  console.log(`  ${'sum'.padEnd(24)} ${sum.toFixed(1)} ms`);
} finally {
  await factory.dropAll();
}
