/**
 * A hostile tenant in many-databases mode: the owner of one served database replaces the
 * engine's functions in it (or holds locks on its tables) so that the worker's calls there
 * never answer. The worker's shared slots and connections must not stay with that
 * database: every other tenant's jobs still complete. Budgets are kept tiny, so that a
 * single slot or connection held forever would starve the other tenant.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import pg from 'pg';

import { createStepping, createWorker, defineStep, type StepDefinition, type Worker } from '../src/index.js';
import { createTestDatabase } from './support/db.js';
import { deferred, eventually } from './support/harness.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** A migrated database of its own, with a pool for the test's own queries. */
async function tenant(label: string): Promise<{ id: string; url: string; pool: pg.Pool }> {
  const { url, name } = await createTestDatabase(`hostile_${label}`);
  console.log(`# database ${name}`);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  // Its idle connections are terminated with the rest at the end.
  pool.on('error', () => {});
  cleanups.push(async () => {
    // The replaced functions never return on their own: end the backends still in them,
    // so the database can be dropped after the run.
    await pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    );
    await pool.end();
  });
  return { id: name, url, pool };
}

/**
 * What a hostile owner does: every overload of `stepping.<fn>` becomes a function that
 * never answers, and that catches the cancel a statement_timeout would send (so only
 * closing the connection ends the worker's wait).
 */
async function neverAnswer(pool: pg.Pool, fn: string): Promise<() => Promise<void>> {
  const { rows: saved } = await pool.query<{ def: string }>(
    `SELECT pg_get_functiondef(p.oid) AS def FROM pg_proc p
     WHERE p.pronamespace = 'stepping'::regnamespace AND p.proname = $1`,
    [fn],
  );
  await pool.query(`
    DO $$
    DECLARE f regprocedure;
    BEGIN
      FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
               WHERE p.pronamespace = 'stepping'::regnamespace AND p.proname = '${fn}'
      LOOP
        EXECUTE format(
          'CREATE OR REPLACE FUNCTION stepping.${fn}(%s) RETURNS %s LANGUAGE plpgsql AS $body$
           BEGIN
             LOOP
               BEGIN
                 PERFORM pg_catalog.pg_sleep(3600);
               EXCEPTION WHEN query_canceled THEN
                 NULL; -- a statement_timeout or a cancel request: keep sleeping
               END;
             END LOOP;
           END $body$',
          pg_get_function_arguments(f), pg_get_function_result(f));
      END LOOP;
    END $$`);
  // Puts the engine's functions back and ends the calls still waiting in the replacement
  // (the worker sees a lost connection, and tries again).
  return async () => {
    for (const { def } of saved) await pool.query(def);
    await pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'stepping-worker'
         AND state = 'active' AND query LIKE '%' || $1 || '(%'`,
      [fn],
    );
  };
}

/** Calls of `fn` the worker has waiting in this database now. */
async function callsWaitingIn(pool: pg.Pool, fn: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = 'stepping-worker'
       AND state = 'active' AND query LIKE '%' || $1 || '(%'`,
    [fn],
  );
  return rows[0]!.n;
}

/**
 * Server processes of the worker in this database. A call the worker gave up on leaves its
 * process running the replaced function (it never reads its socket again) unless the
 * worker ends it.
 */
