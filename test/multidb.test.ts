import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import pg from 'pg';

import { withDatabase } from '../scripts/embedded-db.js';
import { createStepping, createWorker, defineStep, migrateDatabases, type Worker } from '../src/index.js';
import { ActivityWatch } from '../src/multidb/activity-watch.js';
import { createTestDatabase, serverUrl } from './support/db.js';
import { eventually } from './support/harness.js';
import { MIGRATIONS } from './support/migrations.js';

/** N fresh migrated databases, each with an `effects` table. */
async function tenants(n: number, label: string): Promise<{ id: string; url: string }[]> {
  const dbs = await Promise.all(Array.from({ length: n }, (_, i) => createTestDatabase(`${label}_${i}`)));
  await Promise.all(
    dbs.map(async (d) => {
      const c = new pg.Client(d.url);
      await c.connect();
      await c.query('CREATE TABLE effects (job_id bigint, database text)');
      await c.end();
    }),
  );
  return dbs.map((d) => ({ id: d.name, url: d.url }));
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  // A cleanup that hangs is named, so a file timeout says where it stopped.
  for (const [i, c] of cleanups.reverse().entries()) {
    const slow = setTimeout(() => console.log(`# cleanup ${i} still running after 10 s`), 10_000);
    await c();
    clearTimeout(slow);
  }
  // Everything is stopped: the file should end now. If something still holds the process
  // (once seen in CI: all tests passed, then the file timed out), say what.
  setTimeout(
    () =>
      console.log(`# still alive 20 s after the cleanups: ${process.getActiveResourcesInfo().join(', ')}`),
    20_000,
  ).unref();
});

/** A worker that records every step in its own database's `effects`, through ctx.tx. */
const record = defineStep(
  'mt.record',
  async (_args: unknown, ctx) => {
    await ctx.tx!.query('INSERT INTO effects VALUES ($1, $2)', [ctx.jobId, ctx.database]);
  },
  { transactional: true },
);
const noop = defineStep('mt.noop', async () => {});

function startWorker(options: Parameters<typeof createWorker>[0]): Worker {
  const w = createWorker(options);
  cleanups.push(() => w.stop());
  return w;
}

async function enqueueIn(url: string, n: number, step = record): Promise<string[]> {
  const s = createStepping({ connectionString: url });
  try {
    const r = await s.enqueueMany(
      undefined,
      Array.from({ length: n }, () => ({ steps: [step({})] })),
    );
    return r.map((x) => x.jobId);
  } finally {
    await s.close();
  }
}

/**
 * One connection per database for this file's own reads, kept: a new one per probe (every
 * 20-25 ms while a test waits) cost the server a backend start each, about 1,200 in the
 * 20-database test alone. A connection that fails (its database went away) is replaced
 * once.
 */
const readers = new Map<string, Promise<pg.Client>>();
cleanups.push(async () => {
  for (const reader of readers.values()) await reader.then((c) => c.end()).catch(() => {});
  readers.clear();
});

function reader(url: string): Promise<pg.Client> {
  let client = readers.get(url);
  if (!client) {
    const c = new pg.Client(url);
    // A terminated connection emits 'error'; the next read replaces it.
    c.on('error', () => readers.delete(url));
    client = c.connect().then(() => c);
    client.catch(() => readers.delete(url));
    readers.set(url, client);
  }
  return client;
}

async function readOne(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  for (let attempt = 0; ; attempt++) {
    const client = reader(url);
    try {
      return await (await client).query(sql, params);
    } catch (error) {
      if (readers.get(url) === client) readers.delete(url);
      await client.then((c) => c.end()).catch(() => {});
      if (attempt > 0) throw error;
    }
  }
}

async function countIn(url: string, sql: string): Promise<number> {
  return Number((await readOne(url, sql)).rows[0].n);
}

