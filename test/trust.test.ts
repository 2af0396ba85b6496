/**
 * Trust boundaries (issue 9) beyond the role grants of roles.test.ts: a cancel NOTIFY is a
 * hint the worker checks in the database, the engine's clock is no caller's setting, a
 * schema another role controls is refused without running its code, reserved schemas are
 * refused, and migrate keeps grants and objects built on the engine.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { runOperatorCli } from '../src/cli/operator.js';
import {
  ConfigError,
  createStepping,
  createWorker,
  defineStep,
  migrateDatabases,
  MigrationRefusedError,
} from '../src/index.js';
import { installPreviousEngine } from './fixtures/previous-engine.js';
import { run, trackChildren } from './fixtures/processes.js';
import { createTestDatabase } from './support/db.js';
import { deferred, eventually, setup } from './support/harness.js';
import { MIGRATIONS } from './support/migrations.js';
import { TEST_RUN_ID } from './support/names.js';
import { loginRoles, sqlState } from './support/roles.js';

const h = await setup(import.meta.url);
trackChildren();
const roles = loginRoles(h.url);

const producer = await roles.create('tr_p', { memberOf: ['stepping_producer'] });
const worker = await roles.create('tr_w', { memberOf: ['stepping_worker'] });
const operator = await roles.create('tr_o', { memberOf: ['stepping_operator'] });

/** The job row's updated_at as text (microseconds kept). */
async function updatedAt(jobId: string): Promise<string> {
  const { rows } = await h.pool.query<{ t: string }>(
    `SELECT updated_at::text AS t FROM stepping.jobs WHERE id = $1`,
    [jobId],
  );
  return rows[0]!.t;
}

/** Drops an installation this file made in a schema of its own, and its (cluster-wide) roles. */
async function dropInstallation(db: pg.Pool | pg.Client, schema: string): Promise<void> {
  await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  for (const kind of ['producer', 'worker', 'operator']) {
    await db.query(`DROP ROLE IF EXISTS "${schema}_${kind}"`);
  }
}

test('a cancel NOTIFY from a role without any grant does not abort a running step; stepping.cancel does', async (t) => {
  const nobody = await roles.create('nobody');
  const started = deferred<AbortSignal>();
  const hold = defineStep('trust.cancel.hold', async (_args: unknown, ctx) => {
    started.resolve(ctx.signal);
    await new Promise<void>((resolve) =>
      ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
    throw ctx.signal.reason;
  });
  // A 10-minute lease: the periodic heartbeat (every 200 s) never falls inside this test,
  // so a heartbeat seen here is the worker's answer to the hint.
  await h.worker({ steps: [hold], leaseMs: 600_000 }, t);
  const id = await h.stepping.enqueue([hold({})]);
  const signal = await started.promise;
  const claimed = await updatedAt(id);

  const c = await nobody.client();
  await c.query(`SELECT pg_notify('stepping_cancel', $1)`, [id]);
  // The worker reacts at once: it heartbeats to ask the database (updated_at moves), or,
  // if it trusted the payload, it aborts the step.
  await eventually(
    async () => signal.aborted || (await updatedAt(id)) !== claimed,
    10_000,
    'the worker to react to the cancel notification',
  );
  assert.equal(signal.aborted, false, 'a NOTIFY alone aborted the running step');
  const { rows } = await h.pool.query(
    `SELECT status, cancel_requested, attempt FROM stepping.jobs WHERE id = $1`,
    [id],
  );
  assert.deepEqual(rows[0], { status: 'running', cancel_requested: false, attempt: 1 });

  assert.equal(await h.stepping.cancel(id), 'running');
  await eventually(() => signal.aborted, 10_000, 'the step to be aborted by a real cancel');
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'cancelled');
});

