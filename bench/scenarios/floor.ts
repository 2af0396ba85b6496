/**
 * The reference: the one-step drain done by the smallest SQL that could do it. A plain
 * table gets bulkJobs rows in one INSERT; then floorConnections connections each loop
 * "claim up to floorBatch rows (UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED
 * LIMIT n) RETURNING), delete them" until a claim comes back empty. No handler, no
 * JavaScript between the statements but the loop itself; nothing kept after the drain.
 */
import pg from 'pg';

import type { BenchContext } from '../lib/context.js';
import { committedTransactions, queryOnce } from '../lib/db.js';
import { sleep } from '../lib/stats.js';
import { walMark, walSince } from '../lib/wal.js';

const CLAIM = `
  UPDATE floor_jobs SET locked_at = now(), locked_by = $1
  WHERE id IN (SELECT id FROM floor_jobs WHERE locked_at IS NULL ORDER BY id
               LIMIT $2 FOR UPDATE SKIP LOCKED)
  RETURNING id, payload`;
const COMPLETE = `DELETE FROM floor_jobs WHERE id = ANY ($1::bigint[])`;

async function claimLoop(client: pg.Client, name: string, batch: number): Promise<number> {
  let statements = 0;
  for (;;) {
    const { rows } = await client.query<{ id: string }>(CLAIM, [name, batch]);
    statements += 1;
    if (rows.length === 0) return statements;
    await client.query(COMPLETE, [rows.map((r) => r.id)]);
    statements += 1;
  }
}

/** Records floor.throughput (jobs/s) and floor's statements and server CPU per job. */
export async function floorScenario(ctx: BenchContext, rep: number): Promise<void> {
  const { params, results, factory } = ctx;
  const name = await factory.create('floor');
  const url = factory.url(name);
  const clients: pg.Client[] = [];
  try {
    await queryOnce(
      url,
      `CREATE TABLE floor_jobs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, task text NOT NULL,
         payload jsonb NOT NULL, locked_at timestamptz, locked_by text)`,
    );
    await queryOnce(
      url,
      `INSERT INTO floor_jobs (task, payload) SELECT 'noop', '{}' FROM generate_series(1, $1)`,
      [params.bulkJobs],
    );
    for (let i = 0; i < params.floorConnections; i++) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      clients.push(client);
    }
    await queryOnce(url, 'ANALYZE floor_jobs');
    await queryOnce(factory.serverUrl, 'CHECKPOINT');
    const xact0 = await committedTransactions(url);
    const meter = results.walDecoded.has('drain/floor') ? null : ctx.wal;
    const mark = await walMark(url, meter);
    const cpu0 = ctx.serverCpu?.read() ?? Number.NaN;
    const t0 = performance.now();
    const statements = await Promise.all(
      clients.map((c, i) => claimLoop(c, `floor-${i}`, params.floorBatch)),
    );
    const ms = performance.now() - t0;
    await Promise.all(clients.splice(0).map((c) => c.end()));
    await sleep(300);
    const cpu1 = ctx.serverCpu?.read() ?? Number.NaN;
    const wal = await walSince(meter, url, mark);
    if (wal.own) results.walDecoded.add('drain/floor');
    const walBytes = wal.own?.bytes ?? wal.serverBytes;
    const xact1 = await committedTransactions(url);
    const [left] = await queryOnce<{ n: number }>(url, 'SELECT count(*)::int AS n FROM floor_jobs');
    if (left?.n !== 0) results.failures.push(`floor rep ${rep}: ${left?.n} rows left`);
    const rate = (params.bulkJobs / ms) * 1000;
    results.record('drain.throughput', 'floor', rate);
    results.record(
      'drain.statementsPerStep',
      'floor',
      statements.reduce((a, b) => a + b, 0) / params.bulkJobs,
    );
    results.record('drain.serverCpuMsPer1kSteps', 'floor', ((cpu1 - cpu0) * 1000) / params.bulkJobs);
    if (wal.own) results.record('drain.walBytesPerStep', 'floor', walBytes / params.bulkJobs);
    results.record('drain.walServerBytesPerStep', 'floor', wal.serverBytes / params.bulkJobs);
    results.record('drain.transactionsPerStep', 'floor', (xact1 - xact0) / params.bulkJobs);
    results.record('drain.updatesPerStep', 'floor', 1);
    results.record('drain.deletesPerStep', 'floor', 1);
    ctx.log(`  floor: ${Math.round(rate)} jobs/s, ${(walBytes / params.bulkJobs).toFixed(0)} WAL B/job`);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
    await factory.drop(name);
  }
}
