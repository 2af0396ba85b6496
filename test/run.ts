/**
 * `npm test`: starts a throw-away PostgreSQL (or uses DATABASE_URL), migrates a template
 * database once, compiles the TypeScript to .test-build/ (test/support/compile.ts), then
 * runs every test/**.test.ts file, compiled, with node's test runner, in parallel; each
 * file clones the template into a database of its own.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

import pg from 'pg';

import { startDatabaseServer, withDatabase } from '../scripts/embedded-db.js';
import { migrateSchema } from '../src/db/migrate.js';
import { compileForTests } from './support/compile.js';
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

/**
 * The files in the order to start them: longest first (seconds from test/durations.json,
 * a file not in it counted as long), so the run does not end on one long file started
 * last while the other slots are idle.
 */
function longestFirst(files: string[]): string[] {
  let seconds: Record<string, number> = {};
  try {
    seconds = JSON.parse(readFileSync('test/durations.json', 'utf8')) as Record<string, number>;
  } catch {
    // No durations: alphabetical order.
  }
  const of = (f: string) => seconds[f.split(path.sep).join('/')] ?? 60;
  return [...files].sort((a, b) => of(b) - of(a) || a.localeCompare(b));
}

/** Drops this run's databases, four connections at a time (one at a time took 15-30 s). */
async function dropTestDatabases(url: string, includeTemplate: boolean): Promise<void> {
  const admin = new pg.Client(url);
  await admin.connect();
  const { rows } = await admin.query<{ datname: string }>(
    `SELECT datname FROM pg_database WHERE datname LIKE $1 OR ($2 AND datname = $3)`,
    [`${TEST_DB_PREFIX}%`, includeTemplate, TEMPLATE_DB],
  );
  await admin.end();
  const names = rows.map((r) => r.datname);
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      const c = new pg.Client(url);
      await c.connect();
      try {
        for (let name = names.pop(); name !== undefined; name = names.pop()) {
          await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        }
      } finally {
        await c.end();
      }
    }),
  );
}

const only = process.argv.slice(2);
const server = await startDatabaseServer((line) => console.log(line));
let exitCode = 1;
let tree: string | undefined;
try {
  const admin = new pg.Client(withDatabase(server.url, 'postgres'));
  await admin.connect();
  await admin.query(`CREATE DATABASE "${TEMPLATE_DB}"`);
  const template = new pg.Client(withDatabase(server.url, TEMPLATE_DB));
  await template.connect();
  await migrateSchema(template, 'stepping');
  await template.end();

  const files = longestFirst(only.length > 0 ? only : testFiles('test'));
  const built = path.relative(process.cwd(), await compileForTests(process.cwd()));
  tree = built;
  // Each test file runs compiled: test/x.test.ts as .test-build/<pid>/test/x.test.js.
  const compiledFiles = files.map((f) =>
    path.join(built, path.relative(process.cwd(), path.resolve(f)).replace(/\.ts$/, '.js')),
  );
  const concurrency = Number(process.env.TEST_CONCURRENCY ?? 5);
  const started = Date.now();
  exitCode = await new Promise<number>((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--enable-source-maps',
        '--test',
        '--test-reporter=spec',
        '--test-reporter-destination=stdout',
        ...(process.env.TEST_DURATIONS_OUT
          ? ['--test-reporter=./test/support/durations-reporter.mjs', '--test-reporter-destination=stderr']
          : []),
        `--test-concurrency=${concurrency}`,
        // A hung test fails with a message instead of stalling the run.
        `--test-timeout=${Number(process.env.TEST_TIMEOUT_MS ?? 180_000)}`,
        ...compiledFiles,
      ],
      {
        stdio: 'inherit',
        env: {
          ...process.env,
          STEPPING_TEST_SERVER: server.url,
        },
      },
    );
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
  console.log(`test files: ${files.length}, wall time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (exitCode === 0) {
    // The embedded server's data directory goes with it: nothing to drop.
    if (!server.embedded) await dropTestDatabases(withDatabase(server.url, 'postgres'), true);
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
  if (tree) rmSync(tree, { recursive: true, force: true });
}
process.exit(exitCode);
