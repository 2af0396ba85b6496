/**
 * `stepping schedules [list]`, `stepping schedules pause|resume|remove NAME`: recurring
 * schedules (schedule_overview). Schedules are created in code (`stepping.schedule`) or by
 * workers (`schedules` option, `stepping-worker --schedules`).
 */
import type { ScheduleState } from '../../schedules/schedules.js';
import { UsageError } from '../args.js';
import { formatTable } from '../table.js';
import type { Command, CommandContext } from './command.js';
import { formatLimits } from './limits.js';

/** The schedules as a table. */
export function formatSchedules(rows: readonly ScheduleState[]): string {
  return formatTable(rows, [
    { header: 'schedule', value: (r) => r.name },
    { header: 'cron', value: (r) => r.cron },
    { header: 'zone', value: (r) => r.timeZone },
    { header: 'queue', value: (r) => r.queue },
    { header: 'state', value: (r) => (r.paused ? 'paused' : 'active') },
    { header: 'next run', value: (r) => r.nextRunAt?.toISOString() ?? null },
    { header: 'last run', value: (r) => r.lastRunAt?.toISOString() ?? null },
    {
      header: 'last job',
      value: (r) => (r.lastJobId === null ? null : `${r.lastJobId} ${r.lastJobStatus ?? ''}`),
    },
  ]);
}

async function list(ctx: CommandContext): Promise<void> {
  const rows = await ctx.stepping.listSchedules();
  if (ctx.json) ctx.printJson(rows);
  else ctx.print(rows.length === 0 ? 'no schedules' : formatSchedules(rows));
}

const ACTIONS = {
  pause: (ctx: CommandContext, name: string) => ctx.stepping.pauseSchedule(name),
  resume: (ctx: CommandContext, name: string) => ctx.stepping.resumeSchedule(name),
  remove: (ctx: CommandContext, name: string) => ctx.stepping.unschedule(name),
} as const;

/** The schedules command. */
export const schedulesCommand: Command = {
  name: 'schedules',
  synopsis: 'schedules [list|pause N|resume N|remove N]',
  summary: 'recurring schedules: next and last run, last job; pause, resume, remove (schedule_overview)',
  flags: [],
  args: [],
  variadic: true,
  prepare: (args) => {
    const [verb = 'list', name, ...rest] = args;
    if (verb === 'list' && args.length <= 1) return list;
    if (verb in ACTIONS && name !== undefined && rest.length === 0) {
      const action = ACTIONS[verb as keyof typeof ACTIONS];
      return async (ctx) => {
        const found = await action(ctx, name);
        if (!found) throw new UsageError(`no schedule named ${JSON.stringify(name)}`);
        if (ctx.json) ctx.printJson({ schedule: name, done: verb });
        else ctx.print(`schedule ${name}: ${verb === 'remove' ? 'removed' : `${verb}d`}`);
      };
    }
    throw new UsageError('usage: stepping schedules [list] | schedules pause|resume|remove NAME');
  },
};

/** For `stepping status`: the schedules and limited queues, as extra text sections (nothing when there are none). */
export async function statusSections(ctx: CommandContext): Promise<string[]> {
  const [schedules, limits] = await Promise.all([ctx.stepping.listSchedules(), ctx.stepping.queueLimits()]);
  return [
    ...(schedules.length > 0 ? [`\nschedules\n${formatSchedules(schedules)}`] : []),
    ...(limits.length > 0 ? [`\nqueue limits\n${formatLimits(limits)}`] : []),
  ];
}

/** For `stepping status --json`: the schedules and queue limits, as the driver returns them. */
export async function statusJsonSections(
  ctx: CommandContext,
): Promise<{ schedules: unknown[]; queue_limits: unknown[] }> {
  const [schedules, limits] = await Promise.all([ctx.stepping.listSchedules(), ctx.stepping.queueLimits()]);
  return { schedules, queue_limits: limits };
}
