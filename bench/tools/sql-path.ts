/**
 * Analysis tool, not part of `npm run bench`: Stepping's SQL path alone, no worker and no
 * handler. 50,000 one-step jobs; 2 connections each loop `step_claim(…, 100)` then
 * `step_complete` of what they got. An optional patch (SQL run after migrate, before the
 * load: see bench/tools/patches/, prototypes against sql/ as of commit 181ca8e) measures
 * a change to the engine without touching sql/. Prints one JSON line per repetition
 * (jobs/s, the database's own WAL bytes per job and its full-page images, row updates,
 * HOT %, server CPU) and the WAL record kinds.
 *
 *   npx tsx bench/tools/sql-path.ts <serverUrl> <label> [patch.sql|-] [repetitions]
 */
import { readFileSync } from 'node:fs';

import pg from 'pg';

import { createStepping } from '../../src/index.js';
import { DatabaseFactory, queryOnce, tableStats, tableStatsDelta } from '../lib/db.js';
import { ServerCpu } from '../lib/server-cpu.js';
import { walMark, WalMeter, walSince } from '../lib/wal.js';

const [serverUrl, label = 'today', patch, repsArg] = process.argv.slice(2);
if (!serverUrl)
  throw new Error('usage: tsx bench/tools/sql-path.ts <serverUrl> <label> [patch.sql|-] [repetitions]');
const N = 50_000;
const factory = new DatabaseFactory(serverUrl);
const meter = await WalMeter.locate(serverUrl);
const cpu = await ServerCpu.locate(serverUrl);
const reps = Number(repsArg ?? 2);
try {
  for (let rep = 0; rep < reps; rep++) {
    const name = await factory.create(`proto_${label}`, undefined, { trackFunctions: false });
    const url = factory.url(name);
    const s = createStepping({ connectionString: url });
    await s.migrate();
    if (patch && patch !== '-') await queryOnce(url, readFileSync(patch, 'utf8'));
    for (let i = 0; i < N; i += 5000) {
      await s.enqueueMany(
        undefined,
        Array.from({ length: 5000 }, () => ({ steps: [{ name: 'noop', args: {} }] })),
      );
    }
    await s.close();
    await queryOnce(url, 'ANALYZE');
    await queryOnce(serverUrl, 'CHECKPOINT');
    const t0s = await tableStats(url);
    const mark = await walMark(url, meter);
    const c0 = cpu?.read() ?? NaN;
    const clients = await Promise.all(
      [0, 1].map(async () => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        return c;
      }),
    );
    const t0 = performance.now();
    let claimMs = 0;
    let completeMs = 0;
    await Promise.all(
      clients.map(async (c, i) => {
        for (;;) {
          const a = performance.now();
          const { rows } = await c.query<{ job_id: string; lease_token: string }>(
            'SELECT job_id, lease_token FROM stepping.step_claim($1, $2, NULL, $3, 30000)',
            [`w${i}`, ['noop'], 100],
          );
          const b = performance.now();
          claimMs += b - a;
          if (rows.length === 0) return;
          await c.query(
            'SELECT count(*) FROM stepping.step_complete(p_job_ids => $1::bigint[], p_tokens => $2::uuid[], p_worker => $3, p_names => $4, p_lease_ms => 30000)',
            [rows.map((r) => r.job_id), rows.map((r) => r.lease_token), `w${i}`, ['noop']],
          );
          completeMs += performance.now() - b;
        }
      }),
    );
    const ms = performance.now() - t0;
    await Promise.all(clients.map((c) => c.end()));
    await new Promise((r) => setTimeout(r, 300));
    const c1 = cpu?.read() ?? NaN;
    const wal = await walSince(meter, url, mark);
    const tables = tableStatsDelta(t0s, await tableStats(url));
    const [left] = await queryOnce<{ n: number }>(
      url,
      `SELECT count(*)::int AS n FROM stepping.job_overview WHERE status <> 'succeeded'`,
    );
    const upd = tables.reduce((a, t) => a + t.updated, 0);
    const hot = tables.reduce((a, t) => a + t.hotUpdated, 0);
    const kinds = (wal.own?.kinds ?? [])
      .slice(0, 8)
      .map((k) => `${k.kind}:${(k.bytes / N).toFixed(0)}`)
      .join(' ');
    console.log(
      JSON.stringify({
        label,
        rep,
        rate: Math.round((N / ms) * 1000),
        walPerJob: Math.round((wal.own?.bytes ?? wal.serverBytes) / N),
        fpiPerJob: Math.round((wal.own?.fpiBytes ?? NaN) / N),
        updPerJob: +(upd / N).toFixed(2),
        hotPct: Math.round((hot / Math.max(1, upd)) * 100),
        serverCpuUsPerJob: Math.round(((c1 - c0) * 1000) / N),
        claimMsPer1k: +((claimMs / N) * 1000).toFixed(1),
        completeMsPer1k: +((completeMs / N) * 1000).toFixed(1),
        left: left?.n,
      }),
    );
    console.log(`   ${kinds}`);
    await factory.drop(name);
  }
} finally {
  await factory.dropAll();
}
