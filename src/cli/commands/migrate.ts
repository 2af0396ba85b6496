/** `stepping migrate`: create or upgrade the schema. */
import type { Command } from './command.js';

/** The migrate command. */
export const migrateCommand: Command = {
  name: 'migrate',
  synopsis: 'migrate',
  summary: 'create or upgrade the schema (tables, functions, views, roles); safe to repeat',
  flags: [],
  args: [],
  prepare: () => async (ctx) => {
    const { applied, missingRoles } = await ctx.stepping.migrate();
    if (missingRoles.length > 0) {
      // On stderr, so --json output stays one document.
      ctx.note(
        `note: roles ${missingRoles.join(', ')} do not exist and this role may not create them, so only ` +
          `the schema's owner can use Stepping yet. Have a DBA run the SQL printed by ` +
          `\`stepping roles --schema ${ctx.schema}\`, then run \`stepping migrate\` again.`,
      );
    }
    if (ctx.json) {
      ctx.printJson({ schema: ctx.stepping.schema, applied, missingRoles });
      return;
    }
    const plural = applied.length === 1 ? '' : 's';
    ctx.print(`migrated schema ${ctx.stepping.schema}: applied ${applied.length} migration${plural}`);
  },
};
