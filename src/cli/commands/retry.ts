/**
 * `stepping retry ID`: resume a failed job from its failed step. `stepping retry --status
 * failed [--queue Q] [--step NAME]`: every such failed job, in bounded batches
 * (job_retry_many), with a progress line on a terminal.
 */
import { MAX_NAME_LENGTH, MAX_QUEUE_LENGTH } from '../../limits.js';
import { escapeControl } from '../../text.js';
import { UsageError } from '../args.js';
import { progressBar } from '../progress.js';
import { type Command, type CommandContext, type CommandFlags, parseJobId } from './command.js';

/** Jobs one job_retry_many call retries at most, so no call holds locks for long. */
const RETRY_BATCH = 500;

function textFlag(option: string, value: string | undefined, max: number): string | null {
  if (value === undefined) return null;
  if (value.length === 0 || value.length > max)
    throw new UsageError(`${option} must be 1 to ${max} characters`);
  return value;
}

/** Bulk retry: checked flags, then the work. */
function prepareMany(flags: CommandFlags) {
  if (flags.status !== 'failed') {
    throw new UsageError('retry needs a job ID, or --status failed to retry failed jobs in bulk');
  }
  const filter = {
    queue: textFlag('--queue', flags.queue, MAX_QUEUE_LENGTH),
    stepName: textFlag('--step', flags.step, MAX_NAME_LENGTH),
  };
  return async (ctx: CommandContext) => {
    const total = await ctx.ops.countFailed(ctx.stepping.pool, filter);
    let retried = 0;
    let seen = '0';
    for (;;) {
      const batch = await ctx.ops.retryMany(ctx.stepping.pool, filter, RETRY_BATCH, seen);
      retried += batch.retried;
      if (batch.lastId === null) break;
      seen = batch.lastId;
      ctx.terminal.progress(`retrying ${progressBar(retried, total)} ${retried}/${total} jobs`);
    }
    ctx.terminal.progress('');
    if (ctx.json) {
      ctx.printJson({ retried });
      return;
    }
    const where = [
      filter.queue === null ? null : `queue ${escapeControl(filter.queue)}`,
      filter.stepName === null ? null : `step ${escapeControl(filter.stepName)}`,
    ].filter((x) => x !== null);
    ctx.print(
      `retried ${retried} failed job${retried === 1 ? '' : 's'}${where.length ? ` (${where.join(', ')})` : ''}`,
    );
  };
}

/** The retry command. */
export const retryCommand: Command = {
  name: 'retry',
  synopsis: 'retry ID | --status failed',
  summary:
    'resume a failed job (or, with --status failed [--queue Q] [--step NAME], many) from the failed step',
  flags: ['status', 'queue', 'step'],
  args: ['ID'],
  argsOptional: true,
  prepare: (args, flags) => {
    if (args.length === 0) return prepareMany(flags);
    if (flags.status !== undefined || flags.queue !== undefined || flags.step !== undefined) {
      throw new UsageError('retry takes a job ID or --status failed [--queue Q] [--step NAME], not both');
    }
    const jobId = parseJobId(args[0]!);
    return async (ctx) => {
      await ctx.stepping.retry(jobId);
      const job = await ctx.stepping.getJob(jobId);
      if (ctx.json) {
        ctx.printJson({ job_id: jobId, status: job?.status ?? null });
        return;
      }
      const at = job ? ` from step #${job.currentStep} ${escapeControl(job.currentStepName)}` : '';
      ctx.print(`job ${jobId}: ${job?.status ?? 'retried'}${at}`);
    };
  },
};
