/**
 * graphile-worker as the benchmark runs it: a `noop` task; a job with `left` > 0 adds the
 * next job of its chain (helpers.addJob), the graphile equivalent of a multi-step job.
 * It makes its own pool from the connection string (maxPoolSize), as a user's would.
 */
import { Logger, run, type Task } from 'graphile-worker';

import type { WorkerStarter } from './adapter.js';

const silent = new Logger(() => () => {});

/** Starts a graphile-worker runner with a `noop` task and the variant's options. */
export const graphileStarter: WorkerStarter = {
  async start(spec, onRun) {
    if (spec.variant.library !== 'graphile') throw new Error('not a graphile-worker variant');
    const o = spec.variant.options;
    const noop: Task = async (payload, helpers) => {
      const p = (payload ?? {}) as { seq?: number; left?: number };
      const left = p.left ?? 0;
      onRun(p.seq, left === 0);
      if (left > 0) await helpers.addJob('noop', { left: left - 1 });
    };
    const runner = await run({
      connectionString: spec.connectionString,
      concurrency: o.concurrency,
      ...(o.maxPoolSize !== undefined ? { maxPoolSize: o.maxPoolSize } : {}),
      noHandleSignals: true,
      logger: silent,
      taskList: { noop },
      parsedCronItems: [],
      preset: {
        worker: {
          ...(o.localQueueSize !== undefined ? { localQueue: { size: o.localQueueSize } } : {}),
          ...(o.completeJobBatchDelay !== undefined
            ? { completeJobBatchDelay: o.completeJobBatchDelay }
            : {}),
          ...(o.failJobBatchDelay !== undefined ? { failJobBatchDelay: o.failJobBatchDelay } : {}),
        },
      },
    });
    return { stop: () => runner.stop() };
  },
};
