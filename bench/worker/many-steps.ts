/** The steps module of the many-databases scenario's `stepping-worker --steps`: one no-op step. */
import { defineStep } from '../../src/index.js';

/** The step every tenant's jobs run. */
export const noop = defineStep('noop', async () => {});
