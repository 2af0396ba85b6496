/**
 * Head-of-line cost of work this worker cannot take: a worker serving queue `q` drains
 * `jobs` one-step jobs while `blocked` due jobs sit in front of them in claim order (same
 * priority, earlier due time) in another queue, or under a step name no worker runs. Each
 * claim walks past those rows. Prints jobs/s of the drain and the time of one claim; last,
 * the other queue's jobs at a lower priority (a larger number), which puts them behind.
 *
 *   npx tsx bench/tools/head-of-line.ts <serverUrl> [blocked=100000] [jobs=5000]
 */
import pg from 'pg';

import { createStepping, createWorker, defineStep } from '../../src/index.js';
import { DatabaseFactory, queryOnce } from '../lib/db.js';

const [serverUrl, blockedArg, jobsArg] = process.argv.slice(2);
if (!serverUrl) throw new Error('usage: tsx bench/tools/head-of-line.ts <serverUrl> [blocked] [jobs]');
const BLOCKED = Number(blockedArg ?? 100_000);
const JOBS = Number(jobsArg ?? 5000);
const factory = new DatabaseFactory(serverUrl);
const noop = defineStep('hol.noop', async () => {});

async function drain(label: string, blocker: 'none' | 'queue' | 'name' | 'queue-later'): Promise<void> {
  const name = await factory.create(`hol_${blocker.replace('-', '_')}`);
  const url = factory.url(name);
  try {
    const s = createStepping({ connectionString: url });
    await s.migrate();
    // The blocking jobs first: they are due earlier, so they lead the claim order.
    for (let i = 0; i < (blocker === 'none' ? 0 : BLOCKED); i += 5000) {
      const n = Math.min(5000, BLOCKED - i);
      await s.enqueueMany(
        undefined,
        Array.from({ length: n }, () =>
          blocker === 'queue'
            ? { steps: [{ name: 'hol.noop', args: {} }], options: { queue: 'other' } }
            : blocker === 'queue-later'
              ? { steps: [{ name: 'hol.noop', args: {} }], options: { queue: 'other', priority: 10 } }
              : { steps: [{ name: 'hol.nobody', args: {} }], options: { queue: 'q' } },
        ),
      );
    }
    for (let i = 0; i < JOBS; i += 5000) {
      await s.enqueueMany(
        undefined,
        Array.from({ length: Math.min(5000, JOBS - i) }, () => ({
          steps: [noop({})],
          options: { queue: 'q' },
        })),
      );
    }
    await s.close();
    await queryOnce(url, 'VACUUM ANALYZE');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const t = performance.now();
    await c.query('BEGIN');
    await c.query(`SELECT * FROM stepping.step_claim('probe', ARRAY['hol.noop'], ARRAY['q'], 10)`);
    const claimMs = performance.now() - t;
    await c.query('ROLLBACK');
    await c.end();
    const worker = createWorker({ connectionString: url, steps: [noop], queues: ['q'] });
    let done = 0;
    let finished: () => void = () => {};
    const all = new Promise<void>((resolve) => (finished = resolve));
    worker.on('step:succeeded', () => {
      if (++done === JOBS) finished();
    });
    const t0 = performance.now();
    await worker.start();
    await all;
    const seconds = (performance.now() - t0) / 1000;
    await worker.stop();
    console.log(
      `${label}: ${JOBS} jobs in ${seconds.toFixed(2)} s = ${Math.round(JOBS / seconds)} jobs/s; one claim of 10: ${claimMs.toFixed(1)} ms`,
    );
  } finally {
    await factory.drop(name);
  }
}

await drain('nothing in front', 'none');
await drain(`${BLOCKED} due jobs of another queue in front`, 'queue');
await drain(`${BLOCKED} due jobs of a step name nobody runs in front`, 'name');
await drain(
  `${BLOCKED} due jobs of another queue at priority 10 (behind: claim order is priority first)`,
  'queue-later',
);
