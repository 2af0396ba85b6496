/**
 * The roles migrate sets up (issue 9): nothing of the engine is usable by PUBLIC, a role
 * with only USAGE on the schema can do nothing, and login roles granted
 * `stepping_producer`, `stepping_worker` or `stepping_operator` can do exactly their share,
 * through SQL, the driver, a real worker and the `stepping` CLI.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';

import { runOperatorCli } from '../src/cli/operator.js';
import { ROLE_GRANTS, ROLE_KINDS } from '../src/db/roles.js';
import { createStepping, createWorker, defineStep, type WorkerEventMap } from '../src/index.js';
import { run, trackChildren } from './fixtures/processes.js';
import { deferred, eventually, setup } from './support/harness.js';
import { MIGRATIONS } from './support/migrations.js';
import { TEST_RUN_ID } from './support/names.js';
import { type LoginRole, loginRoles, sqlState } from './support/roles.js';

const h = await setup(import.meta.url);
trackChildren();
const roles = loginRoles(h.url);

const producer = await roles.create('rl_p', { memberOf: ['stepping_producer'] });
const worker = await roles.create('rl_w', { memberOf: ['stepping_worker'] });
const operator = await roles.create('rl_o', { memberOf: ['stepping_operator'] });

/** What each role may use, written out here (not read from src/db/roles.ts) so the grant map itself is tested. */
const ALLOWED: Record<'producer' | 'worker' | 'operator', { functions: string[]; relations: string[] }> = {
  producer: {
    functions: ['job_enqueue', 'job_enqueue_batch', 'engine_now', 'engine_now_stable'],
    relations: ['job_overview', 'step_overview', 'settings'],
  },
  worker: {
    functions: [
      'step_claim',
      'step_complete',
      'step_fail',
      'lease_extend',
      'lease_release',
      'next_due_in_ms',
      'worker_register',
      'worker_heartbeat',
      'worker_deregister',
      'maintenance_run',
      'queue_metrics',
      'engine_now',
      'schedule_due',
      'schedule_fire',
      'schedule_next_due_in_ms',
    ],
    relations: ['settings'],
  },
  operator: {
    functions: [
      'job_cancel',
      'job_retry',
      'job_retry_many',
      'job_prune',
      'maintenance_run',
      'queue_metrics',
      'engine_now',
      'engine_now_stable',
      'schedule_upsert',
      'schedule_remove',
      'schedule_pause',
      'queue_limit_set',
      'queue_limit_clear',
    ],
    relations: [
      'job_overview',
      'step_overview',
      'queue_stats',
      'worker_overview',
      'live_workers',
      'unrunnable_steps',
      'settings',
      'schedule_overview',
      'queue_limits_overview',
    ],
  },
};

interface Probe {
  what: string;
  sql: string;
}

/**
 * A call of every function of the schema (all arguments NULL, typed) and a read of every
 * relation. PostgreSQL checks EXECUTE and SELECT before running anything, so a refused
 * probe is 42501 whatever the arguments; an allowed one runs the engine, which answers
 * 'ok' or an engine error (class SP) for the NULLs.
 */
async function probes(): Promise<{ functions: Map<string, Probe[]>; relations: Map<string, Probe> }> {
  const fns = await h.pool.query<{ name: string; identity: string; args: string[] }>(
    `SELECT p.proname AS name, p.oid::regprocedure::text AS identity,
            array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i) ORDER BY i) AS args
     FROM pg_proc p WHERE p.pronamespace = 'stepping'::regnamespace ORDER BY 2`,
  );
  const functions = new Map<string, Probe[]>();
  for (const f of fns.rows) {
    // A polymorphic parameter (anyelement) needs a concrete type to be called at all.
    const typed = (t: string) => `NULL::${t === 'anyelement' ? 'text' : t}`;
    const call = `SELECT stepping."${f.name}"(${f.args.map(typed).join(', ')})`;
    functions.set(f.name, [...(functions.get(f.name) ?? []), { what: f.identity, sql: call }]);
  }
  const rels = await h.pool.query<{ name: string }>(
    `SELECT relname AS name FROM pg_class WHERE relnamespace = 'stepping'::regnamespace
       AND relkind IN ('r', 'v', 'S', 'm', 'p') ORDER BY 1`,
  );
  const relations = new Map(
    rels.rows.map((r) => [r.name, { what: r.name, sql: `SELECT 1 FROM stepping."${r.name}" LIMIT 1` }]),
  );
  return { functions, relations };
}

