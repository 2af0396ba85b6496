/**
 * Scenarios 2 and 3 on one fresh database: bulk-enqueue bulkJobs one-step jobs through
 * the library's batch API (jobs/s), then drain them with one worker child at the shared
 * concurrency, batching on (jobs/s from worker start to the database showing none left).
 */
import { withWorkerChild } from '../lib/child-process.js';
import type { BenchContext } from '../lib/context.js';
import { queryOnce } from '../lib/db.js';
import { LIBRARIES } from '../lib/libraries.js';
import type { LibraryName } from '../lib/protocol.js';
import { measuredDrain } from '../lib/worker-run.js';

/** Records bulk (jobs/s) and drain.* figures. */
export async function bulkDrainScenario(ctx: BenchContext, library: LibraryName, rep: number): Promise<void> {
  const { params, results } = ctx;
  await withWorkerChild(library, (booting) =>
    ctx.withFreshDatabase(library, 'drain', async (url) => {
      // The child loads while the database is made, but not during the timed bulk enqueue.
      const child = await booting;
      const producer = await LIBRARIES[library].producer(url);
      try {
        await queryOnce(ctx.factory.serverUrl, 'CHECKPOINT');
        const ms = await producer.bulk(params.bulkJobs, 1, params.bulkChunk);
        const rate = (params.bulkJobs / ms) * 1000;
        results.record('bulk', library, rate);
        ctx.log(`  bulk ${library}: ${Math.round(rate)} jobs/s`);
      } finally {
        await producer.close();
      }
      await measuredDrain(ctx, child, url, 'drain', rep, params.bulkJobs, 1);
    }),
  );
}