test('no session setting moves the engine clock; only the settings row does, and only its owner may write it', async () => {
  const id = await h.stepping.enqueue([{ name: 'trust.clock', args: { card: '4242' } }]);
  const held = await h.pool.query(
    `SELECT job_id FROM stepping.step_claim('holder', ARRAY['trust.clock'], NULL, 1, 600000)`,
  );
  assert.equal(String(held.rows[0].job_id), id, 'another worker holds the unit under a 10-minute lease');

  const thief = await worker.client();
  await thief.query(`SET stepping.time_offset = '1 day'`);
  await thief.query(`SET stepping.clock_offset = '1 day'`);
  const claim = `SELECT job_id, args FROM stepping.step_claim('thief', ARRAY['trust.clock'], NULL, 1, 30000)`;
  assert.deepEqual((await thief.query(claim)).rows, [], 'a live lease was claimed through a session setting');
  await thief.query('BEGIN');
  await thief.query(`SELECT set_config('stepping.time_offset', '1 day', true)`);
  assert.deepEqual((await thief.query(claim)).rows, []);
  await thief.query('COMMIT');

  for (const role of [producer, worker, operator]) {
    const c = await role.client();
    assert.equal(
      await sqlState(c, `UPDATE stepping.settings SET clock_offset = interval '1 hour'`),
      '42501',
      `${role.name} moved the clock`,
    );
    assert.equal(await sqlState(c, `DELETE FROM stepping.settings`), '42501');
    assert.equal(await sqlState(c, `INSERT INTO stepping.settings (singleton) VALUES (true)`), '42501');
  }

  // The owner's settings row does move it: the same claim now takes the expired unit over.
  await h.shiftClock('1 day');
  const taken = await thief.query(claim);
  assert.equal(String(taken.rows[0]?.job_id), id);
});

test('migrate refuses a schema another role created, naming its owner and the fix, and runs none of its code', async () => {
  const app = await roles.create('app');
  await h.pool.query(`GRANT CREATE ON DATABASE "${h.dbName}" TO "${app.name}"`);
  const c = await app.client();
  await c.query(`
    CREATE SCHEMA trust_precreated;
    CREATE TABLE trust_precreated.ran (who text, what text);
    CREATE FUNCTION trust_precreated.mark(what text) RETURNS text LANGUAGE sql
      AS $$ INSERT INTO trust_precreated.ran VALUES (current_user, what) RETURNING what $$;
    -- Shadows a built-in the engine's functions call, if the schema came first on their path.
    CREATE FUNCTION trust_precreated.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql
      AS $$ SELECT pg_catalog.jsonb_typeof($1) FROM trust_precreated.mark('jsonb_typeof') $$;
    -- What a migrate that read its "installed version" from here would run.
    CREATE VIEW trust_precreated.settings AS SELECT trust_precreated.mark('settings') AS fingerprint;
  `);
  const tenant = createStepping({ connectionString: h.url, schema: 'trust_precreated' });
  try {
    await assert.rejects(tenant.migrate(), (error: Error) => {
      assert.ok(error instanceof MigrationRefusedError, `${error.name}: ${error.message}`);
      assert.match(error.message, new RegExp(`schema trust_precreated is owned by role ${app.name}`));
      assert.match(error.message, /ALTER SCHEMA "trust_precreated" OWNER TO "postgres"/);
      return true;
    });
  } finally {
    await tenant.close();
  }
  assert.deepEqual((await h.pool.query(`SELECT who, what FROM trust_precreated.ran`)).rows, []);
  const { rows } = await h.pool.query(
    `SELECT to_regclass('trust_precreated.jobs') AS jobs,
            (SELECT count(*)::int FROM pg_roles WHERE rolname LIKE 'trust\\_precreated\\_%') AS roles`,
  );
  assert.deepEqual(rows[0], { jobs: null, roles: 0 });
});

