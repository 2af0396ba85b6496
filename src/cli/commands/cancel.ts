/** `stepping cancel ID [--compensate]`: stop an unfinished job. */
import { type Command, parseJobId } from './command.js';

/** The cancel command. */
export const cancelCommand: Command = {
  name: 'cancel',
  synopsis: 'cancel ID [--compensate]',
  summary: 'cancel an unfinished job; --compensate first undoes the steps already done',
  flags: ['compensate'],
  args: ['ID'],
  prepare: (args, flags) => {
    const jobId = parseJobId(args[0]!);
    const compensate = flags.compensate ?? false;
    return async (ctx) => {
      const status = await ctx.stepping.cancel(jobId, { compensate });
      if (ctx.json) {
        ctx.printJson({ job_id: jobId, status });
        return;
      }
      // A running step cannot be stopped from here: its worker aborts ctx.signal and the job ends after it.
      const detail =
        status === 'running'
          ? ' (cancel requested: the running step is being aborted; the job stops after it)'
          : '';
      ctx.print(`job ${jobId}: ${status}${detail}`);
    };
  },
};
