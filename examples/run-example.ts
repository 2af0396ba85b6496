/** Runs an example from the command line on DATABASE_URL or a throw-away embedded PostgreSQL. */
import { randomBytes } from 'node:crypto';

import pg from 'pg';

import { startDatabaseServer, withDatabase } from '../scripts/embedded-db.js';

/** Creates a scratch database, runs `main` on it, drops it, and stops an embedded server. */
export async function runExample(main: (connectionString: string) => Promise<unknown>): Promise<void> {
  const server = await startDatabaseServer();
  const name = `stepping_example_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client(withDatabase(server.url, 'postgres'));
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
    console.log(JSON.stringify(await main(withDatabase(server.url, name)), null, 2));
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
    await server.stop();
  }
}

/** True when the module at `url` is the program being run. */
export function isMain(url: string): boolean {
  return (
    process.argv[1] !== undefined && url.endsWith(process.argv[1].replace(/^.*\/examples\//, '/examples/'))
  );
}
