/** `stepping prune [--older-than D]`: delete old finished jobs, in batches, with a progress line on a terminal. */
import { DEFAULT_PRUNE_AGE_MS } from '../../defaults.js';
import { parseDuration } from '../args.js';
import { formatMs } from '../table.js';
import type { Command } from './command.js';

/** Jobs deleted per call, so a large prune never holds locks for long. */
const PRUNE_BATCH = 10_000;

/** The prune command. */
export const pruneCommand: Command = {
  name: 'prune',
  synopsis: 'prune [--older-than D]',
  summary:
    'delete succeeded, compensated and cancelled jobs finished more than D ago (30m, 12h, 7d; default 7d)',
  flags: ['olderThan'],
  args: [],
  prepare: (_args, flags) => {
    // Without the flag the library's default age applies.
    const olderThanMs =
      flags.olderThan === undefined ? undefined : parseDuration('--older-than', flags.olderThan);
    return async (ctx) => {
      let total = 0;
      for (;;) {
        const n = await ctx.stepping.prune({
          limit: PRUNE_BATCH,
          ...(olderThanMs === undefined ? {} : { olderThanMs }),
        });
        total += n;
        ctx.terminal.progress(`pruning: ${total} jobs deleted so far`);
        if (n < PRUNE_BATCH) break;
      }
      ctx.terminal.progress('');
      if (ctx.json) {
        ctx.printJson({ deleted: total });
        return;
      }
      const age = formatMs(olderThanMs ?? DEFAULT_PRUNE_AGE_MS);
      ctx.print(`pruned ${total} job${total === 1 ? '' : 's'} finished more than ${age} ago`);
    };
  },
};
