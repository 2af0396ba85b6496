/** `stepping job ID`: one job (job_overview, with its output) and its steps (step_overview, with their results). */
import { JobNotFoundError } from '../../errors.js';
import { jobRecord, STEP_COLUMNS } from '../overview.js';
import { formatRecord, formatTable } from '../table.js';
import { type Command, parseJobId } from './command.js';

/** The job command. */
export const jobCommand: Command = {
  name: 'job',
  synopsis: 'job ID',
  summary: 'one job, its output and its steps with their results (job_overview, step_overview)',
  flags: [],
  args: ['ID'],
  prepare: (args) => {
    const jobId = parseJobId(args[0]!);
    return async (ctx) => {
      const job = await ctx.engine.jobOverview(ctx.stepping.pool, jobId);
      if (!job) throw new JobNotFoundError(`stepping: no job ${jobId}`);
      const steps = await ctx.engine.stepOverview(ctx.stepping.pool, jobId);
      if (ctx.json) {
        ctx.printJson({ job, steps });
        return;
      }
      ctx.print(formatRecord(jobRecord(job)));
      ctx.print('');
      ctx.print(formatTable(steps, STEP_COLUMNS));
    };
  },
};
