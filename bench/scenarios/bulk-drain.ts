/**
 * The one-step drain on one fresh database: bulk-enqueue `jobs` one-step jobs through the
 * library's batch API (jobs/s), then drain them with one worker child of the variant
 * (jobs/s from worker start to the database showing none left, or to the cap). The sweep
 * runs the same drain under the key `sweep`.
 */
import { withWorkerChild } from '../lib/child-process.js';
import type { BenchContext } from '../lib/context.js';
import { LIBRARIES } from '../lib/libraries.js';
import type { Variant } from '../lib/variants.js';
import { measuredDrain } from '../lib/worker-run.js';

/** Records bulk (jobs/s, under the library's name) and `key`.* figures of the variant. */
export async function bulkDrainScenario(
  ctx: BenchContext,
  variant: Variant,
  rep: number,
  key = 'drain',
  jobs = ctx.params.bulkJobs,
): Promise<void> {
  const { params, results } = ctx;
  await withWorkerChild(variant.library, ctx.node.path, (booting) =>
    ctx.withFreshDatabase(
      variant.library,
      key,
      async (url) => {
        // The child loads while the database is made and filled; that is not timed.
        const producer = await LIBRARIES[variant.library].producer(url);
        try {
          const ms = await producer.bulk(jobs, 1, params.bulkChunk);
          const rate = (jobs / ms) * 1000;
          if (key === 'drain') results.record('bulk', variant.library, rate);
        } finally {
          await producer.close();
        }
        await measuredDrain(ctx, await booting, variant, url, key, rep, jobs, 1);
      },
      variant,
    ),
  );
}
