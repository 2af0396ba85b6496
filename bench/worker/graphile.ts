/**
 * graphile-worker as the benchmark runs it: a `noop` task; a job with `left` > 0 adds the
 * next job of its chain (helpers.addJob), the graphile equivalent of a multi-step job.
 * Batching on: localQueue, completeJobBatchDelay and failJobBatchDelay from the params.
 */
import { Logger, run, type Task } from 'graphile-worker';
import type { StartWorker } from './adapter.js';

const silent = new Logger(() => () => {});

/** Starts a graphile-worker runner with a `noop` task. */
export const startGraphileWorker: StartWorker = async (spec, pool, onRun) => {
  const noop: Task = async (payload, helpers) => {
    const p = (payload ?? {}) as { seq?: number; left?: number };
    const left = p.left ?? 0;
    onRun(p.seq, left === 0);
    if (left > 0) await helpers.addJob('noop', { left: left - 1 });
  };
  const runner = await run({
    pgPool: pool,
    concurrency: spec.concurrency,
    pollInterval: spec.pollIntervalMs,
    noHandleSignals: true,
    logger: silent,
    taskList: { noop },
    parsedCronItems: [],
    preset: {
      worker: {
        localQueue: { size: spec.graphile.localQueueSize },
        completeJobBatchDelay: spec.graphile.completeJobBatchDelay,
        failJobBatchDelay: spec.graphile.failJobBatchDelay,
      },
    },
  });
  return { stop: () => runner.stop() };
};
