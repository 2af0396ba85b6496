/**
 * `stepping status [--watch [--interval D]]`: jobs per queue and status (queue_stats),
 * the live workers (worker_overview) and the step names no live worker can run
 * (unrunnable_steps). --watch refreshes until SIGINT, clearing the screen on a terminal.
 */
import type { UnrunnableStep, WorkerStatus } from '../../db/ops.js';
import { MAX_TIMER_DURATION, parseDuration, UsageError } from '../args.js';
import { formatMs, formatTable, intervalMs } from '../table.js';
import type { Command, CommandContext } from './command.js';
import { statusJsonSections, statusSections } from './schedules.js';

/** Time between --watch refreshes without --interval. */
export const DEFAULT_WATCH_INTERVAL_MS = 2000;
/** Step names shown per worker in the text table (--json has them all). */
const NAMES_SHOWN = 3;

interface QueueRow {
  queue: string;
  status: string;
  jobs: number;
  runnable: number;
  scheduled: number;
  oldest_runnable_age_ms: number | null;
}

/** What one status read finds; workers and unrunnable are null before the worker views existed. */
interface Status {
  queues: QueueRow[];
  workers: WorkerStatus[] | null;
  unrunnable: UnrunnableStep[] | null;
}

async function readStatus(ctx: CommandContext): Promise<Status> {
  const pool = ctx.stepping.pool;
  const queues = (await ctx.engine.queueStats(pool)).map((r) => ({
    queue: String(r.queue),
    status: String(r.status),
    // Counts arrive as bigint text; no queue holds 2^53 jobs.
    jobs: Number(r.jobs),
    runnable: Number(r.runnable),
    scheduled: Number(r.scheduled),
    oldest_runnable_age_ms: intervalMs(r.oldest_runnable_age),
  }));
  if (!(await ctx.ops.hasWorkerViews(pool))) return { queues, workers: null, unrunnable: null };
  const [workers, unrunnable] = await Promise.all([
    ctx.ops.workerStatus(pool),
    ctx.ops.unrunnableSteps(pool),
  ]);
  return { queues, workers, unrunnable };
}

function names(list: readonly string[] | null): string {
  if (list === null) return '(every queue)';
  const shown = list.slice(0, NAMES_SHOWN).join(', ');
  return list.length > NAMES_SHOWN ? `${shown} +${list.length - NAMES_SHOWN}` : shown;
}

function statusText(s: Status, schema: string): string {
  const parts: string[] = [];
  parts.push(
    s.queues.length === 0
      ? `no jobs in schema ${schema}`
      : formatTable(s.queues, [
          { header: 'queue', value: (r) => r.queue },
          { header: 'status', value: (r) => r.status },
          { header: 'jobs', value: (r) => r.jobs, right: true },
          { header: 'runnable', value: (r) => r.runnable, right: true },
          { header: 'scheduled', value: (r) => r.scheduled, right: true },
          {
            header: 'oldest runnable',
            value: (r) => (r.oldest_runnable_age_ms === null ? null : formatMs(r.oldest_runnable_age_ms)),
            right: true,
          },
        ]),
  );
  if (s.workers === null || s.unrunnable === null) {
    parts.push('live workers: not available (run stepping migrate to a newer version)');
    return parts.join('\n');
  }
  parts.push('');
  parts.push(
    s.workers.length === 0
      ? 'live workers: none'
      : `live workers: ${s.workers.length}\n${formatTable(s.workers, [
          { header: 'worker', value: (w) => w.workerId },
          { header: 'host', value: (w) => w.host },
          { header: 'pid', value: (w) => w.pid, right: true },
          { header: 'queues', value: (w) => names(w.queues), maxWidth: 40 },
          { header: 'steps', value: (w) => names(w.stepNames), maxWidth: 60 },
          { header: 'running', value: (w) => w.running, right: true },
          { header: 'concurrency', value: (w) => w.concurrency, right: true },
          { header: 'heartbeat', value: (w) => `${formatMs(w.heartbeatAgeMs)} ago`, right: true },
        ])}`,
  );
  parts.push('');
  parts.push(
    s.unrunnable.length === 0
      ? 'step names no live worker can run: none'
      : `step names no live worker can run:\n${formatTable(s.unrunnable, [
          { header: 'step', value: (u) => u.stepName },
          { header: 'queue', value: (u) => u.queue },
          { header: 'jobs', value: (u) => u.jobs, right: true },
          { header: 'oldest wait', value: (u) => formatMs(u.oldestWaitMs), right: true },
        ])}`,
  );
  return parts.join('\n');
}

function statusJson(s: Status) {
  return {
    queues: s.queues,
    workers:
      s.workers?.map((w) => ({
        worker_id: w.workerId,
        host: w.host,
        pid: w.pid,
        queues: w.queues,
        step_names: w.stepNames,
        concurrency: w.concurrency,
        running: w.running,
        started_at: w.startedAt,
        heartbeat_at: w.heartbeatAt,
        heartbeat_age_ms: w.heartbeatAgeMs,
      })) ?? null,
    unrunnable:
      s.unrunnable?.map((u) => ({
        step_name: u.stepName,
        queue: u.queue,
        jobs: u.jobs,
        oldest_wait_ms: u.oldestWaitMs,
      })) ?? null,
  };
}

/** The status command. */
export const statusCommand: Command = {
  name: 'status',
  synopsis: 'status [--watch [--interval D]]',
  summary: 'jobs per queue and status (queue_stats), live workers, step names no live worker can run',
  flags: ['watch', 'interval'],
  args: [],
  prepare: (_args, flags) => {
    if (flags.interval !== undefined && !flags.watch) throw new UsageError('--interval needs --watch');
    const intervalMs =
      flags.interval === undefined
        ? DEFAULT_WATCH_INTERVAL_MS
        : parseDuration('--interval', flags.interval, 'ms', MAX_TIMER_DURATION);
    if (intervalMs < 100) throw new UsageError('--interval must be at least 100ms');
    return async (ctx) => {
      const show = async () => {
        const status = await readStatus(ctx);
        if (ctx.json) ctx.printJson({ ...statusJson(status), ...(await statusJsonSections(ctx)) });
        else {
          ctx.print(statusText(status, ctx.stepping.schema));
          for (const section of await statusSections(ctx)) ctx.print(section);
        }
      };
      if (!flags.watch) return await show();
      for (;;) {
        const status = await readStatus(ctx);
        // On a terminal the screen is redrawn; elsewhere (a pipe, a log) refreshes follow each other.
        const cleared = ctx.terminal.clearScreen();
        const at = new Date().toISOString();
        if (!ctx.json) {
          ctx.print(
            cleared
              ? `stepping status at ${at}, every ${formatMs(intervalMs)} (Ctrl-C stops)\n`
              : `--- ${at}`,
          );
        }
        if (ctx.json) ctx.printJson({ ...statusJson(status), ...(await statusJsonSections(ctx)) });
        else {
          ctx.print(statusText(status, ctx.stepping.schema));
          for (const section of await statusSections(ctx)) ctx.print(section);
        }
        if (await ctx.terminal.pause(intervalMs)) return;
      }
    };
  },
};
