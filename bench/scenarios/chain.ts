/**
 * Scenario 4: drain chainJobs jobs of chainSteps no-op steps each (steps/s). Stepping runs
 * real multi-step jobs; graphile-worker runs the equivalent chain, each job's handler
 * adding the next job with helpers.addJob.
 */
import { withWorkerChild } from '../lib/child-process.js';
import type { BenchContext } from '../lib/context.js';
import { LIBRARIES } from '../lib/libraries.js';
import type { LibraryName } from '../lib/protocol.js';
import { measuredDrain } from '../lib/worker-run.js';

/** Records chain.* figures. */
export async function chainScenario(ctx: BenchContext, library: LibraryName, rep: number): Promise<void> {
  const { params } = ctx;
  await withWorkerChild(library, (booting) =>
    ctx.withFreshDatabase(library, 'chain', async (url) => {
      const producer = await LIBRARIES[library].producer(url);
      try {
        await producer.bulk(params.chainJobs, params.chainSteps, params.bulkChunk);
      } finally {
        await producer.close();
      }
      await measuredDrain(ctx, await booting, url, 'chain', rep, params.chainJobs, params.chainSteps);
    }),
  );
}
