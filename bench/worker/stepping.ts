/** The Stepping worker as the benchmark runs it: one no-op step, its own pool from the connection string. */
import { pathToFileURL } from 'node:url';

import type * as Stepping from '../../src/index.js';
import { BUILT_ENTRY } from '../lib/built-package.js';
import type { WorkerStarter } from './adapter.js';

// The compiled package, as a user runs it (see bench/lib/built-package.ts); its types are the sources'.
const { createWorker, defineStep } = (await import(pathToFileURL(BUILT_ENTRY).href)) as typeof Stepping;

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