test("migrate refuses a schema it owns that holds another role's objects; it takes CREATE away from others", async () => {
  const app = await roles.create('intruder');
  const foreign = `tr_${TEST_RUN_ID}_foreign`;
  const granted = `tr_${TEST_RUN_ID}_granted`;
  try {
    await h.pool.query(
      `CREATE SCHEMA "${foreign}"; GRANT USAGE, CREATE ON SCHEMA "${foreign}" TO "${app.name}"`,
    );
    const c = await app.client();
    await c.query(`
      CREATE TABLE "${foreign}".ran (who text);
      CREATE FUNCTION "${foreign}".jsonb_typeof(jsonb) RETURNS text LANGUAGE sql
        AS $$ INSERT INTO "${foreign}".ran VALUES (current_user) RETURNING pg_catalog.jsonb_typeof($1) $$;
    `);
    const tenant = createStepping({ connectionString: h.url, schema: foreign });
    try {
      await assert.rejects(tenant.migrate(), (error: Error) => {
        assert.ok(error instanceof MigrationRefusedError, `${error.name}: ${error.message}`);
        assert.match(error.message, new RegExp(`holds objects of other roles`));
        assert.match(error.message, new RegExp(`owned by ${app.name}`));
        return true;
      });
    } finally {
      await tenant.close();
    }
    assert.deepEqual((await h.pool.query(`SELECT who FROM "${foreign}".ran`)).rows, []);
    assert.equal((await h.pool.query(`SELECT to_regclass($1) AS t`, [`${foreign}.jobs`])).rows[0].t, null);

    // A schema of the migrator where another role may create (but has not yet): migrated,
    // and that right is gone afterwards.
    await h.pool.query(
      `CREATE SCHEMA "${granted}"; GRANT USAGE, CREATE ON SCHEMA "${granted}" TO "${app.name}"`,
    );
    const ok = createStepping({ connectionString: h.url, schema: granted });
    try {
      assert.equal((await ok.migrate()).upToDate, false);
    } finally {
      await ok.close();
    }
    const { rows } = await h.pool.query(`SELECT has_schema_privilege($1, $2, 'CREATE') AS can`, [
      app.name,
      granted,
    ]);
    assert.equal(rows[0].can, false);
  } finally {
    await dropInstallation(h.pool, foreign);
    await dropInstallation(h.pool, granted);
  }
});

test("migrate refuses a schema it owns that holds another role's operator, which would outrank a built-in", async () => {
  // The engine computes `integer * interval` (lease lengths): no built-in takes exactly
  // that, so an operator of that signature in the engine's schema would be chosen inside
  // the SECURITY DEFINER functions and run its function as the owner.
  const app = await roles.create('operator_maker');
  const schema = `tr_${TEST_RUN_ID}_operator`;
  try {
    await h.pool.query(`
      GRANT CREATE ON DATABASE "${h.dbName}" TO "${app.name}";
      CREATE SCHEMA "${schema}";
      GRANT USAGE, CREATE ON SCHEMA "${schema}" TO "${app.name}";
    `);
    const c = await app.client();
    await c.query(`
      CREATE SCHEMA "${app.name}";
      CREATE TABLE "${app.name}".ran (who text);
      GRANT USAGE ON SCHEMA "${app.name}" TO PUBLIC;
      GRANT INSERT ON "${app.name}".ran TO PUBLIC;
      CREATE FUNCTION "${app.name}".mul(integer, interval) RETURNS interval LANGUAGE sql
        AS $$ INSERT INTO "${app.name}".ran VALUES (current_user) RETURNING $2 OPERATOR(pg_catalog.*) $1::float8 $$;
      CREATE OPERATOR "${schema}".* (LEFTARG = integer, RIGHTARG = interval, FUNCTION = "${app.name}".mul);
    `);
    const tenant = createStepping({ connectionString: h.url, schema });
    try {
      await assert.rejects(tenant.migrate(), (error: Error) => {
        assert.ok(error instanceof MigrationRefusedError, `${error.name}: ${error.message}`);
        assert.match(
          error.message,
          new RegExp(`operator "?${schema}"?\\.\\*\\(integer,interval\\) owned by ${app.name}`),
        );
        return true;
      });
    } finally {
      await tenant.close();
    }
    assert.deepEqual((await h.pool.query(`SELECT who FROM "${app.name}".ran`)).rows, []);
  } finally {
    await h.pool.query(`DROP SCHEMA IF EXISTS "${app.name}" CASCADE`);
    await dropInstallation(h.pool, schema);
  }
});

test('a role that does not own the schema gets "up to date" from migrate when it is, and is refused when it is not', async () => {
  const ops = createStepping({ connectionString: operator.url() });
  try {
    assert.deepEqual(await ops.migrate(), { applied: [], upToDate: true, missingRoles: [] });
    await h.pool.query(`UPDATE stepping.settings SET fingerprint = 'an older version'`);
    await assert.rejects(ops.migrate(), (error: Error) => {
      assert.ok(error instanceof MigrationRefusedError, `${error.name}: ${error.message}`);
      assert.match(error.message, new RegExp(`owned by role postgres, not by ${operator.name}`));
      return true;
    });
  } finally {
    await ops.close();
    assert.equal((await h.stepping.migrate()).upToDate, false);
  }
});