/** The worker's connections to these databases (application_name is set by the worker). */
async function ourConnections(databases: string[]): Promise<number> {
  const { rows } = await readOne(
    withDatabase(serverUrl(), 'postgres'),
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE application_name = 'stepping-worker' AND datname = ANY ($1)`,
    [databases],
  );
  return rows[0].n as number;
}

/**
 * Waits until `n` jobs of `d` have succeeded. A timeout says what the worker and the
 * database were doing, so a slow run can be told from a stuck one.
 */
async function succeededIn(w: Worker, d: { id: string; url: string }, n: number): Promise<void> {
  try {
    await eventually(
      () =>
        countIn(d.url, `SELECT count(*) AS n FROM stepping.jobs WHERE status = 'succeeded'`).then(
          (k) => k === n,
        ),
      // A guard against a hang, not a speed goal: with 20 databases sharing 12 connections,
      // every connection opened and closed on a machine loaded by other suites (measured:
      // 30 s was not enough with two CPU hogs beside this file).
      90_000,
      `${n} succeeded jobs in ${d.id}`,
    );
  } catch (error) {
    const c = new pg.Client(d.url);
    await c.connect();
    const { rows } = await c
      .query(
        `SELECT status, count(*)::int AS n, max(attempt) AS attempts, max(locked_by) AS holder,
                max(available_at) - stepping.engine_now() AS due_in
         FROM stepping.jobs GROUP BY status`,
      )
      .finally(() => c.end());
    const state = w.databaseStates().find((s) => s.database === d.id);
    throw new Error(
      `${(error as Error).message}; jobs: ${JSON.stringify(rows)}; worker: ${JSON.stringify(state)}; ` +
        `all: ${JSON.stringify(w.databaseStates().map((s) => [s.state, s.listening, s.running]))}`,
    );
  }
}

test('one worker serves 20 databases within its connection budget; each job runs in its own database', async () => {
  const dbs = await tenants(20, 'mt20');
  // Two jobs each: several units of one database run at once. (Five each made this test
  // the suite's longest, about 500 of its 2,900 connection starts.)
  for (const d of dbs) await enqueueIn(d.url, 2);
  const w = startWorker({
    databases: dbs.map((d) => ({ id: d.id, connectionString: d.url })),
    steps: [record],
    concurrency: 8,
    maxConnections: 12,
    pollIntervalMs: 100,
    idlePollMaxMs: 400,
  });
  // Connections the budget closes for waiting databases are its own doing, not errors.
  const poolErrors: string[] = [];
  w.on('error', (e) => {
    if (e.during === 'pool') poolErrors.push(`${e.error.name}: ${e.error.message}`);
  });
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await ourConnections(dbs.map((d) => d.id)));
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  await w.start();
  try {
    for (const d of dbs) await succeededIn(w, d, 2);
    // New work in a database that has no listener is still found: the activity watch sees
    // the inserts (the safety poll, 20 × 2 s, is far longer than this test waits).
    for (const d of dbs) await enqueueIn(d.url, 1);
    for (const d of dbs) await succeededIn(w, d, 3);
  } finally {
    // Also on a failure: a sampler left running kept the file alive until its timeout.
    sampling = false;
    await sampler;
  }
  for (const d of dbs) {
    // Every effect landed in its own database, written by the step's own transaction.
    const c = new pg.Client(d.url);
    await c.connect();
    try {
      const { rows } = await c.query('SELECT DISTINCT database FROM effects');
      assert.deepEqual(rows, [{ database: d.id }]);
    } finally {
      await c.end();
    }
  }
  assert.ok(peak > 0, 'the sampler saw the worker connected');
  assert.ok(peak <= 12, `connections peaked at ${peak}, over the budget of 12`);
  assert.deepEqual(poolErrors, []);
  const listening = w.databaseStates().filter((s) => s.listening).length;
  // A quarter of the budget (3) for listeners; the server's activity watch holds one of them.
  assert.equal(listening, 2, 'listeners take at most a quarter of the budget, the activity watch one of it');
  await w.stop();
});

test('tenants added and removed at run time are picked up and drained', async () => {
  const [a, b] = await tenants(2, 'mtdyn');
  let list = [{ id: 'tenant-a', connectionString: a!.url }];
  const w = startWorker({
    databases: { list: () => list, refreshMs: 100 },
    steps: [record],
    concurrency: 4,
    pollIntervalMs: 100,
  });
  const removed: string[] = [];
  const up: string[] = [];
  w.on('database:removed', (e) => removed.push(e.database));
  w.on('database:up', (e) => up.push(e.database));
  await w.start();
  await enqueueIn(a!.url, 3);
  await eventually(
    () => countIn(a!.url, 'SELECT count(*) AS n FROM effects').then((n) => n === 3),
    20_000,
    'tenant a',
  );

  list = [...list, { id: 'tenant-b', connectionString: b!.url }];
  await enqueueIn(b!.url, 3);
  await eventually(
    () => countIn(b!.url, 'SELECT count(*) AS n FROM effects').then((n) => n === 3),
    20_000,
    'tenant b',
  );
  assert.deepEqual(up, ['tenant-a', 'tenant-b']);
  const { rows } = await new pg.Pool({ connectionString: b!.url, max: 1 }).query(
    'SELECT DISTINCT database FROM effects',
  );
  assert.deepEqual(rows, [{ database: 'tenant-b' }]);

  list = [list[1]!];
  await eventually(() => removed.includes('tenant-a'), 10_000, 'tenant a removed');
  // A server process leaves pg_stat_activity a moment after its client closed the
  // connection (seen once: 1 left right after the event): waited for, not read once.
  await eventually(
    async () =>
      (await countIn(
        a!.url,
        `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'stepping-worker'`,
      )) === 0,
    10_000,
    'the removed tenant to have no connections left',
  );
  await enqueueIn(a!.url, 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(
    await countIn(a!.url, 'SELECT count(*) AS n FROM effects'),
    3,
    'a removed tenant is no longer served',
  );
  await w.stop();
});

test('a listener permit a removed database held is handed to a database without one, which keeps being served', async () => {
  const [a, b, c] = await tenants(3, 'mthand');
  // A budget of 8: a quarter (2) for listeners and the activity watch; the watch takes
  // one, the first database the other, so b and c start without a listener.
  let list = [
    { id: 'hand-a', connectionString: a!.url },
    { id: 'hand-b', connectionString: b!.url },
    { id: 'hand-c', connectionString: c!.url },
  ];
  const w = startWorker({
    databases: { list: () => list, refreshMs: 100 },
    steps: [record],
    concurrency: 2,
    maxConnections: 8,
  });
  await w.start();
  const listening = () =>
    w
      .databaseStates()
      .filter((s) => s.state === 'up' && s.listening)
      .map((s) => s.database);
  await eventually(() => w.databaseStates().filter((s) => s.state === 'up').length === 3, 20_000, 'all up');
  assert.deepEqual(listening(), ['hand-a']);
  list = list.slice(1);
  await eventually(
    () => !w.databaseStates().some((s) => s.database === 'hand-a') && listening().length === 1,
    20_000,
    'the permit handed on',
  );
  const [heir] = listening();
  assert.ok(heir === 'hand-b' || heir === 'hand-c', `heir ${heir}`);
  const url = heir === 'hand-b' ? b!.url : c!.url;
  await enqueueIn(url, 1);
  await eventually(
    () => countIn(url, 'SELECT count(*) AS n FROM effects').then((n) => n === 1),
    10_000,
    'the heir to run its job',
  );
  await w.stop();
});

test('a database that is down, goes down mid-run, or is not migrated is reported while the others run', async () => {
  const [ok, flaky] = await tenants(2, 'mtdown');
  const { name: bare, url: bareUrl } = await createTestDatabase('mtdown_bare', { empty: true }); // "not migrated"
  const admin = new pg.Client(withDatabase(serverUrl(), 'postgres'));
  await admin.connect();
  cleanups.push(() => admin.end());
  const down: string[] = [];
  const up: string[] = [];
  const flakyName = new URL(flaky!.url).pathname.slice(1);
  const w = startWorker({
    databases: [
      { id: 'ok', connectionString: ok!.url },
      { id: 'flaky', connectionString: flaky!.url },
      { id: 'bare', connectionString: bareUrl },
    ],
    steps: [record],
    concurrency: 4,
    pollIntervalMs: 100,
  });
  w.on('database:down', (e) => down.push(e.database));
  w.on('database:up', (e) => up.push(e.database));
  const errors: string[] = [];
  w.on('error', (e) => errors.push(e.database));
  await w.start();
  await enqueueIn(flaky!.url, 2);
  await eventually(
    () => countIn(flaky!.url, 'SELECT count(*) AS n FROM effects').then((n) => n === 2),
    20_000,
    'flaky, while up',
  );
  await eventually(() => down.includes('bare'), 10_000, 'the unmigrated database reported');
  assert.match(
    w.databaseStates().find((s) => s.database === 'bare')!.lastError ?? '',
    /run `stepping migrate`/,
  );

  // The flaky database goes away mid-run: connections refused and existing ones killed.
  await admin.query(`ALTER DATABASE "${flakyName}" ALLOW_CONNECTIONS false`);
  await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, [flakyName]);
  await eventually(() => errors.includes('flaky'), 10_000, 'the lost database reported');
  // The others keep running.
  await enqueueIn(ok!.url, 4);
  await eventually(
    () => countIn(ok!.url, 'SELECT count(*) AS n FROM effects').then((n) => n === 4),
    20_000,
    'the healthy tenant',
  );

  // It comes back: picked up without a restart.
  await admin.query(`ALTER DATABASE "${flakyName}" ALLOW_CONNECTIONS true`);
  await enqueueIn(flaky!.url, 2);
  await eventually(
    () => countIn(flaky!.url, 'SELECT count(*) AS n FROM effects').then((n) => n === 4),
    30_000,
    'the recovered tenant',
  );
  assert.ok(up.includes('ok') && up.includes('flaky'));
  assert.ok(!up.includes('bare'));
  await w.stop();
  await admin.query(`DROP DATABASE "${bare}" WITH (FORCE)`);
});

test('fairness: 19 quiet tenants are not stuck behind a hot one with 10,000 queued steps', async () => {
  const dbs = await tenants(20, 'mtfair');
  const [hot, ...quiet] = dbs;
  await enqueueIn(hot!.url, 10_000, noop);
  for (const d of quiet) await enqueueIn(d.url, 10, noop);
  const w = startWorker({
    databases: dbs.map((d) => ({ id: d.id, connectionString: d.url })),
    steps: [noop],
    concurrency: 16,
    // Up to 30 connections: the suite runs 4 files at a time on a server of 100.
    maxConnections: 30,
  });
  let hotDone = 0;
  let quietDone = 0;
  let hotDoneWhenQuietFinished = -1;
  w.on('job:succeeded', (e) => {
    if (e.database === hot!.id) hotDone++;
    else if (++quietDone === 190) hotDoneWhenQuietFinished = hotDone;
  });
  await w.start();
  // Until the quiet tenants are done or the hot one is half done, whichever comes first: the
  // rest of the hot backlog proves nothing here, and draining it cost the suite about 30 s.
  await eventually(() => quietDone === 190 || hotDone >= 5000, 120_000, 'the quiet tenants to finish');
  await w.stop();
  assert.ok(
    hotDoneWhenQuietFinished >= 0,
    `quiet tenants had done ${quietDone} of 190 jobs after ${hotDone} hot jobs`,
  );
  console.log(
    `# fairness: the 190 quiet jobs were all done when the hot tenant had done ${hotDoneWhenQuietFinished} of 10000`,
  );
  assert.ok(
    hotDoneWhenQuietFinished < 5000,
    `quiet tenants finished only after ${hotDoneWhenQuietFinished} hot jobs`,
  );
});