/** Runs every probe as `role`; returns the ones allowed, and fails on anything but 42501, ok or SP*. */
async function allowedFor(role: LoginRole): Promise<{ functions: string[]; relations: string[] }> {
  const { functions, relations } = await probes();
  assert.ok(functions.size >= 20, `only ${functions.size} functions found`);
  const c = await role.client();
  const allowed = { functions: [] as string[], relations: [] as string[] };
  for (const [name, calls] of functions) {
    const states = new Set<string>();
    for (const call of calls) {
      const state = await sqlState(c, call.sql);
      assert.ok(state === '42501' || state === 'ok' || state.startsWith('SP'), `${call.what}: ${state}`);
      states.add(state === '42501' ? 'refused' : 'allowed');
    }
    assert.equal(states.size, 1, `${name}: some overloads allowed, some refused`);
    if (states.has('allowed')) allowed.functions.push(name);
  }
  for (const [name, probe] of relations) {
    const state = await sqlState(c, probe.sql);
    assert.ok(state === '42501' || state === 'ok', `${probe.what}: ${state}`);
    if (state === 'ok') allowed.relations.push(name);
  }
  // Nobody writes a table directly.
  for (const table of ['jobs', 'steps', 'settings', 'pgmigrations']) {
    assert.equal(await sqlState(c, `DELETE FROM stepping."${table}"`), '42501', `DELETE ${table}`);
    assert.equal(
      await sqlState(c, `INSERT INTO stepping."${table}" DEFAULT VALUES`),
      '42501',
      `INSERT ${table}`,
    );
    assert.equal(await sqlState(c, `TRUNCATE stepping."${table}"`), '42501', `TRUNCATE ${table}`);
  }
  return { functions: allowed.functions.sort(), relations: allowed.relations.sort() };
}

/** A running unit claimed by the test itself (as the owner): its job id and lease token. */
async function runningJob(name: string): Promise<{ id: string; token: string }> {
  const id = await h.stepping.enqueue([{ name, args: { card: '4242 4242 4242 4242' } }], { queue: name });
  const { rows } = await h.pool.query(
    `SELECT job_id::text AS id, lease_token::text AS token FROM stepping.step_claim('owner', $1, $2, 1, 600000)`,
    [[name], [name]],
  );
  assert.equal(rows[0]?.id, id);
  return rows[0] as { id: string; token: string };
}

/** A failed job, made through the engine's functions as a worker would. */
async function failedJob(name: string): Promise<string> {
  const { id, token } = await runningJob(name);
  const failed = await h.pool.query(
    `SELECT job_status FROM stepping.step_fail(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY[$3]::jsonb[])`,
    [id, token, JSON.stringify({ error: { message: 'card declined' }, permanent: true })],
  );
  assert.equal(failed.rows[0].job_status, 'failed');
  return id;
}

async function jobRow(id: string): Promise<Record<string, unknown>> {
  const { rows } = await h.pool.query(
    `SELECT status, attempt, lease_token::text AS token, cancel_requested FROM stepping.jobs WHERE id = $1`,
    [id],
  );
  return rows[0] as Record<string, unknown>;
}

/** The `stepping` CLI in this process, as `role` (or with `env`). */
async function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runOperatorCli(
    args,
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) },
    env,
  );
  return { code, stdout, stderr };
}