test('migrate runs no function of a schema another role named after the migrating role', async () => {
  // The default search_path is "$user", public: "$user" is any schema named like the
  // migrating role, whoever created it. A role with CREATE on the database makes one and
  // puts in it an overload that matches one of migrate's calls better than the built-in:
  // hashtextextended(text, integer) for the advisory lock's key (the built-in takes bigint).
  const { url, name } = await createTestDatabase('trust_user_schema', { empty: true });
  console.log(`# database ${name}`);
  roles.usedIn(name);
  const app = await roles.create('userschema');
  const admin = new pg.Client(url);
  await admin.connect();
  try {
    const me = (await admin.query<{ me: string }>(`SELECT current_user AS me`)).rows[0]!.me;
    await admin.query(`GRANT CREATE ON DATABASE "${name}" TO "${app.name}"`);
    const c = await app.client(name);
    await c.query(`
      CREATE SCHEMA "${me}";
      CREATE TABLE "${me}".ran (what text);
      GRANT INSERT ON "${me}".ran TO PUBLIC;
      CREATE FUNCTION "${me}".hashtextextended(text, integer) RETURNS bigint LANGUAGE sql
        AS $$ INSERT INTO "${me}".ran VALUES ('hashtextextended') RETURNING 1::bigint $$;
    `);
    await c.end();
    const stepping = createStepping({ connectionString: url });
    try {
      assert.equal((await stepping.migrate()).upToDate, false);
      assert.equal((await stepping.migrate()).upToDate, true);
    } finally {
      await stepping.close();
    }
    assert.deepEqual((await admin.query(`SELECT what FROM "${me}".ran`)).rows, []);
  } finally {
    await admin.end();
  }
});

test('public, information_schema and pg_* are refused by every entry point, and public is left untouched', async () => {
  await h.pool.query(`
    CREATE FUNCTION public.trust_app_fn() RETURNS integer LANGUAGE sql AS 'SELECT 1';
    CREATE VIEW public.trust_app_view AS SELECT 1 AS one;
  `);
  const publicState = async () =>
    (
      await h.pool.query(
        `SELECT (SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public') AS acl,
                (SELECT json_agg(json_build_array(p.oid::regprocedure::text, p.xmin::text, p.proacl::text) ORDER BY p.oid)
                 FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace) AS functions,
                (SELECT json_agg(json_build_array(c.relname, c.xmin::text, c.relacl::text) ORDER BY c.oid)
                 FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace) AS relations`,
      )
    ).rows[0];
  const before = await publicState();
  const noop = defineStep('trust.noop', async () => {});
  for (const schema of ['public', 'information_schema', 'pg_foo', 'pg_catalog', 'pg_temp']) {
    assert.throws(() => createStepping({ connectionString: h.url, schema }), ConfigError, schema);
    assert.throws(
      () => createWorker({ connectionString: h.url, schema, steps: [noop] }),
      ConfigError,
      schema,
    );
    await assert.rejects(migrateDatabases([h.url], { schema }), ConfigError, schema);
    let stderr = '';
    const code = await runOperatorCli(
      ['migrate', '--schema', schema],
      { stdout: () => {}, stderr: (t) => (stderr += t) },
      { DATABASE_URL: h.url },
    );
    assert.equal(code, 2, `stepping migrate --schema ${schema}: ${stderr}`);
    assert.match(stderr, new RegExp(`schema ${schema} is reserved`));
  }
  // The real bin too, once.
  const bin = await run('src/cli/stepping.ts', ['migrate', '--schema', 'public'], { DATABASE_URL: h.url });
  assert.equal(bin.code, 2, bin.stderr);
  assert.match(bin.stderr, /schema public is reserved/);
  assert.deepEqual(await publicState(), before);
});