test('migrateDatabases migrates every database concurrently and reports a broken one without stopping', async () => {
  // Empty databases named like every other of this run, so the run drops them (before,
  // named without the run's prefix, three were left on the server by every run).
  const fresh = await Promise.all(
    [1, 2, 3].map(async (i) => (await createTestDatabase(`mig_${i}`, { empty: true })).url),
  );
  const broken = withDatabase(serverUrl(), 'stepping_t_no_such_database');
  const seen: string[] = [];
  const results = await migrateDatabases([...fresh, broken], {
    concurrency: 2,
    onResult: (r, done, total) => seen.push(`${done}/${total} ${r.ok ? 'ok' : 'failed'}`),
  });
  assert.equal(results.length, 4);
  assert.deepEqual(
    results.map((r) => r.ok),
    [true, true, true, false],
  );
  assert.match(results[3]!.error ?? '', /does not exist/);
  assert.ok(results.slice(0, 3).every((r) => r.applied.length === MIGRATIONS.length));
  assert.ok(results.every((r) => Array.isArray(r.missingRoles) && r.missingRoles.length === 0));
  assert.equal(seen.length, 4);
  assert.equal(seen.at(-1)!.startsWith('4/4'), true);
  for (const url of fresh) {
    assert.equal(await countIn(url, `SELECT count(*) AS n FROM pg_proc WHERE proname = 'step_claim'`), 1);
  }
});

