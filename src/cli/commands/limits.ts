/**
 * `stepping limits [list]`, `stepping limits set QUEUE running=N rate=N/PERIOD [per-key]`,
 * `stepping limits clear QUEUE`: fleet-wide queue limits (queue_limits_overview).
 */
import { MAX_INT } from '../../limits.js';
import type { QueueLimit, QueueLimitState } from '../../schedules/schedules.js';
import { parseDuration, parseInteger, UsageError } from '../args.js';
import { formatMs, formatTable } from '../table.js';
import type { Command, CommandContext } from './command.js';

const USAGE =
  'usage: stepping limits [list] | limits set QUEUE [running=N] [rate=N/PERIOD [per-key]] | limits clear QUEUE';

/** `running=5 rate=10/1s per-key` → a QueueLimit; throws UsageError. */
export function parseLimitSpecs(specs: readonly string[]): QueueLimit {
  const limit: QueueLimit = {};
  let perKey = false;
  for (const spec of specs) {
    const [key, value] = spec.split('=', 2) as [string, string | undefined];
    if (spec === 'per-key') {
      perKey = true;
    } else if (key === 'running' && value !== undefined) {
      limit.maxRunning = parseInteger('running', value, 1, MAX_INT);
    } else if (key === 'rate' && value !== undefined && value.includes('/')) {
      const [count, period] = value.split('/', 2) as [string, string];
      const periodMs = parseDuration('rate period', period);
      if (periodMs < 1 || periodMs > MAX_INT) throw new UsageError(`rate period out of range: ${period}`);
      limit.rate = { count: parseInteger('rate count', count, 1, MAX_INT), periodMs };
    } else {
      throw new UsageError(
        `expected running=N, rate=N/PERIOD (e.g. rate=10/1s) or per-key, got ${JSON.stringify(spec)}`,
      );
    }
  }
  if (perKey) {
    if (limit.rate === undefined)
      throw new UsageError('per-key counts a rate for each rate key of the jobs: give rate=N/PERIOD too');
    limit.rate.perKey = true;
  }
  if (limit.maxRunning === undefined && limit.rate === undefined) throw new UsageError(USAGE);
  return limit;
}

/** The limited queues as a table: running / max, starts in the window / rate. */
export function formatLimits(rows: readonly QueueLimitState[]): string {
  return formatTable(rows, [
    { header: 'queue', value: (r) => r.queue },
    {
      header: 'running',
      value: (r) => (r.maxRunning === null ? `${r.running}` : `${r.running}/${r.maxRunning}`),
      right: true,
    },
    {
      header: 'starts in window',
      value: (r) =>
        r.rateCount === null
          ? ''
          : r.ratePerKey
            ? `${r.rateCount} per ${formatMs(r.ratePeriodMs ?? 0)} per key: ${r.keysAtLimit ?? 0} keys at it`
            : `${r.windowStarts}/${r.rateCount} per ${formatMs(r.ratePeriodMs ?? 0)}`,
      right: true,
    },
    { header: 'ready', value: (r) => r.ready, right: true },
    { header: 'at limit', value: (r) => (r.atLimit ? 'yes' : 'no') },
  ]);
}

async function list(ctx: CommandContext): Promise<void> {
  const rows = await ctx.stepping.queueLimits();
  if (ctx.json) ctx.printJson(rows);
  else ctx.print(rows.length === 0 ? 'no queue limits' : formatLimits(rows));
}

/** The limits command. */
export const limitsCommand: Command = {
  name: 'limits',
  synopsis: 'limits [list|set Q running=N rate=N/PERIOD [per-key]|clear Q]',
  summary: 'fleet-wide queue limits: list usage now, set, clear (queue_limits_overview)',
  flags: [],
  args: [],
  variadic: true,
  prepare: (args) => {
    const [verb = 'list', queue, ...specs] = args;
    if (verb === 'list' && args.length <= 1) return list;
    if (verb === 'clear' && queue !== undefined && specs.length === 0) {
      return async (ctx) => {
        const cleared = await ctx.stepping.clearQueueLimit(queue);
        if (ctx.json) ctx.printJson({ queue, cleared });
        else ctx.print(cleared ? `queue ${queue}: limits cleared` : `queue ${queue} had no limits`);
      };
    }
    if (verb === 'set' && queue !== undefined) {
      const limit = parseLimitSpecs(specs);
      return async (ctx) => {
        await ctx.stepping.setQueueLimit(queue, limit);
        await list(ctx);
      };
    }
    throw new UsageError(USAGE);
  },
};
