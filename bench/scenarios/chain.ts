/**
 * Five-step jobs: drain chainJobs jobs of chainSteps no-op steps each (steps/s). Stepping
 * runs real multi-step jobs; graphile-worker and pg-boss run the equivalent chain, each
 * job's handler adding the next job (graphile: helpers.addJob per job; pg-boss: one
 * insert() per fetched batch).
 */
import { withWorkerChild } from '../lib/child-process.js';
import type { BenchContext } from '../lib/context.js';
import { LIBRARIES } from '../lib/libraries.js';
import type { Variant } from '../lib/variants.js';
import { measuredDrain } from '../lib/worker-run.js';

/** Records chain.* figures of the variant. */
export async function chainScenario(ctx: BenchContext, variant: Variant, rep: number): Promise<void> {
  const { params } = ctx;
  await withWorkerChild(variant.library, ctx.node.path, (booting) =>
    ctx.withFreshDatabase(
      variant.library,
      'chain',
      async (url) => {
        const producer = await LIBRARIES[variant.library].producer(url);
        try {
          await producer.bulk(params.chainJobs, params.chainSteps, params.bulkChunk);
        } finally {
          await producer.close();
        }
        await measuredDrain(
          ctx,
          await booting,
          variant,
          url,
          'chain',
          rep,
          params.chainJobs,
          params.chainSteps,
        );
      },
      variant,
    ),
  );
}