test('an activity watch closed while a database was starting takes no watcher: no timer keeps the process alive', async () => {
  // The worker closes its watches when it stops; a database still starting then adds itself
  // to one. Before, that started a new interval on the closed watch, and the process
  // (seen: a test file) never exited.
  const watch = new ActivityWatch(null, () => {});
  await watch.close();
  const unwatch = watch.add({
    datname: 'late',
    config: {},
    wake: () => {},
    watched: () => {},
    ownInserts: 0,
  });
  assert.equal(watch.size, 0);
  unwatch();
});

test('a database leaving the activity watch while a reading runs: the connection ends after the reading, and no error is reported', async () => {
  // Before, the watch ended its connection at once when the database it was connected to
  // left (a worker stopping winds its databases down one by one), under a reading in
  // flight, and reported that reading's failure ("Connection terminated") as an error.
  const { url, name } = await createTestDatabase('mtwatch');
  const errors: string[] = [];
  const watch = new ActivityWatch(null, (error) => errors.push(error.message));
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let reading: () => void = () => {};
  const readingStarted = new Promise<void>((resolve) => (reading = resolve));
  const query = pg.Client.prototype.query;
  // Holds the watch's reading until the database has left.
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (typeof args[0] === 'string' && args[0].includes('pg_stat_database')) {
      reading();
      return gate.then(() => (query as (...a: unknown[]) => unknown).apply(this, args));
    }
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  try {
    const unwatch = watch.add({
      datname: name,
      config: { connectionString: url },
      wake: () => {},
      watched: () => {},
      ownInserts: 0,
    });
    const look = watch.firstLook();
    await readingStarted;
    unwatch();
    release();
    await look;
  } finally {
    pg.Client.prototype.query = query;
    await watch.close();
  }
  assert.deepEqual(errors, []);
});
