/**
 * More busy databases than connections: one many-databases worker (`concurrency` 8,
 * `maxConnections` 12) drains `jobs` transactional one-step jobs (a 5 ms handler writing
 * one row through ctx.tx) in each of `databases` databases, all queued before it starts.
 * Prints jobs/s overall and when each database's first job was done (median and last);
 * then the same for one database alone, for comparison.
 *
 *   npx tsx bench/tools/busy-databases.ts <serverUrl> [databases=20] [jobs=50]
 */
import { createStepping, createWorker, defineStep } from '../../src/index.js';
import { DatabaseFactory, queryOnce } from '../lib/db.js';

const [serverUrl, databasesArg, jobsArg] = process.argv.slice(2);
if (!serverUrl) throw new Error('usage: tsx bench/tools/busy-databases.ts <serverUrl> [databases] [jobs]');
const DATABASES = Number(databasesArg ?? 20);
const JOBS = Number(jobsArg ?? 50);
const factory = new DatabaseFactory(serverUrl);
const step = defineStep(
  'busy.tx',
  async (_args: unknown, ctx) => {
    await ctx.tx!.query('INSERT INTO effects VALUES ($1)', [ctx.jobId]);
    await new Promise((r) => setTimeout(r, 5));
  },
  { transactional: true },
);

async function run(n: number, jobs: number, template: string): Promise<void> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) names.push(await factory.create('busy', template, { trackFunctions: false }));
  try {
    for (const name of names) {
      const s = createStepping({ connectionString: factory.url(name) });
      await s.enqueueMany(
        undefined,
        Array.from({ length: jobs }, () => ({ steps: [step({})] })),
      );
      await s.close();
    }
    const firstDone = new Map<string, number>();
    let done = 0;
    const started = Date.now();
    const finished = new Promise<void>((resolve) => {
      const worker = createWorker({
        databases: names.map((name) => ({ id: name, connectionString: factory.url(name) })),
        steps: [step],
        concurrency: 8,
        maxConnections: 12,
      });
      worker.on('error', () => {});
      worker.on('step:succeeded', (e) => {
        if (!firstDone.has(e.database)) firstDone.set(e.database, Date.now() - started);
        if (++done === n * jobs) void worker.stop().then(resolve);
      });
      void worker.start();
    });
    await finished;
    const ms = Date.now() - started;
    const firsts = [...firstDone.values()].sort((x, y) => x - y);
    console.log(
      `${n} database(s) × ${jobs} jobs: ${((n * jobs * 1000) / ms).toFixed(1)} jobs/s; ` +
        `each database's first job done after ${firsts[Math.floor(firsts.length / 2)]} ms (median), ${firsts.at(-1)} ms (last)`,
    );
  } finally {
    for (const name of names) await factory.drop(name);
  }
}

const template = await factory.create('busy_template', undefined, { trackFunctions: false });
try {
  const s = createStepping({ connectionString: factory.url(template) });
  await s.migrate();
  await s.close();
  await queryOnce(factory.url(template), 'CREATE TABLE effects (job_id bigint)');
  await run(DATABASES, JOBS, template);
  await run(1, DATABASES * JOBS, template);
} finally {
  await factory.drop(template);
}
