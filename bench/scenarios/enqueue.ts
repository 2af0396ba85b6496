/**
 * Enqueue one job per transaction (BEGIN; enqueue; COMMIT) from one client, then from
 * several concurrent clients, into a fresh database, through each library's documented
 * in-transaction API. Figures in jobs/s, per library (no worker runs).
 */
import pg from 'pg';

import type { BenchContext } from '../lib/context.js';
import { LIBRARIES, type Producer } from '../lib/libraries.js';
import type { LibraryName } from '../lib/variants.js';

async function enqueueLoop(producer: Producer, client: pg.Client, jobs: number): Promise<void> {
  for (let i = 0; i < jobs; i++) {
    await client.query('BEGIN');
    await producer.enqueueInTx(client, {});
    await client.query('COMMIT');
  }
}

async function connect(url: string, n: number): Promise<pg.Client[]> {
  return await Promise.all(
    Array.from({ length: n }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }),
  );
}

/** Records enqueue.single and enqueue.concurrent (jobs/s). */
export async function enqueueScenario(ctx: BenchContext, library: LibraryName): Promise<void> {
  const { params, results } = ctx;
  await ctx.withFreshDatabase(library, 'enqueue', async (url) => {
    const producer = await LIBRARIES[library].producer(url);
    const clients = await connect(url, params.enqueueClients);
    try {
      // Warm-up (not timed): connections, plan caches, the first pages of each table.
      await Promise.all(clients.map((c) => enqueueLoop(producer, c, 20)));

      const single = clients[0]!;
      let t0 = performance.now();
      await enqueueLoop(producer, single, params.enqueueSingleJobs);
      const singleRate = (params.enqueueSingleJobs / (performance.now() - t0)) * 1000;
      results.record('enqueue.single', library, singleRate);

      t0 = performance.now();
      await Promise.all(clients.map((c) => enqueueLoop(producer, c, params.enqueuePerClient)));
      const jobs = params.enqueuePerClient * clients.length;
      const concurrentRate = (jobs / (performance.now() - t0)) * 1000;
      results.record('enqueue.concurrent', library, concurrentRate);
      ctx.log(
        `  enqueue ${library}: ${Math.round(singleRate)} jobs/s (1 client), ` +
          `${Math.round(concurrentRate)} jobs/s (${clients.length} clients)`,
      );
    } finally {
      await Promise.all(clients.map((c) => c.end()));
      await producer.close();
    }
  });
}
