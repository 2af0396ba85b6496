/** The Stepping worker as the benchmark runs it: one no-op step, its own pool from the connection string. */
import { createWorker, defineStep } from '../../src/index.js';
import type { WorkerStarter } from './adapter.js';

/** Starts a Stepping worker with a `noop` step handler and the variant's options. */
export const steppingStarter: WorkerStarter = {
  async start(spec, onRun) {
    if (spec.variant.library !== 'stepping') throw new Error('not a Stepping variant');
    const noop = defineStep('noop', (args: { seq?: number } | null, ctx) => {
      onRun(args?.seq, ctx.stepIndex === ctx.stepCount - 1);
    });
    const worker = createWorker({
      connectionString: spec.connectionString,
      steps: [noop],
      ...spec.variant.options,
    });
    worker.on('error', ({ during, error }) => console.error(`stepping worker ${during}: ${error.message}`));
    await worker.start();
    return { stop: () => worker.stop() };
  },
};
