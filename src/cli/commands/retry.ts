/** `stepping retry ID`: resume a failed job from its failed step. */
import { escapeControl } from '../../text.js';
import { parseJobId, type Command } from './command.js';

/** The retry command. */
export const retryCommand: Command = {
  name: 'retry',
  synopsis: 'retry ID',
  summary: 'resume a failed job from the step that failed (its attempts reset)',
  flags: [],
  args: ['ID'],
  prepare: (args) => {
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
