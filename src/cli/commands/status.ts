/** `stepping status`: the queue_stats view. */
import { formatMs, formatTable, intervalMs } from '../table.js';
import type { Command } from './command.js';
import { statusSections } from './schedules.js';

/** The status command. */
export const statusCommand: Command = {
  name: 'status',
  synopsis: 'status',
  summary: 'jobs per queue and status, runnable now, scheduled, oldest wait (queue_stats)',
  flags: [],
  args: [],
  prepare: () => async (ctx) => {
    const rows = (await ctx.engine.queueStats(ctx.stepping.pool)).map((r) => ({
      queue: String(r.queue),
      status: String(r.status),
      // Counts arrive as bigint text; no queue holds 2^53 jobs.
      jobs: Number(r.jobs),
      runnable: Number(r.runnable),
      scheduled: Number(r.scheduled),
      oldest_runnable_age_ms: intervalMs(r.oldest_runnable_age),
    }));
    if (ctx.json) {
      ctx.printJson(rows);
      return;
    }
    const extra = await statusSections(ctx);
    if (rows.length === 0) {
      ctx.print(`no jobs in schema ${ctx.stepping.schema}`);
      for (const section of extra) ctx.print(section);
      return;
    }
    ctx.print(
      formatTable(rows, [
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
    for (const section of extra) ctx.print(section);
  },
};
