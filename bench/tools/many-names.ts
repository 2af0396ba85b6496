/**
 * Analysis tool, not part of `npm run bench`: the cost of a claim (and of the idle
 * look-up, next_due_in_ms) for a worker with many step names, when `blocked` due jobs of
 * steps it does not run sit in front of its own work. Each row the claim walks past is
 * compared with the worker's names. Prints milliseconds per call (median of `reps`) for
 * each list length; the worker's own name is last in its list.
 *
 *   npx tsx bench/tools/many-names.ts <serverUrl> [blocked=50000] [reps=5]
 */
import pg from 'pg';

import { createStepping } from '../../src/index.js';
import { DatabaseFactory, queryOnce } from '../lib/db.js';

const [serverUrl, blockedArg, repsArg] = process.argv.slice(2);
if (!serverUrl) throw new Error('usage: tsx bench/tools/many-names.ts <serverUrl> [blocked] [reps]');
const BLOCKED = Number(blockedArg ?? 50_000);
const REPS = Number(repsArg ?? 5);
const factory = new DatabaseFactory(serverUrl);
const name = await factory.create('many_names');
const url = factory.url(name);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const s = createStepping({ connectionString: url });
  await s.migrate();
  for (let i = 0; i < BLOCKED; i += 5000) {
    await s.enqueueMany(
      undefined,
      Array.from({ length: Math.min(5000, BLOCKED - i) }, (_, k) => ({
        steps: [{ name: `other.${k % 50}`, args: {} }],
      })),
    );
  }
  await s.enqueueMany(
    undefined,
    Array.from({ length: 100 }, () => ({ steps: [{ name: 'mine', args: {} }] })),
  );
  await s.close();
  await queryOnce(url, 'ANALYZE');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  for (const n of [1, 16, 17, 100, 1000, 3000]) {
    const names = [...Array.from({ length: n - 1 }, (_, i) => `x.${i}`), 'mine'];
    const claims: number[] = [];
    const dues: number[] = [];
    for (let r = 0; r < REPS; r++) {
      await c.query('BEGIN');
      let t0 = performance.now();
      const { rowCount } = await c.query(`SELECT job_id FROM stepping.step_claim('w', $1, NULL, 10, 60000)`, [
        names,
      ]);
      claims.push(performance.now() - t0);
      await c.query('ROLLBACK');
      if (rowCount !== 10) throw new Error(`claimed ${rowCount}, not 10`);
      t0 = performance.now();
      await c.query(`SELECT stepping.next_due_in_ms($1)`, [names]);
      dues.push(performance.now() - t0);
    }
    console.log(
      JSON.stringify({
        names: n,
        blocked: BLOCKED,
        claimMs: +median(claims).toFixed(1),
        nextDueMs: +median(dues).toFixed(1),
      }),
    );
  }
  await c.end();
} finally {
  await factory.drop(name);
}