async function workerProcessesIn(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = 'stepping-worker'`,
  );
  return rows[0]!.n;
}

/** After the worker stopped, none of its server processes is left running in `pool`'s database. */
async function noneLeftRunning(worker: Worker, pool: pg.Pool): Promise<void> {
  await worker.stop();
  await eventually(
    async () => (await workerProcessesIn(pool)) === 0,
    10_000,
    "the worker's server processes in the hostile database to end",
  );
}

/** Handler runs, by database, and a way to wait for a number of them. */
function runCounter() {
  const runs = new Map<string, number>();
  const waiters: { database: string; n: number; resolve: () => void }[] = [];
  return {
    note(database: string) {
      runs.set(database, (runs.get(database) ?? 0) + 1);
      for (const w of waiters.filter((x) => x.database === database && runs.get(database)! >= x.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    },
    reached(database: string, n: number): Promise<void> {
      if ((runs.get(database) ?? 0) >= n) return Promise.resolve();
      const d = deferred();
      waiters.push({ database, n, resolve: d.resolve });
      return d.promise;
    },
  };
}

function startWorker(options: Parameters<typeof createWorker>[0]): Worker {
  const w = createWorker(options);
  // Expected here: the hostile database's calls time out.
  w.on('error', () => {});
  cleanups.push(() => w.stop());
  return w;
}

type Tenant = Awaited<ReturnType<typeof tenant>>;
type WorkerOptions = Parameters<typeof createWorker>[0];

/**
 * One worker serving both tenants with the two steps (the budgets of `budget`), started,
 * and the first error the hostile database was set aside with (`database:down`).
 */
async function workerOfBoth(
  hostile: Tenant,
  good: Tenant,
  steps: StepDefinition<unknown, void>[],
  budget: Pick<WorkerOptions, 'concurrency' | 'maxConnections' | 'poolSize' | 'callTimeoutMs'>,
): Promise<{ worker: Worker; down: Promise<Error> }> {
  const worker = startWorker({
    databases: [
      { id: hostile.id, connectionString: hostile.url },
      { id: good.id, connectionString: good.url },
    ],
    steps,
    ...budget,
  });
  const down = deferred<Error>();
  worker.on('database:down', (e) => {
    if (e.database === hostile.id) down.resolve(e.error);
  });
  await worker.start();
  return { worker, down: down.promise };
}

/** Two steps that do nothing (the second ones of the tests' two-step jobs). */
function noopSteps(): [StepDefinition<unknown, void>, StepDefinition<unknown, void>] {
  return [defineStep('hostile.first', async () => {}), defineStep('hostile.second', async () => {})];
}

async function enqueueTwoStepJobs(
  url: string,
  n: number,
  steps: [StepDefinition<unknown, void>, StepDefinition<unknown, void>],
): Promise<string[]> {
  const s = createStepping({ connectionString: url });
  try {
    const jobs = await s.enqueueMany(
      undefined,
      Array.from({ length: n }, () => ({ steps: [steps[0]({}), steps[1]({})] })),
    );
    return jobs.map((j) => j.jobId);
  } finally {
    await s.close();
  }
}

async function allSucceed(url: string, jobIds: string[]): Promise<void> {
  const s = createStepping({ connectionString: url });
  try {
    for (const id of jobIds) {
      assert.equal((await s.waitForJob(id, { timeoutMs: 30_000 })).status, 'succeeded', `job ${id}`);
    }
  } finally {
    await s.close();
  }
}

test(
  'a tenant whose step_complete never answers keeps no slot: the other tenant still completes all its jobs',
  {
    timeout: 120_000,
  },
  async () => {
    const hostile = await tenant('complete_a');
    const good = await tenant('complete_b');
    await neverAnswer(hostile.pool, 'step_complete');
    const runs = runCounter();
    const first = defineStep('hostile.first', async (_args: unknown, ctx) => runs.note(ctx.database));
    const second = defineStep('hostile.second', async () => {});

    // Two slots: before the fix, the report of each hostile job's first step kept the slot
    // (its job's next step was to run in it), so two hung reports starved every tenant.
    await enqueueTwoStepJobs(hostile.url, 6, [first, second]);
    const { worker, down } = await workerOfBoth(hostile, good, [first, second], {
      concurrency: 2,
      maxConnections: 6,
      poolSize: 2,
      callTimeoutMs: 1000,
    });
    // Both slots have run a hostile first step and its report hangs in step_complete.
    await runs.reached(hostile.id, 2);
    await eventually(
      async () => (await callsWaitingIn(hostile.pool, 'step_complete')) > 0,
      30_000,
      'a hung report',
    );

    const jobs = await enqueueTwoStepJobs(good.url, 10, [first, second]);
    await allSucceed(good.url, jobs);

    // The hung calls ended as timeouts, and the database was set aside like one that is down.
    const error = await down;
    assert.equal(error.name, 'EngineCallTimeoutError');
    assert.match(error.message, /did not answer an engine call within 1000 ms/);
    await noneLeftRunning(worker, hostile.pool);
  },
);

test(
  'a report that waits on its database holds no slot, even before its call times out',
  {
    timeout: 120_000,
  },
  async () => {
    const hostile = await tenant('waiting_a');
    const good = await tenant('waiting_b');
    const restore = await neverAnswer(hostile.pool, 'step_complete');
    const runs = runCounter();
    const first = defineStep('hostile.first', async (_args: unknown, ctx) => runs.note(ctx.database));
    const second = defineStep('hostile.second', async () => {});
    const hostileJobs = await enqueueTwoStepJobs(hostile.url, 6, [first, second]);
    const { down } = await workerOfBoth(hostile, good, [first, second], {
      concurrency: 2,
      maxConnections: 6,
      poolSize: 2,
      // Far longer than the test: only slots freed when handlers return let the other tenant run.
      callTimeoutMs: 600_000,
    });
    let hostileDown = false;
    void down.then(() => (hostileDown = true));
    await runs.reached(hostile.id, 2);
    await eventually(
      async () => (await callsWaitingIn(hostile.pool, 'step_complete')) > 0,
      30_000,
      'a hung report',
    );

    const jobs = await enqueueTwoStepJobs(good.url, 10, [first, second]);
    await allSucceed(good.url, jobs);
    assert.equal(hostileDown, false, 'the hostile database was not set aside: no call timed out yet');

    // The owner puts the engine back: the hung reports are retried and every job finishes.
    await restore();
    await allSucceed(hostile.url, hostileJobs);
  },
);

for (const how of ['sleeps in step_claim', 'holds a lock on the jobs table'] as const) {
  test(
    `a tenant whose owner ${how} keeps no connection: the other tenant still completes all its jobs`,
    {
      timeout: 120_000,
    },
    async () => {
      const hostile = await tenant(how === 'sleeps in step_claim' ? 'claim_a' : 'lock_a');
      const good = await tenant(how === 'sleeps in step_claim' ? 'claim_b' : 'lock_b');
      const steps = noopSteps();
      await enqueueTwoStepJobs(hostile.url, 3, steps);
      let locker: pg.PoolClient | null = null;
      if (how === 'sleeps in step_claim') {
        await neverAnswer(hostile.pool, 'step_claim');
      } else {
        locker = await hostile.pool.connect();
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE stepping.jobs IN ACCESS EXCLUSIVE MODE');
      }
      try {
        // Two connections in all: the activity watch holds one, so a claim that never ends
        // would hold the other for good, and the other tenant could not even start.
        const { worker, down } = await workerOfBoth(hostile, good, steps, {
          concurrency: 4,
          maxConnections: 2,
          poolSize: 2,
          callTimeoutMs: 1000,
        });
        await eventually(
          async () => (await callsWaitingIn(hostile.pool, 'step_claim')) > 0,
          30_000,
          'a hung claim',
        );

        const jobs = await enqueueTwoStepJobs(good.url, 10, steps);
        await allSucceed(good.url, jobs);
        assert.equal((await down).name, 'EngineCallTimeoutError');
        await noneLeftRunning(worker, hostile.pool);
      } finally {
        await locker?.query('ROLLBACK');
        locker?.release();
      }
    },
  );
}

test(
  'a tenant whose step_claim answers with a 600-million-character column does not end the process',
  {
    timeout: 120_000,
  },
  async () => {
    const hostile = await tenant('huge_a');
    const good = await tenant('huge_b');
    // node-postgres makes every text field a string; one over Node's longest string
    // (2^29 - 24 characters) threw ERR_STRING_TOO_LONG in its socket listener, which ended
    // the process (this test file with it).
    // A STABLE SQL function, which the claim's SELECT inlines (the planner even folds the
    // 600 MB constant): the value is made once per claim and sent, not also copied into a
    // PL/pgSQL row and a tuplestore. Each copy of 600 MB costs this VM seconds, and the
    // worker claims again after each failure: the PL/pgSQL version took 20-45 s.
    const { rows: attributes } = await hostile.pool.query<{ attname: string }>(
      `SELECT attname FROM pg_catalog.pg_attribute
        WHERE attrelid = 'stepping.unit'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    );
    const columns = attributes.map(({ attname }) =>
      attname === 'job_id'
        ? '1::bigint'
        : attname === 'name'
          ? `pg_catalog.repeat(pg_catalog.repeat('x', 10000), 60000)`
          : `(NULL::stepping.unit).${attname}`,
    );
    await hostile.pool.query(`
    CREATE OR REPLACE FUNCTION stepping.step_claim(
      p_worker text, p_names text[], p_queues text[] DEFAULT NULL, p_limit integer DEFAULT 1,
      p_lease_ms integer DEFAULT NULL)
    RETURNS SETOF stepping.unit LANGUAGE sql STABLE AS $$ SELECT ${columns.join(', ')} $$`);
    const steps = noopSteps();
    await enqueueTwoStepJobs(hostile.url, 1, steps);
    const { worker, down } = await workerOfBoth(hostile, good, steps, {
      concurrency: 2,
      maxConnections: 6,
      poolSize: 2,
      // Making and sending 600 MB can take the server longer than the default 30 s on a loaded
      // machine; the call must end by the size guard, not by the timeout.
      callTimeoutMs: 600_000,
    });
    try {
      const error = await down;
      assert.equal(error.name, 'ResponseTooLargeError');
      assert.match(error.message, /more than the \d+ a Node\.js string can hold/);

      const jobs = await enqueueTwoStepJobs(good.url, 10, steps);
      await allSucceed(good.url, jobs);
    } finally {
      // Each claim in the hostile tenant makes 600 MB on the server (about 7 s of a core on a
      // slow machine, not ended by the client going away), and the worker tries again with
      // backoff: stopped at the file's end instead, they cost the suite about 30 s of CPU.
      const stopped = worker.stop();
      await hostile.pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
      await stopped;
    }
  },
);

