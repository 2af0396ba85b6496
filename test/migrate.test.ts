import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { withDatabase } from '../scripts/embedded-db.js';
import { installedFingerprint, migrateSchema } from '../src/db/migrate.js';
import {
  ConfigError,
  createStepping,
  createWorker,
  defineStep,
  MigrationRefusedError,
  type Stepping,
} from '../src/index.js';
import { commandLine, projectRoot } from './fixtures/processes.js';
import { createTestDatabase, serverUrl } from './support/db.js';
import { setup } from './support/harness.js';
import { TEST_DB_PREFIX } from './support/names.js';

const h = await setup(import.meta.url);

const MIGRATIONS = readdirSync(fileURLToPath(new URL('../migrations/', import.meta.url)))
  .filter((f) => /\.(sql|js|ts|cjs|mjs)$/.test(f))
  .map((f) => f.replace(/\.[^.]+$/, ''))
  .sort();
const FIXTURE = 'test/fixtures/core-migrate.ts';

/** A new database with no Stepping objects at all. Kept after a failure like the harness's. */
async function emptyDatabase(label: string): Promise<string> {
  const { url, name } = await createTestDatabase(`core_${label}`, { empty: true });
  console.log(`# database ${name}`);
  return url;
}

async function runsAJob(stepping: Stepping, url: string, schema?: string): Promise<void> {
  const ran: string[] = [];
  const step = defineStep('migrate.check', async (_args: unknown, ctx) => {
    ran.push(ctx.jobId);
  });
  const worker = createWorker({ connectionString: url, steps: [step], ...(schema ? { schema } : {}) });
  await worker.start();
  try {
    const id = await stepping.enqueue([step({}), step({})]);
    assert.equal((await stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
    assert.deepEqual(ran, [id, id]);
  } finally {
    await worker.stop();
  }
}

test('migrate on an empty database applies every migration; a second run applies nothing', async () => {
  assert.ok(MIGRATIONS.length >= 1);
  const url = await emptyDatabase('twice');
  const stepping = createStepping({ connectionString: url });
  try {
    assert.deepEqual((await stepping.migrate()).applied, MIGRATIONS);
    assert.deepEqual((await stepping.migrate()).applied, []);
    await runsAJob(stepping, url);
  } finally {
    await stepping.close();
  }
});

test('three processes migrating one empty database at once all succeed, and it works', async () => {
  const url = await emptyDatabase('parallel');
  const runs = await Promise.all(
    [0, 1, 2].map(
      () =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
          const child = spawn(process.execPath, commandLine(FIXTURE, [url]), {
            cwd: projectRoot,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('error', reject);
          child.on('close', (code) => resolve({ code, stdout, stderr }));
        }),
    ),
  );
  for (const r of runs) assert.equal(r.code, 0, `a migrate process failed: ${r.stderr}`);
  const applied = runs.map((r) => (JSON.parse(r.stdout) as { applied: string[] }).applied);
  // Each migration ran exactly once, in one of the processes.
  assert.deepEqual(applied.flat().sort(), MIGRATIONS);
  const stepping = createStepping({ connectionString: url });
  try {
    assert.deepEqual((await stepping.migrate()).applied, []);
    await runsAJob(stepping, url);
  } finally {
    await stepping.close();
  }
});

test('a fresh custom schema migrates and runs jobs on its own, beside the default schema', async () => {
  const tenant = createStepping({ connectionString: h.url, schema: 'tenant_x' });
  try {
    assert.deepEqual((await tenant.migrate()).applied, MIGRATIONS);
    assert.deepEqual((await tenant.migrate()).applied, []);
    const before = await h.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM stepping.jobs');
    await runsAJob(tenant, h.url, 'tenant_x');
    const tenantJobs = await h.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM tenant_x.jobs WHERE status = 'succeeded'`,
    );
    assert.equal(tenantJobs.rows[0]!.n, 1);
    const after = await h.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM stepping.jobs');
    assert.equal(after.rows[0]!.n, before.rows[0]!.n, 'nothing was written to the default schema');
    // The functions resolve names in pg_catalog, then their own schema, whatever the
    // caller's search_path (nothing in the schema can shadow a built-in).
    const { rows } = await h.pool.query<{ config: string[] }>(
      `SELECT proconfig AS config FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'tenant_x' AND p.proname = 'step_claim'`,
    );
    assert.ok(
      rows[0]?.config.some((c) => /^search_path=pg_catalog, tenant_x, pg_temp$/.test(c)),
      `step_claim config: ${rows[0]?.config}`,
    );
  } finally {
    await tenant.close();
  }
});

test('an invalid schema name is refused with ConfigError by createStepping and createWorker', async () => {
  const bad = [
    'Tenant',
    'bad-name',
    'x; DROP SCHEMA stepping',
    '1abc',
    '',
    'a'.repeat(49),
    'tenant x',
    '"q"',
  ];
  const noop = defineStep('migrate.noop', async () => {});
  for (const schema of bad) {
    assert.throws(
      () => createStepping({ connectionString: h.url, schema }),
      ConfigError,
      `createStepping schema ${JSON.stringify(schema)}`,
    );
    assert.throws(
      () => createWorker({ connectionString: h.url, schema, steps: [noop] }),
      ConfigError,
      `createWorker schema ${JSON.stringify(schema)}`,
    );
  }
  // The longest valid name is accepted.
  const ok = createStepping({ connectionString: h.url, schema: 'a'.repeat(48) });
  assert.equal(ok.schema, 'a'.repeat(48));
  await ok.close();
});

test('migrate refuses a database that is not UTF8, naming its encoding, and creates nothing', async () => {
  const name = `${TEST_DB_PREFIX}sql_ascii`;
  const admin = new pg.Client(withDatabase(serverUrl(), 'postgres'));
  await admin.connect();
  try {
    await admin.query(
      `CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'`,
    );
  } finally {
    await admin.end();
  }
  console.log(`# database ${name}`);
  const url = withDatabase(serverUrl(), name);
  const stepping = createStepping({ connectionString: url });
  try {
    await assert.rejects(stepping.migrate(), (e: unknown) => {
      assert.ok(e instanceof MigrationRefusedError, `expected MigrationRefusedError, got ${String(e)}`);
      assert.match(e.message, /uses encoding SQL_ASCII, and Stepping needs UTF8/);
      assert.match(e.message, /ENCODING 'UTF8'/);
      return true;
    });
  } finally {
    await stepping.close();
  }
  const c = new pg.Client(url);
  await c.connect();
  try {
    const { rows } = await c.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'stepping'`);
    assert.equal(rows[0].n, 0);
  } finally {
    await c.end();
  }
});

test('checking an up-to-date installation is one round trip after connecting; a view named settings is not read', async () => {
  // Many databases are checked at once by `migrate --databases`: each extra round trip is
  // another wake-up of 1,000 fresh server processes sharing the host's cores.
  const c = new pg.Client(h.url);
  await c.connect();
  try {
    let sent = 0;
    const query = c.query.bind(c) as (...args: unknown[]) => unknown;
    (c as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      sent += 1;
      return query(...args);
    };
    const outcome = await migrateSchema(c, 'stepping');
    assert.deepEqual(outcome, { applied: [], upToDate: true, missingRoles: [] });
    assert.equal(sent, 1, 'queries sent to find the installation up to date');

    // A relation named settings that is not a plain table is never read (a view would run its
    // owner's code as the migrating role): the check reports no installation and leaves the
    // session usable.
    await c.query(`
      CREATE SCHEMA check_view;
      CREATE TABLE check_view.ran (what text);
      CREATE FUNCTION check_view.mark() RETURNS text LANGUAGE sql
        AS $$ INSERT INTO check_view.ran VALUES ('read') RETURNING what $$;
      CREATE VIEW check_view.settings AS SELECT check_view.mark() AS fingerprint;
    `);
    sent = 0;
    assert.equal(await installedFingerprint(c, 'check_view'), null);
    assert.equal(sent, 2, 'the check and the ROLLBACK after its refusal');
    assert.deepEqual((await c.query(`SELECT what FROM check_view.ran`)).rows, []);
    assert.equal(
      (await c.query(`SELECT pg_catalog.current_setting('search_path') AS p`)).rows[0].p,
      '"$user", public',
    );
  } finally {
    await c.end();
  }
});