test('nothing of the engine is usable by PUBLIC: no function, relation or the schema itself', async () => {
  const all = await h.pool.query(
    `SELECT count(*)::int AS n FROM pg_proc WHERE pronamespace = 'stepping'::regnamespace`,
  );
  assert.ok(all.rows[0].n >= 20);
  const functions = await h.pool.query(
    `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
     WHERE p.pronamespace = 'stepping'::regnamespace
       AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee = 0)`,
  );
  assert.deepEqual(functions.rows, [], 'functions executable by PUBLIC');
  const relations = await h.pool.query(
    `SELECT c.relname FROM pg_class c
     WHERE c.relnamespace = 'stepping'::regnamespace
       AND EXISTS (SELECT 1 FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a WHERE a.grantee = 0)`,
  );
  assert.deepEqual(relations.rows, [], 'relations PUBLIC may use');
  const schema = await h.pool.query(
    `SELECT a.privilege_type FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
     WHERE n.nspname = 'stepping' AND a.grantee = 0`,
  );
  assert.deepEqual(schema.rows, [], 'schema privileges of PUBLIC');
});

test('a role with only USAGE on the schema is refused every function and relation, and its attacks change nothing', async () => {
  const usage = await roles.create('rl_usage');
  await h.pool.query(`GRANT USAGE ON SCHEMA stepping TO "${usage.name}"`);
  assert.deepEqual(await allowedFor(usage), { functions: [], relations: [] });

  // The attacks of issue 9, with real ids and tokens.
  const running = await runningJob('roles.victim.running');
  const pendingId = await h.stepping.enqueue([{ name: 'roles.victim.pending', args: { secret: 1 } }]);
  const failedId = await failedJob('roles.victim.failed');
  const done = await runningJob('roles.victim.done');
  await h.pool.query(`SELECT * FROM stepping.step_complete(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[])`, [
    done.id,
    done.token,
  ]);
  const before = await Promise.all([running.id, pendingId, failedId, done.id].map(jobRow));
  const c = await usage.client();
  const attacks: [string, string, unknown[]][] = [
    ['claim', `SELECT * FROM stepping.step_claim('thief', ARRAY['roles.victim.pending'])`, []],
    [
      'release',
      `SELECT * FROM stepping.lease_release(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[])`,
      [running.id, running.token],
    ],
    [
      'extend',
      `SELECT * FROM stepping.lease_extend(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[])`,
      [running.id, running.token],
    ],
    [
      'complete',
      `SELECT * FROM stepping.step_complete(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[])`,
      [running.id, running.token],
    ],
    [
      'fail',
      `SELECT * FROM stepping.step_fail(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY['{"error":{"message":"x"},"permanent":true}']::jsonb[])`,
      [running.id, running.token],
    ],
    ['cancel', `SELECT stepping.job_cancel($1)`, [pendingId]],
    ['retry', `SELECT stepping.job_retry($1)`, [failedId]],
    ['prune', `SELECT stepping.job_prune(interval '-1 day', ARRAY['succeeded'], NULL)`, []],
    [
      'enqueue at -2^31',
      `SELECT stepping.job_enqueue('[{"name":"roles.first"}]', 'default', -2147483648)`,
      [],
    ],
    ['enqueue batch', `SELECT * FROM stepping.job_enqueue_batch('[{"steps":[{"name":"roles.first"}]}]')`, []],
    ['notify done', `SELECT stepping._notify_done(ARRAY[$1 || ':succeeded'])`, [pendingId]],
    ['read args', `SELECT args FROM stepping.steps`, []],
  ];
  for (const [what, sql, values] of attacks) {
    assert.equal(await sqlState(c, sql, values), '42501', what);
  }
  assert.deepEqual(await Promise.all([running.id, pendingId, failedId, done.id].map(jobRow)), before);
  const first = await h.pool.query(
    `SELECT count(*)::int AS n FROM stepping.steps WHERE name = 'roles.first'`,
  );
  assert.equal(first.rows[0].n, 0);
});