test('a migrate that re-applies the code keeps grants on engine functions and views built on engine views', async () => {
  const app = await roles.create('grantee');
  await h.pool.query(`
    GRANT USAGE ON SCHEMA stepping TO "${app.name}";
    GRANT EXECUTE ON FUNCTION stepping.job_enqueue(jsonb, text, integer, timestamptz, text, text, timestamptz, text, text, text)
      TO "${app.name}";
    CREATE SCHEMA trust_reports;
    CREATE VIEW trust_reports.backlog AS SELECT queue, sum(jobs)::int AS jobs FROM stepping.queue_stats GROUP BY queue;
  `);
  const version = async () =>
    (
      await h.pool.query<{ x: string }>(
        `SELECT xmin::text AS x FROM pg_proc
         WHERE oid = 'stepping.job_enqueue(jsonb, text, integer, timestamptz, text, text, timestamptz, text, text, text)'::regprocedure`,
      )
    ).rows[0]!.x;
  const before = await version();
  await h.pool.query(`UPDATE stepping.settings SET fingerprint = NULL`);
  const outcome = await h.stepping.migrate();
  assert.deepEqual(outcome, { applied: [], upToDate: false, missingRoles: [] });
  assert.notEqual(await version(), before, 'job_enqueue was not re-applied');

  const c = await app.client();
  await c.query(`SELECT stepping.job_enqueue('[{"name": "trust.granted"}]', 'trust-granted')`);
  const backlog = await h.pool.query(`SELECT jobs FROM trust_reports.backlog WHERE queue = 'trust-granted'`);
  assert.deepEqual(backlog.rows, [{ jobs: 1 }]);
  // The roles' grants are in place too.
  const p = await producer.client();
  assert.equal(
    await sqlState(p, `SELECT stepping.job_enqueue('[{"name": "trust.granted"}]', 'trust-granted')`),
    'ok',
  );
});

test("an upgrade from the previous version keeps grants and views built on it, and takes PUBLIC's rights away", async () => {
  const { url, name } = await createTestDatabase('trust_upgrade', { empty: true });
  console.log(`# database ${name}`);
  roles.usedIn(name);
  const app = await roles.create('upgrader');
  const admin = new pg.Client(url);
  await admin.connect();
  const stepping = createStepping({ connectionString: url });
  try {
    await installPreviousEngine(admin, 'stepping');
    await admin.query(`
      GRANT USAGE ON SCHEMA stepping TO "${app.name}";
      GRANT EXECUTE ON FUNCTION stepping.job_enqueue(jsonb, text, integer, timestamptz, text, text, timestamptz)
        TO "${app.name}";
      CREATE SCHEMA reports;
      CREATE VIEW reports.backlog AS SELECT queue, sum(jobs)::int AS jobs FROM stepping.queue_stats GROUP BY queue;
      SELECT stepping.job_enqueue('[{"name": "trust.upgrade"}]', 'upgrade');
    `);
    const outcome = await stepping.migrate();
    assert.deepEqual(outcome, {
      // Everything after the old engine's one migration.
      applied: MIGRATIONS.slice(1),
      upToDate: false,
      missingRoles: [],
    });

    const c = await app.client(name);
    await c.query(`SELECT stepping.job_enqueue('[{"name": "trust.upgrade"}]', 'upgrade')`);
    assert.deepEqual((await admin.query(`SELECT jobs FROM reports.backlog WHERE queue = 'upgrade'`)).rows, [
      { jobs: 2 },
    ]);
    const open = await admin.query(
      `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
       WHERE p.pronamespace = 'stepping'::regnamespace
         AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee = 0)`,
    );
    assert.deepEqual(open.rows, [], 'functions still executable by PUBLIC');
    assert.equal((await admin.query(`SELECT to_regprocedure('stepping.now()') AS f`)).rows[0].f, null);

    // Both jobs, the one enqueued before the upgrade too, run on the new engine.
    const step = defineStep('trust.upgrade', async () => 'done');
    const w = createWorker({ connectionString: url, steps: [step] });
    await w.start();
    try {
      const ids = (await admin.query<{ id: string }>(`SELECT id::text FROM stepping.jobs ORDER BY id`)).rows;
      assert.equal(ids.length, 2);
      for (const { id } of ids) {
        assert.equal((await stepping.waitForJob(id, { timeoutMs: 20_000 })).status, 'succeeded');
      }
    } finally {
      await w.stop();
    }
  } finally {
    await stepping.close();
    await admin.end();
  }
});
