/**
 * `stepping jobs [--status S] [--queue Q] [--step NAME] [--key K] [--older-than D]
 * [--newer-than D] [--limit N] [--before ID]`: job_overview rows, newest first, filtered;
 * paged by job id (--before the last id listed gives the next page).
 */
import { MAX_KEY_LENGTH, MAX_NAME_LENGTH, MAX_QUEUE_LENGTH } from '../../limits.js';
import { parseDuration, parseInteger, UsageError } from '../args.js';
import { JOB_COLUMNS } from '../overview.js';
import { formatTable } from '../table.js';
import { type Command, parseJobId } from './command.js';

/** Statuses job_overview shows; --status must be one of them. */
export const JOB_STATUSES = [
  'pending',
  'running',
  'compensating',
  'succeeded',
  'failed',
  'compensated',
  'cancelled',
] as const;

/** Jobs listed when --limit is not given. */
export const DEFAULT_JOBS_LIMIT = 50;

/** A text filter within its length limit (the engine's own), else a usage error. */
function textFlag(option: string, value: string | undefined, max: number): string | null {
  if (value === undefined) return null;
  if (value.length === 0 || value.length > max) {
    throw new UsageError(`${option} must be 1 to ${max} characters`);
  }
  return value;
}

/** The jobs command. */
export const jobsCommand: Command = {
  name: 'jobs',
  synopsis: 'jobs [filters] [--limit N] [--before ID]',
  summary:
    `jobs newest first (job_overview); filters --status, --queue, --step, --key, --older-than, ` +
    `--newer-than; default limit ${DEFAULT_JOBS_LIMIT}`,
  flags: ['status', 'limit', 'queue', 'step', 'key', 'olderThan', 'newerThan', 'before'],
  args: [],
  prepare: (_args, flags) => {
    const status = flags.status ?? null;
    if (status !== null && !(JOB_STATUSES as readonly string[]).includes(status)) {
      throw new UsageError(
        `--status must be one of ${JOB_STATUSES.join(', ')}; got ${JSON.stringify(status)}`,
      );
    }
    const limit =
      flags.limit === undefined ? DEFAULT_JOBS_LIMIT : parseInteger('--limit', flags.limit, 1, 100_000);
    const filter = {
      status,
      queue: textFlag('--queue', flags.queue, MAX_QUEUE_LENGTH),
      step: textFlag('--step', flags.step, MAX_NAME_LENGTH),
      key: textFlag('--key', flags.key, MAX_KEY_LENGTH),
      olderThanMs: flags.olderThan === undefined ? null : parseDuration('--older-than', flags.olderThan),
      newerThanMs: flags.newerThan === undefined ? null : parseDuration('--newer-than', flags.newerThan),
      beforeId: flags.before === undefined ? null : parseJobId(flags.before),
    };
    return async (ctx) => {
      // One row more than shown tells whether another page follows.
      const found = await ctx.ops.listJobs(ctx.stepping.pool, filter, limit + 1);
      const rows = found.slice(0, limit);
      if (ctx.json) ctx.printJson(rows);
      else if (rows.length === 0) ctx.print(status ? `no ${status} jobs` : 'no jobs');
      else ctx.print(formatTable(rows, JOB_COLUMNS));
      if (found.length > limit) ctx.note(`more jobs: --before ${String(rows.at(-1)!.job_id)}`);
    };
  },
};
