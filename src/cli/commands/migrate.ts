/** `stepping migrate`: create or upgrade the schema. */
import type { Command } from './command.js';

/** The migrate command. */
export const migrateCommand: Command = {
  name: 'migrate',
  synopsis: 'migrate',
  summary: 'create or upgrade the schema (tables, functions, views); safe to repeat',
  flags: [],
  args: [],
  prepare: () => async (ctx) => {
    const { applied } = await ctx.stepping.migrate();
    if (ctx.json) {
      ctx.printJson({ schema: ctx.stepping.schema, applied });
      return;
    }
    const plural = applied.length === 1 ? '' : 's';
    ctx.print(`migrated schema ${ctx.stepping.schema}: applied ${applied.length} migration${plural}`);
  },
};