test('producer, worker and operator may each use exactly their share of functions and relations', async () => {
  for (const [kind, role] of [
    ['producer', producer],
    ['worker', worker],
    ['operator', operator],
  ] as const) {
    const expected = {
      functions: [...ALLOWED[kind].functions].sort(),
      relations: [...ALLOWED[kind].relations].sort(),
    };
    assert.deepEqual(await allowedFor(role), expected, kind);
  }
});

test("migrate makes each role's share exact again: a right an older version gave is taken back", async () => {
  await h.pool.query(`
    GRANT EXECUTE ON FUNCTION stepping.job_cancel(bigint, boolean) TO stepping_producer;
    GRANT SELECT, UPDATE ON stepping.jobs TO stepping_producer;
    GRANT SELECT ON stepping.queue_stats TO stepping_worker;
    GRANT USAGE ON SEQUENCE stepping.jobs_id_seq TO stepping_operator;
    UPDATE stepping.settings SET fingerprint = NULL;
  `);
  assert.equal((await h.stepping.migrate()).upToDate, false);
  for (const [kind, role] of [
    ['producer', producer],
    ['worker', worker],
    ['operator', operator],
  ] as const) {
    const expected = {
      functions: [...ALLOWED[kind].functions].sort(),
      relations: [...ALLOWED[kind].relations].sort(),
    };
    assert.deepEqual(await allowedFor(role), expected, kind);
  }
  const { rows } = await h.pool.query(
    `SELECT has_sequence_privilege('stepping_operator', 'stepping.jobs_id_seq', 'USAGE') AS seq`,
  );
  assert.equal(rows[0].seq, false);
});

test('producer: enqueues in its own pg and Kysely transactions and follows its jobs through the views', async (t) => {
  const step = defineStep('roles.produced', async (args: { n: number }) => ({ doubled: args.n * 2 }));
  await h.worker({ steps: [step] }, t);
  const c = await producer.client();
  const single = await c.query(
    `SELECT stepping.job_enqueue('[{"name":"roles.produced","args":{"n":1}}]') AS id`,
  );
  const batch = await c.query(
    `SELECT job_id FROM stepping.job_enqueue_batch('[{"steps":[{"name":"roles.produced","args":{"n":2}}]},{"steps":[{"name":"roles.produced","args":{"n":3}}]}]') ORDER BY ord`,
  );
  assert.equal(batch.rows.length, 2);

  const ps = createStepping({ connectionString: producer.url() });
  const pool = new pg.Pool({ connectionString: producer.url(), max: 2 });
  const db = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) });
  try {
    // Its own pg transaction: rolled back, then committed.
    await c.query('BEGIN');
    const rolledBack = await ps.enqueue(c, [step({ n: 4 })]);
    await c.query('ROLLBACK');
    assert.equal(await ps.getJob(rolledBack), null);
    await c.query('BEGIN');
    const committed = await ps.enqueue(c, [step({ n: 5 })]);
    await c.query('COMMIT');
    // A Kysely transaction: committed, then one that throws.
    const viaKysely = await db.transaction().execute(async (trx) => ps.enqueue(trx, [step({ n: 6 })]));
    await assert.rejects(
      db.transaction().execute(async (trx) => {
        await ps.enqueue(trx, [step({ n: 7 })], { queue: 'roles-rolled-back' });
        throw new Error('business rule failed');
      }),
      /business rule failed/,
    );
    const rolled = await h.pool.query(
      `SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = 'roles-rolled-back'`,
    );
    assert.equal(rolled.rows[0].n, 0);

    const ids = [single.rows[0].id, ...batch.rows.map((r) => r.job_id), committed, viaKysely].map(String);
    const outputs = [];
    for (const id of ids) {
      const finished = await ps.waitForJob(id, { timeoutMs: 20_000 });
      assert.equal(finished.status, 'succeeded');
      outputs.push(finished.output);
    }
    assert.deepEqual(
      outputs,
      [1, 2, 3, 5, 6].map((n) => ({ doubled: n * 2 })),
    );
    assert.equal((await ps.getJob(committed))?.status, 'succeeded');
    const steps = await ps.steps(committed);
    assert.deepEqual(
      steps.map((s) => [s.name, s.status, s.result]),
      [['roles.produced', 'succeeded', { doubled: 10 }]],
    );

    // What a producer may not do, through the driver.
    await assert.rejects(ps.cancel(committed), { code: '42501' });
    await assert.rejects(ps.retry(committed), { code: '42501' });
    await assert.rejects(ps.prune(), { code: '42501' });
  } finally {
    await db.destroy();
    await ps.close();
  }
});

