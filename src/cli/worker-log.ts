/**
 * One log line per worker event, for the `stepping-worker` bin. Queue and step names,
 * database ids and errors are data: each line is escaped whole (control characters,
 * line breaks included), so a value can neither drive the terminal nor forge a line.
 */
import { FINAL_STATUSES } from '../job-status.js';
import { escapeControl } from '../text.js';
import type { UnitEvent } from '../worker/events.js';
import type { Worker } from '../worker/worker.js';
import { describeError } from './args.js';

/** Where log lines go: `info` for events (silenced by --quiet), `error` for failures. */
export interface LogSinks {
  info: (line: string) => void;
  error: (line: string) => void;
}

/**
 * Subscribes to the worker's events and writes one timestamped line for each. With
 * `manyDatabases`, job lines name their database (`db=`), since job ids repeat across them.
 */
export function attachWorkerLog(worker: Worker, manyDatabases: boolean, sinks: LogSinks): void {
  const unit = (e: UnitEvent) => {
    const what = e.phase === 'compensate' ? 'compensation' : 'step';
    const db = manyDatabases ? ` db=${e.database}` : '';
    return `job=${e.jobId} ${what}=${e.stepIndex} name=${e.name} attempt=${e.attempt} queue=${e.queue}${db}`;
  };
  const stamp = (text: string) => `${new Date().toISOString()} ${escapeControl(text)}`;
  const info = (text: string) => sinks.info(stamp(text));
  worker.on('step:started', (e) => info(`step started    ${unit(e)}`));
  worker.on('step:succeeded', (e) => info(`step succeeded  ${unit(e)} in ${e.durationMs}ms`));
  worker.on('step:failed', (e) => {
    const next = e.outcome === 'retry' && e.nextRunAt ? ` at ${e.nextRunAt.toISOString()}` : '';
    info(`step failed     ${unit(e)} in ${e.durationMs}ms: ${describeError(e.error)} -> ${e.outcome}${next}`);
  });
  worker.on('step:retry-scheduled', (e) => {
    // Failures already said when they retry; only "not yet" needs its own line.
    if (e.notYet) info(`step not yet    ${unit(e)} -> again at ${e.nextRunAt?.toISOString() ?? 'soon'}`);
  });
  worker.on('step:lease-lost', (e) => info(`step lease lost ${unit(e)}: its result was discarded`));
  for (const status of FINAL_STATUSES) {
    worker.on(`job:${status}`, (e) =>
      info(`job ${status.padEnd(11)} job=${e.jobId}${manyDatabases ? ` db=${e.database}` : ''}`),
    );
  }
  worker.on('database:up', (e) =>
    info(`database up     db=${e.database}${e.listening ? '' : ' (no listener: polling)'}`),
  );
  worker.on('database:removed', (e) => info(`database gone   db=${e.database}`));
  // Only runs that changed something: every worker calls maintenance every 30 s.
  worker.on('maintenance', (e) => {
    if (e.expired + e.pruned + e.workersRemoved === 0) return;
    info(
      `maintenance     expired=${e.expired} pruned=${e.pruned} workers_removed=${e.workersRemoved} ` +
        `in ${e.durationMs}ms${manyDatabases ? ` db=${e.database}` : ''}`,
    );
  });
  worker.on('database:down', (e) =>
    sinks.error(
      stamp(`database down db=${e.database}: ${describeError(e.error)}; retry in ${e.retryInMs}ms`),
    ),
  );
  worker.on('error', (e) =>
    sinks.error(stamp(`error during ${e.during} on ${e.database}: ${describeError(e.error)}`)),
  );
}
