/** The Stepping worker as the benchmark runs it: one no-op step, the pool it is given. */
import { createWorker, defineStep } from '../../src/index.js';
import type { StartWorker } from './adapter.js';

/** Starts a Stepping worker with a `noop` step handler. */
export const startSteppingWorker: StartWorker = async (spec, pool, onRun) => {
  const noop = defineStep('noop', (args: { seq?: number } | null, ctx) => {
    onRun(args?.seq, ctx.stepIndex === ctx.stepCount - 1);
  });
  const worker = createWorker({
    pool,
    steps: [noop],
    concurrency: spec.concurrency,
    pollIntervalMs: spec.pollIntervalMs,
  });
  worker.on('error', ({ during, error }) => console.error(`stepping worker ${during}: ${error.message}`));
  await worker.start();
  return { stop: () => worker.stop() };
};