test('worker: a worker connected as the worker role claims, heartbeats, completes, fails and releases', async () => {
  const heartbeat = async (jobId: string) => {
    const { rows } = await h.pool.query(
      `SELECT updated_at > claimed_at AS beat FROM stepping.jobs WHERE id = $1`,
      [jobId],
    );
    return rows[0].beat === true;
  };
  const flaky = defineStep(
    'roles.w.flaky',
    async (_args: unknown, ctx) => {
      if (ctx.attempt === 1) throw new Error('first attempt fails');
      return { attempt: ctx.attempt };
    },
    { backoff: { baseMs: 1, maxMs: 1 } },
  );
  const beating = defineStep('roles.w.beat', async (_args: unknown, ctx) => {
    await eventually(() => heartbeat(ctx.jobId), 20_000, 'a heartbeat');
    return 'beat';
  });
  const holdStarted = deferred<string>();
  const hold = defineStep('roles.w.hold', async (_args: unknown, ctx) => {
    holdStarted.resolve(ctx.jobId);
    await new Promise<void>((resolve) =>
      ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
  });
  const errors: WorkerEventMap['error'][] = [];
  const w = createWorker({
    connectionString: worker.url(),
    steps: [flaky, beating, hold],
    // Heartbeats every 100 ms (the lease stays 30 s); a short grace so stop() releases.
    heartbeatMs: 100,
    gracefulStopMs: 100,
  });
  w.on('error', (e) => errors.push(e));
  await w.start();
  let stopped = false;
  try {
    const id = await h.stepping.enqueue([flaky({}), beating({})]);
    const finished = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
    assert.equal(finished.status, 'succeeded');
    assert.deepEqual(finished.results, [{ attempt: 2 }, 'beat']);
    assert.deepEqual(
      (await h.stepping.steps(id)).map((s) => [s.attempts, s.lastError]),
      [
        [2, 'first attempt fails'],
        [1, null],
      ],
    );

    const holdId = await h.stepping.enqueue([hold({})]);
    assert.equal(await holdStarted.promise, holdId);
    await w.stop();
    stopped = true;
    assert.deepEqual(await jobRow(holdId), {
      status: 'pending',
      attempt: 0,
      token: null,
      cancel_requested: false,
    });
    assert.deepEqual(errors, []);
  } finally {
    if (!stopped) await w.stop();
  }
});

test('worker: may not create or change schedules (a schedule enqueues jobs); a worker declaring schedules needs the operator role too', async () => {
  // An operator's schedule, and what a worker credential tried to do with it.
  await h.stepping.schedule('roles.nightly', '0 3 * * *', [{ name: 'roles.report', args: { to: 'cfo' } }]);
  const c = await worker.client();
  const job = JSON.stringify({
    steps: [{ name: 'roles.report', args: { to: 'attacker' } }],
    priority: 32767,
  });
  for (const name of ['roles.nightly', 'roles.evil']) {
    const state = await sqlState(
      c,
      `SELECT stepping.schedule_upsert($1, '* * * * *', 'UTC', $2::jsonb, stepping.engine_now(), 1000, true)`,
      [name, job],
    );
    assert.equal(state, '42501', name);
  }
  const { rows } = await h.pool.query(
    `SELECT name, job->'steps'->0->'args'->>'to' AS to, backfill, paused FROM stepping.schedules ORDER BY name`,
  );
  assert.deepEqual(rows, [{ name: 'roles.nightly', to: 'cfo', backfill: 0, paused: false }]);

  // The schedules option of a worker connected as the worker role alone: a clear refusal at start.
  const report = defineStep('roles.report', async () => undefined);
  const schedules = [{ name: 'roles.declared', cron: '0 4 * * *', steps: [report({})] }];
  const alone = createWorker({ connectionString: worker.url(), steps: [report], schedules });
  await assert.rejects(alone.start(), (error: Error) => {
    assert.equal(error.name, 'ConfigError');
    assert.match(error.message, /schedules option needs the stepping_operator role/);
    return true;
  });
  await alone.stop();
  // With the operator role too, the same worker declares them.
  const both = await roles.create('rl_wo', { memberOf: ['stepping_worker', 'stepping_operator'] });
  const declaring = createWorker({ connectionString: both.url(), steps: [report], schedules });
  await declaring.start();
  await declaring.stop();
  const declared = await h.pool.query(
    `SELECT count(*)::int AS n FROM stepping.schedules WHERE name = 'roles.declared'`,
  );
  assert.equal(declared.rows[0].n, 1);
  await h.pool.query(`DELETE FROM stepping.schedules`);
});

test('operator: reads every view, cancels, retries and prunes, with the driver and the stepping CLI', async () => {
  const os = createStepping({ connectionString: operator.url() });
  const env = { DATABASE_URL: operator.url() };
  try {
    const running = await runningJob('roles.op.running');
    assert.equal(await os.cancel(running.id), 'running');
    assert.equal((await jobRow(running.id)).cancel_requested, true);
    const failedId = await failedJob('roles.op.failed');
    await os.retry(failedId);
    assert.equal((await os.getJob(failedId))?.status, 'pending');
    assert.equal((await os.steps(failedId)).length, 1);
    await assert.rejects(os.enqueue([{ name: 'roles.op.enqueue' }]), { code: '42501' });

    // The CLI as the operator.
    const status = await cli(['status', '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    assert.ok(
      (JSON.parse(status.stdout) as { queues: { queue: string }[] }).queues.some(
        (r) => r.queue === 'roles.op.failed',
      ),
    );
    const jobs = await run('src/cli/stepping.ts', ['jobs', '--json'], env);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.ok((JSON.parse(jobs.stdout) as { job_id: string }[]).some((r) => String(r.job_id) === failedId));
    const job = await cli(['job', failedId, '--json'], env);
    assert.equal(job.code, 0, job.stderr);
    const other = await runningJob('roles.op.cli-cancel');
    const cancel = await cli(['cancel', other.id], env);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal((await jobRow(other.id)).cancel_requested, true);
    const cliFailed = await failedJob('roles.op.cli-retry');
    const retry = await cli(['retry', cliFailed], env);
    assert.equal(retry.code, 0, retry.stderr);
    assert.equal((await jobRow(cliFailed)).status, 'pending');

    // Prune: a finished job, 8 days later on the engine's clock.
    const doneJob = await runningJob('roles.op.prune');
    await h.pool.query(`SELECT * FROM stepping.step_complete(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[])`, [
      doneJob.id,
      doneJob.token,
    ]);
    await h.shiftClock('8 days');
    const prune = await cli(['prune', '--json'], env);
    assert.equal(prune.code, 0, prune.stderr);
    assert.ok((JSON.parse(prune.stdout) as { deleted: number }).deleted >= 1);
    assert.equal(await os.getJob(doneJob.id), null);
    assert.equal(await os.prune(), 0);
  } finally {
    await os.close();
  }
});

test('stepping roles prints the SQL for a DBA; migrate without CREATEROLE names the missing roles, and grants them once they exist', async () => {
  const schema = `rl_${TEST_RUN_ID}`;
  const names = ['producer', 'worker', 'operator'].map((k) => `${schema}_${k}`);
  const mig = await roles.create('rl_mig');
  await h.pool.query(`GRANT CREATE ON DATABASE "${h.dbName}" TO "${mig.name}"`);
  try {
    // No database needed.
    const sql = await cli(['roles', '--schema', schema], {});
    assert.equal(sql.code, 0, sql.stderr);
    for (const name of names) {
      assert.match(sql.stdout, new RegExp(`^CREATE ROLE "${name}" NOLOGIN;`, 'm'));
      assert.match(sql.stdout, new RegExp(`^-- GRANT "${name}" TO \\w+;$`, 'm'));
    }
    const asJson = await cli(['roles', '--schema', schema, '--json'], {});
    assert.deepEqual(JSON.parse(asJson.stdout), {
      schema,
      roles: { producer: names[0], worker: names[1], operator: names[2] },
      sql: sql.stdout.trimEnd(),
    });
    assert.equal((await cli(['roles', '--schema', 'public'], {})).code, 2);

    const first = await cli(['migrate', '--schema', schema], { DATABASE_URL: mig.url() });
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      new RegExp(`^migrated schema rl_\\w+: applied ${MIGRATIONS.length} migrations\n$`),
    );
    assert.match(first.stderr, new RegExp(`roles ${names.join(', ')} do not exist`));
    assert.match(first.stderr, new RegExp(`stepping roles --schema ${schema}`));
    const exist = await h.pool.query(`SELECT rolname FROM pg_roles WHERE rolname = ANY ($1)`, [names]);
    assert.deepEqual(exist.rows, []);

    // The DBA runs the printed SQL; the next migrate grants.
    await h.pool.query(sql.stdout);
    const second = await cli(['migrate', '--schema', schema], { DATABASE_URL: mig.url() });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stderr, '');
    const granted = await h.pool.query(
      `SELECT has_function_privilege($1, $4, 'EXECUTE') AS p, has_function_privilege($2, $5, 'EXECUTE') AS w,
              has_function_privilege($3, $6, 'EXECUTE') AS o, has_function_privilege($1, $5, 'EXECUTE') AS p_claims`,
      [
        ...names,
        `${schema}.job_enqueue_batch(jsonb)`,
        `${schema}.step_claim(text, text[], text[], integer, integer)`,
        `${schema}.job_cancel(bigint, boolean)`,
      ],
    );
    assert.deepEqual(granted.rows[0], { p: true, w: true, o: true, p_claims: false });
    const third = await cli(['migrate', '--schema', schema, '--json'], { DATABASE_URL: mig.url() });
    assert.deepEqual(JSON.parse(third.stdout), { schema, applied: [], missingRoles: [] });
  } finally {
    await h.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    for (const name of names) await h.pool.query(`DROP ROLE IF EXISTS "${name}"`);
  }
});

test("the README's role table lists exactly each role's grants (src/db/roles.ts)", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const kind of ROLE_KINDS) {
    const row = readme.split('\n').find((line) => line.startsWith(`| \`<schema>_${kind}\` |`));
    assert.ok(row, `no README row for ${kind}`);
    const [, , functions, relations] = row
      .split('|')
      .map((cell) => [...cell.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]));
    assert.deepEqual(functions, ROLE_GRANTS[kind].functions, `${kind}: functions`);
    assert.deepEqual(relations, ROLE_GRANTS[kind].relations, `${kind}: relations`);
    assert.deepEqual([...ROLE_GRANTS[kind].functions].sort(), [...ALLOWED[kind].functions].sort());
    assert.deepEqual([...ROLE_GRANTS[kind].relations].sort(), [...ALLOWED[kind].relations].sort());
  }
});
