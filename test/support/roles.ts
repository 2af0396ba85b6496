/**
 * Login roles for tests of the engine's grants. Roles are cluster-wide, so each is named
 * uniquely for this run (TEST_RUN_ID plus a random suffix), gets a password (the embedded
 * server authenticates by password; the machine's server trusts and ignores it), and is
 * dropped after the file, with everything it owns or was granted in the databases it used.
 */
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';

import pg from 'pg';

import { withDatabase } from '../../scripts/embedded-db.js';
import { serverUrl } from './db.js';
import { TEST_RUN_ID } from './names.js';

/** A login role of this test file. */
export interface LoginRole {
  name: string;
  /** Connection string of `database` (default: the one the roles were made for) as this role. */
  url(database?: string): string;
  /** A connected client as this role (closed after the file). */
  client(database?: string): Promise<pg.Client>;
}

/** Makes login roles for the database at `dbUrl`; every one is dropped after the file. */
export function loginRoles(dbUrl: string): {
  create(label: string, options?: { memberOf?: string[]; attributes?: string }): Promise<LoginRole>;
  /** Another database a role was used in: what it owns or was granted there is dropped too. */
  usedIn(database: string): void;
  /** Drops a role created by this helper now (its connections must be closed). */
  drop(role: LoginRole): Promise<void>;
} {
  const roles = new Map<string, LoginRole>();
  const clients: pg.Client[] = [];
  const databases = new Set<string>([new URL(dbUrl).pathname.slice(1)]);

  const dropRoles = async (names: string[]) => {
    for (const database of databases) {
      const admin = new pg.Client(withDatabase(serverUrl(), database));
      try {
        await admin.connect();
      } catch (error) {
        if ((error as { code?: string }).code === '3D000') continue; // that database is gone already
        throw error;
      }
      try {
        for (const name of names) {
          await retried(`DROP OWNED BY ${name} in ${database}`, async () => {
            const exists = await admin.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [name]);
            if (exists.rows.length > 0) await admin.query(`DROP OWNED BY "${name}" CASCADE`);
          });
        }
      } finally {
        await admin.end();
      }
    }
    const admin = new pg.Client(withDatabase(serverUrl(), 'postgres'));
    await admin.connect();
    try {
      for (const name of names) {
        await retried(`DROP ROLE ${name}`, () => admin.query(`DROP ROLE IF EXISTS "${name}"`));
      }
    } finally {
      await admin.end();
    }
  };

  after(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await dropRoles([...roles.keys()]);
  });

  return {
    async create(label, options = {}) {
      const name = `st_${TEST_RUN_ID}_${label}_${randomBytes(2).toString('hex')}`.toLowerCase();
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad role label ${label}`);
      const password = randomBytes(12).toString('hex');
      const admin = new pg.Client(dbUrl);
      await admin.connect();
      try {
        const memberOf = (options.memberOf ?? []).map((r) => `"${r}"`).join(', ');
        await admin.query(
          `CREATE ROLE "${name}" LOGIN PASSWORD '${password}' ${options.attributes ?? ''}` +
            (memberOf ? ` IN ROLE ${memberOf}` : ''),
        );
      } finally {
        await admin.end();
      }
      const role: LoginRole = {
        name,
        url(database) {
          const u = new URL(database ? withDatabase(dbUrl, database) : dbUrl);
          u.username = name;
          u.password = password;
          return u.toString();
        },
        async client(database) {
          const c = new pg.Client(role.url(database));
          await c.connect();
          clients.push(c);
          return c;
        },
      };
      roles.set(name, role);
      return role;
    },
    usedIn(database) {
      databases.add(database);
    },
    async drop(role) {
      await dropRoles([role.name]);
      roles.delete(role.name);
    },
  };
}

/**
 * Runs a catalog change again after a failure (up to 5 times): the server is shared with
 * other test runs, whose catalog updates can collide with ours ("tuple concurrently
 * updated"). The last failure is thrown with `what` in its message.
 */
async function retried(what: string, work: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await work();
      return;
    } catch (error) {
      if (attempt >= 5) throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

/** Runs `sql` on `db` (outside a transaction) and returns the SQLSTATE it failed with, or 'ok'. */
export async function sqlState(db: pg.ClientBase, sql: string, values: unknown[] = []): Promise<string> {
  try {
    await db.query(sql, values);
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? `not a database error: ${(error as Error).message}`;
  }
}