test(
  'a tenant whose owner shadows pg_catalog names through its search_path cannot stall the worker',
  {
    timeout: 120_000,
  },
  async () => {
    const hostile = await tenant('path_a');
    const good = await tenant('path_b');
    // The worker's own catalog reads (is the schema migrated? what do the statistics say?)
    // named pg_catalog's functions and operators unqualified: with pg_catalog put after
    // public in the database's search_path, the owner's look-alikes ran instead.
    await hostile.pool.query(`
    CREATE FUNCTION public.to_regprocedure(text) RETURNS regprocedure LANGUAGE plpgsql AS $$
    BEGIN
      LOOP
        BEGIN
          PERFORM pg_catalog.pg_sleep(3600);
        EXCEPTION WHEN query_canceled THEN
          NULL;
        END;
      END LOOP;
    END $$;
    CREATE FUNCTION public.slow_eq(name, text) RETURNS boolean LANGUAGE sql AS
      'SELECT pg_catalog.pg_sleep(3600) IS NULL';
    CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.slow_eq);
    DO $$ BEGIN
      EXECUTE format('ALTER DATABASE %I SET search_path = public, pg_catalog', current_database());
    END $$;
  `);
    const steps = noopSteps();
    // Two connections: the activity watch holds one, so a catalog read that never ends would
    // hold the other for good.
    const { worker } = await workerOfBoth(hostile, good, steps, {
      concurrency: 2,
      maxConnections: 2,
      poolSize: 2,
    });
    const jobs = await enqueueTwoStepJobs(good.url, 10, steps);
    await allSucceed(good.url, jobs);
    const hostileJobs = await enqueueTwoStepJobs(hostile.url, 2, steps);
    await allSucceed(hostile.url, hostileJobs);
    await noneLeftRunning(worker, hostile.pool);
  },
);
