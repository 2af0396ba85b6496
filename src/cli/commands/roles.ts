/** `stepping roles`: the SQL a DBA runs to create the installation's roles (no database needed). */
import { createRolesSql, ROLE_KINDS, roleName } from '../../db/roles.js';
import type { OfflineCommand } from './command.js';

/** The roles command. */
export const rolesCommand: OfflineCommand = {
  name: 'roles',
  synopsis: 'roles',
  summary: 'print the SQL a DBA runs to create the roles (when migrate may not)',
  flags: [],
  args: [],
  offline: true,
  prepare: () => (ctx) => {
    const sql = createRolesSql(ctx.schema);
    if (ctx.json) {
      ctx.printJson({
        schema: ctx.schema,
        roles: Object.fromEntries(ROLE_KINDS.map((kind) => [kind, roleName(ctx.schema, kind)])),
        sql,
      });
    } else {
      ctx.print(sql);
    }
    return Promise.resolve();
  },
};
