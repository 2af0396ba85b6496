/**
 * `npm test`: starts a throw-away PostgreSQL (or uses DATABASE_URL), migrates a template
 * database once, then runs every test/**.test.ts file with node's test runner, in
 * parallel; each file clones the template into a database of its own.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

import pg from 'pg';

import { startDatabaseServer, withDatabase } from '../scripts/embedded-db.js';
import { migrateSchema } from '../src/db/migrate.js';
import { TEMPLATE_DB, TEST_DB_PREFIX } from './support/names.js';

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory()
        ? testFiles(path.join(dir, e.name))
        : e.name.endsWith('.test.ts')
          ? [path.join(dir, e.name)]
          : [],
    )
    .sort();
}

async function dropTestDatabases(admin: pg.Client, includeTemplate: boolean): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>(
    `SELECT datname FROM pg_database WHERE datname LIKE $1 OR ($2 AND datname = $3)`,
    [`${TEST_DB_PREFIX}%`, includeTemplate, TEMPLATE_DB],
  );
  for (const { datname } of rows) {
    await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  }
}

const only = process.argv.slice(2);
const server = await startDatabaseServer((line) => console.log(line));
let exitCode = 1;
try {
  const admin = new pg.Client(withDatabase(server.url, 'postgres'));
  await admin.connect();
  await admin.query(`CREATE DATABASE "${TEMPLATE_DB}"`);
  const template = new pg.Client(withDatabase(server.url, TEMPLATE_DB));
  await template.connect();
  await migrateSchema(template, 'stepping');
  await template.end();

  const files = only.length > 0 ? only : testFiles('test');
  const concurrency = Number(process.env.TEST_CONCURRENCY ?? 4);
  const started = Date.now();
  exitCode = await new Promise<number>((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--test',
        '--test-reporter=spec',
        `--test-concurrency=${concurrency}`,
        // A hung test fails with a message instead of stalling the run.
        `--test-timeout=${Number(process.env.TEST_TIMEOUT_MS ?? 180_000)}`,
        ...files,
      ],
      { stdio: 'inherit', env: { ...process.env, STEPPING_TEST_SERVER: server.url } },
    );
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
  console.log(`test files: ${files.length}, wall time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (exitCode === 0) {
    await dropTestDatabases(admin, true);
  } else if (server.embedded) {
    console.log(
      'A test failed. Its database lives only as long as the embedded server; set DATABASE_URL to keep it.',
    );
  } else {
    console.log(
      `A test failed. Its database (named in the failure, prefix ${TEST_DB_PREFIX}) is kept for inspection.`,
    );
  }
  await admin.end();
} finally {
  await server.stop();
}
process.exit(exitCode);
