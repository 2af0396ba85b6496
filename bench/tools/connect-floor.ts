/**
 * Analysis tool, not part of `npm run bench`: the floor under issue 17's many-databases
 * start-up. Makes `n` fresh copies of a migrated database (as the many-databases scenario
 * does) and times reaching each of them once, `concurrency` at a time: a first connection
 * (the new backend builds its caches for a database no backend has served yet) and one
 * statement — `SELECT 1`, then, on another set of fresh copies, a first `step_claim`. A
 * worker serving N quiet databases must do at least this much per database before their
 * first job can run. Then the same sequence a worker's start and first job take on one
 * connection (schema check, registration, schedules, claim, next due time, report).
 *
 *   npx tsx bench/tools/connect-floor.ts <serverUrl> [n=300] [concurrency=8]
 */
import pg from 'pg';

import { DatabaseFactory } from '../lib/db.js';
import { tenantCopies, tenantTemplate } from '../lib/tenants.js';

const [serverUrl, nArg, concurrencyArg] = process.argv.slice(2);
if (!serverUrl) throw new Error('usage: tsx bench/tools/connect-floor.ts <serverUrl> [n] [concurrency]');
const N = Number(nArg ?? 300);
const CONCURRENCY = Number(concurrencyArg ?? 8);
const factory = new DatabaseFactory(serverUrl);

/** The statements of one pass over a fresh database, on one connection. */
type Pass = (c: pg.Client) => Promise<void>;

const passes: [string, Pass][] = [
  ['connect + SELECT 1', async (c) => void (await c.query('SELECT 1'))],
  [
    'connect + first step_claim',
    async (c) => void (await c.query(`SELECT * FROM stepping.step_claim('w', '{noop}', NULL, 8, 30000)`)),
  ],
  [
    "connect + a worker's start and one 3-job claim and report, one connection",
    async (c) => {
      await c.query(`SELECT pg_catalog.to_regprocedure($1) IS NOT NULL AS ready`, [
        'stepping.step_complete(bigint[],uuid[],jsonb[],jsonb[],text,text[],text[],integer)',
      ]);
      await c.query('SELECT pg_catalog.current_database()');
      await c.query(`SELECT stepping.worker_register('w', 'h', '1', NULL, '{noop}', 24, 300000)`);
      await c.query(`SELECT stepping.schedule_next_due_in_ms('{}')`);
      const { rows } = await c.query<{ job_id: string; lease_token: string }>(
        `SELECT * FROM stepping.step_claim('w', '{noop}', NULL, 8, 30000)`,
      );
      if (rows.length !== 3) throw new Error(`claimed ${rows.length} units, not the 3 queued`);
      await c.query(`SELECT stepping.next_due_in_ms('{noop}', NULL)`);
      const report = await c.query<{ accepted: boolean }>(
        `SELECT * FROM stepping.step_complete($1::bigint[], $2::uuid[], NULL, NULL, 'w', '{noop}', NULL, 30000)`,
        [rows.map((r) => r.job_id), rows.map((r) => r.lease_token)],
      );
      if (!report.rows.every((r) => r.accepted)) throw new Error('a report was not accepted');
    },
  ],
];

try {
  // Three quiet jobs, as each quiet tenant of the many-databases scenario has.
  const template = await tenantTemplate(factory, 'floor_tpl', 3);
  console.log(
    `${N} fresh copies per pass, ${CONCURRENCY} at a time (${serverUrl.replace(/\/\/[^@]*@/, '//')})`,
  );
  for (const [label, pass] of passes) {
    const names = await tenantCopies(factory, template, 'floor', N);
    const started = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < N; i = next++) {
          const c = new pg.Client({ connectionString: factory.url(names[i]!) });
          await c.connect();
          try {
            await pass(c);
          } finally {
            await c.end();
          }
        }
      }),
    );
    const ms = Date.now() - started;
    console.log(`${label}: ${ms} ms, ${(ms / N).toFixed(1)} ms per database`);
    for (const name of names) await factory.drop(name);
  }
} finally {
  await factory.dropAll();
}
