/** `stepping jobs [--status S] [--limit N]`: recent job_overview rows. */
import { parseInteger, UsageError } from '../args.js';
import { JOB_COLUMNS } from '../overview.js';
import { formatTable } from '../table.js';
import type { Command } from './command.js';

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

/** The jobs command. */
export const jobsCommand: Command = {
  name: 'jobs',
  synopsis: 'jobs [--status S] [--limit N]',
  summary: `recent jobs, newest first (job_overview); default limit ${DEFAULT_JOBS_LIMIT}`,
  flags: ['status', 'limit'],
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
    return async (ctx) => {
      const rows = await ctx.engine.listJobs(ctx.stepping.pool, status, limit);
      if (ctx.json) ctx.printJson(rows);
      else if (rows.length === 0) ctx.print(status ? `no ${status} jobs` : 'no jobs');
      else ctx.print(formatTable(rows, JOB_COLUMNS));
    };
  },
};
