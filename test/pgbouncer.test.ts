/**
 * Producers and the operator client through a real PgBouncer in transaction pooling mode,
 * with round robin over two warm server connections: each transaction of a client lands
 * on another server connection than the one before, so anything that leans on session
 * state fails here every time. Workers run against the server directly (their side is
 * covered elsewhere).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import pg from 'pg';

import { runOperatorCli } from '../src/cli/operator.js';
import { describeConnection, ListenCheck } from '../src/db/listen-check.js';
import { NotificationHub } from '../src/db/notifications.js';
import { waitForFinalState } from '../src/db/wait-for-job.js';
import {
  createStepping,
  defineStep,
  DuplicateJobError,
  EnqueueValidationError,
  FINAL_STATUSES,
  InvalidJobStateError,
  JobNotFoundError,
  type JobState,
} from '../src/index.js';
import { run, trackChildren } from './fixtures/processes.js';
import { CLIENT_NAMES, generatePrisma, openClient, ORDERS_DDL } from './support/clients.js';
import { serverUrl } from './support/db.js';
import { deferred, setup } from './support/harness.js';
import { type PgBouncer, startPgBouncer } from './support/pgbouncer.js';
import type { GeneratedPrisma } from './support/prisma.js';

const h = await setup(import.meta.url);
trackChildren();
await h.pool.query(ORDERS_DDL);

const bouncer: PgBouncer = await startPgBouncer(serverUrl(), { poolSize: 4 });
const viaBouncer = bouncer.url(h.dbName);
/** The producer/operator client, entirely through PgBouncer. */
const stepping = createStepping({ connectionString: viaBouncer });
const bouncerPool = new pg.Pool({ connectionString: viaBouncer, max: 4 });
after(async () => {
  await stepping.close();
  await bouncerPool.end();
  await bouncer.stop();
});

const held = new Map<string, Promise<void>>();
const record = defineStep('bouncer.record', async (_args: { orderId: string }) => {});
const hold = defineStep('bouncer.hold', async (args: { gate: string }) => {
  await held.get(args.gate);
});
// Fails its job's first run only: a retry (by the operator) then succeeds.
const failedOnce = new Set<string>();
const failing = defineStep('bouncer.fail-once', async (_args: Record<string, never>, ctx) => {
  if (failedOnce.has(ctx.jobId)) return;
  failedOnce.add(ctx.jobId);
  throw new Error('card declined');
});
await h.worker({ steps: [record, hold, failing], concurrency: 4 });

async function finalState(jobId: string): Promise<JobState> {
  return await h.stepping.waitForJob(jobId, { timeoutMs: 60_000 });
}

async function jobsInQueue(queue: string): Promise<number> {
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = $1', [
    queue,
  ]);
  return rows[0].n;
}

async function pidOf(client: pg.ClientBase): Promise<number> {
  return (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
}

describe('the PgBouncer harness', () => {
  test('pools transactions: one client’s consecutive statements run on different server connections', async () => {
    const config = await bouncer.admin('SHOW CONFIG');
    const setting = (key: string) => config.find((r) => r.key === key)?.value;
    assert.equal(setting('pool_mode'), 'transaction');
    assert.equal(setting('server_round_robin'), '1');

    const warm = await bouncer.warm(h.dbName, 2);
    assert.equal(new Set(warm).size, 2);
    const client = new pg.Client(viaBouncer);
    await client.connect();
    try {
      const first = await pidOf(client);
      const second = await pidOf(client);
      assert.notEqual(first, second);
      assert.deepEqual(new Set([first, second]), new Set(warm));
      // Session state does not follow the client: the hazard every test below runs under.
      await client.query(`SET stepping_test.marker = 'set-here'`);
      const { rows } = await client.query(`SELECT current_setting('stepping_test.marker', true) AS v`);
      assert.notEqual(rows[0].v, 'set-here');
    } finally {
      await client.end();
    }
  });
});

describe('producers through PgBouncer', () => {
  before(async () => {
    await bouncer.warm(h.dbName, 2);
  });

  test('enqueue and enqueueMany without a transaction commit at once', async () => {
    const id = await stepping.enqueue([record({ orderId: 'no-tx' })], { queue: 'pgb-no-tx' });
    const many = await stepping.enqueueMany(undefined, [
      { steps: [record({ orderId: 'no-tx-1' })], options: { queue: 'pgb-no-tx' } },
      { steps: [record({ orderId: 'no-tx-2' })], options: { queue: 'pgb-no-tx' } },
    ]);
    for (const jobId of [id, ...many.map((m) => m.jobId)]) {
      assert.equal((await finalState(jobId)).status, 'succeeded');
    }
  });

  test('a refused duplicate without a transaction inserts nothing', async () => {
    const holder = await stepping.enqueue([{ name: 'bouncer.parked', args: {} }], { key: 'pgb-dup' });
    await assert.rejects(
      stepping.enqueueMany(undefined, [
        { steps: [record({ orderId: 'dup-1' })], options: { queue: 'pgb-dup' } },
        {
          steps: [record({ orderId: 'dup-2' })],
          options: { queue: 'pgb-dup', key: 'pgb-dup', onDuplicate: 'error' },
        },
      ]),
      (e: unknown) => e instanceof DuplicateJobError && e.message.includes(holder),
    );
    assert.equal(await jobsInQueue('pgb-dup'), 0);
  });

  test('in a pg transaction: commit, rollback, and a rejected enqueue leaves it usable', async () => {
    const client = await bouncerPool.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO adapter_orders (id) VALUES ($1)', ['pgb-tx-1']);
      await assert.rejects(
        stepping.enqueue(client, [record({ orderId: 'x' })], { priority: 0.5 }),
        EnqueueValidationError,
      );
      const holder = await stepping.enqueue(client, [{ name: 'bouncer.parked', args: {} }], {
        key: 'pgb-tx-key',
      });
      await assert.rejects(
        stepping.enqueue(client, [record({ orderId: 'x' })], { key: 'pgb-tx-key', onDuplicate: 'error' }),
        DuplicateJobError,
      );
      const id = await stepping.enqueue(client, [record({ orderId: 'pgb-tx-1' })], { queue: 'pgb-tx' });
      await client.query('COMMIT');
      assert.equal((await finalState(id)).status, 'succeeded');
      assert.equal((await h.stepping.getJob(holder))?.status, 'pending');

      await client.query('BEGIN');
      await stepping.enqueue(client, [record({ orderId: 'pgb-tx-2' })], { queue: 'pgb-tx-rolled-back' });
      await client.query('ROLLBACK');
      assert.equal(await jobsInQueue('pgb-tx-rolled-back'), 0);
    } finally {
      client.release();
    }
  });
});

describe('every client’s transaction through PgBouncer', () => {
  let prisma: GeneratedPrisma;
  before(async () => {
    prisma = await generatePrisma();
    await bouncer.warm(h.dbName, 2);
  });
  after(async () => {
    await prisma?.remove();
  });

  for (const name of CLIENT_NAMES) {
    test(`${name}: commit runs the job, rollback leaves none, a refused duplicate leaves the transaction usable`, async () => {
      const client = await openClient(name, viaBouncer, { prisma, behindPgBouncer: true });
      const q = `pgb-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
      try {
        const holder = await stepping.enqueue([{ name: 'bouncer.parked', args: {} }], { key: `${q}-key` });
        const id = await client.transaction(async (tx, insertOrder) => {
          await insertOrder(`${q}-1`);
          await assert.rejects(
            stepping.enqueue(tx, [record({ orderId: 'x' })], { key: `${q}-key`, onDuplicate: 'error' }),
            DuplicateJobError,
          );
          await insertOrder(`${q}-2`);
          return await stepping.enqueue(tx, [record({ orderId: `${q}-1` })], { queue: q });
        });
        assert.equal((await finalState(id)).status, 'succeeded');
        assert.notEqual(id, holder);
        await assert.rejects(
          client.transaction(async (tx) => {
            await stepping.enqueue(tx, [record({ orderId: 'rolled-back' })], { queue: `${q}-rolled-back` });
            throw new Error('business rule failed');
          }),
          /business rule failed/,
        );
        assert.equal(await jobsInQueue(`${q}-rolled-back`), 0);
      } finally {
        await client.close();
      }
    });
  }
});

describe('the operator client through PgBouncer', () => {
  before(async () => {
    await bouncer.warm(h.dbName, 2);
  });

  test('getJob, steps, retry, cancel, prune, and waitForJob of a finished job', async () => {
    const failed = await h.stepping.enqueue([record({ orderId: 'a' }), failing({})], {
      queue: 'pgb-ops',
      maxAttempts: 1,
    });
    assert.equal((await finalState(failed)).status, 'failed');
    const job = await stepping.getJob(failed);
    assert.equal(job?.status, 'failed');
    assert.equal(job?.lastError, 'card declined');
    const steps = await stepping.steps(failed);
    assert.deepEqual(
      steps.map((s) => [s.name, s.status]),
      [
        ['bouncer.record', 'succeeded'],
        ['bouncer.fail-once', 'failed'],
      ],
    );
    // waitForJob's first read decides for a job that is already final.
    assert.equal((await stepping.waitForJob(failed, { timeoutMs: 60_000 })).status, 'failed');
    await stepping.retry(failed);
    assert.equal((await finalState(failed)).status, 'succeeded');
    await assert.rejects(stepping.retry(String(BigInt(failed) + 1000n)), JobNotFoundError);

    const pending = await stepping.enqueue([{ name: 'bouncer.parked', args: {} }], { queue: 'pgb-ops' });
    assert.equal(await stepping.cancel(pending), 'cancelled');
    await assert.rejects(stepping.cancel(pending), InvalidJobStateError);
    assert.equal((await stepping.prune({ olderThanMs: 0, statuses: ['cancelled'] })) >= 1, true);
    assert.equal(await stepping.getJob(pending), null);
  });

  test('the stepping CLI: status, jobs, job, retry, cancel, prune', async () => {
    const env = { DATABASE_URL: viaBouncer };
    const cli = async (...args: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await runOperatorCli(
        args,
        { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) },
        env,
      );
      return { code, stdout, stderr };
    };
    const failed = await h.stepping.enqueue([failing({})], { queue: 'pgb-cli', maxAttempts: 1 });
    assert.equal((await finalState(failed)).status, 'failed');
    const pending = await h.stepping.enqueue([{ name: 'bouncer.parked', args: {} }], { queue: 'pgb-cli' });

    // Once as the real bin in its own process, the rest in-process.
    const job = await run('src/cli/stepping.ts', ['job', failed, '--json'], env);
    assert.equal(job.code, 0, job.stderr);
    assert.equal((JSON.parse(job.stdout) as { job: { status: string } }).job.status, 'failed');

    const status = await cli('status', '--json');
    assert.equal(status.code, 0, status.stderr);
    assert.ok(
      (JSON.parse(status.stdout) as { queues: { queue: string }[] }).queues.some(
        (r) => r.queue === 'pgb-cli',
      ),
    );
    const jobs = await cli('jobs', '--status', 'failed', '--json');
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.ok((JSON.parse(jobs.stdout) as { job_id: string }[]).some((r) => String(r.job_id) === failed));
    assert.equal((await cli('retry', failed)).code, 0);
    assert.equal((await finalState(failed)).status, 'succeeded');
    const cancel = await cli('cancel', pending);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal((await h.stepping.getJob(pending))?.status, 'cancelled');
    const prune = await cli('prune', '--older-than', '0s', '--json');
    assert.equal(prune.code, 0, prune.stderr);
    assert.ok((JSON.parse(prune.stdout) as { deleted: number }).deleted >= 1);
    assert.equal(await h.stepping.getJob(pending), null);
  });
});

describe('LISTEN through PgBouncer', () => {
  const isFinal = (s: JobState) => (FINAL_STATUSES as readonly string[]).includes(s.status);
  const doneChannel = 'stepping_done';
  const probeChannel = 'stepping_probe';

  /** A job held in its step until `release()`; waiting can start before it finishes. */
  async function heldJob(): Promise<{ jobId: string; release: () => void }> {
    const gate = `gate-${Math.random().toString(36).slice(2)}`;
    const d = deferred();
    held.set(gate, d.promise);
    const jobId = await h.stepping.enqueue([hold({ gate })], { queue: 'pgb-wait' });
    return { jobId, release: () => d.resolve() };
  }

  test('is detected as not working (one clear note), while a direct listener works', async () => {
    const notes: string[] = [];
    const hub = new NotificationHub({ connectionString: viaBouncer });
    const direct = new NotificationHub({ connectionString: h.url });
    try {
      // Where the listener connects, without credentials (the embedded server's URL has a password).
      const where = describeConnection({ connectionString: viaBouncer });
      assert.equal(where, `127.0.0.1:${bouncer.port}/${h.dbName}`);
      assert.equal(describeConnection(bouncerPool), where);
      const check = new ListenCheck(hub, bouncerPool, probeChannel, {
        timeoutMs: 3000,
        describe: where,
        onUnavailable: (m) => notes.push(m),
      });
      assert.equal(await check.delivers(), false);
      assert.equal(await check.delivers(), false, 'the answer is kept');
      assert.equal(notes.length, 1);
      assert.match(notes[0]!, new RegExp(`LISTEN does not work on 127\\.0\\.0\\.1:${bouncer.port}/`));
      assert.match(notes[0]!, /PgBouncer in transaction pooling mode. Falling back to polling/);
      assert.match(notes[0]!, /listenConnectionString/);
      // The probe NOTIFY still goes through PgBouncer; only the listener is direct.
      const directCheck = new ListenCheck(direct, bouncerPool, probeChannel, {
        onUnavailable: (m) => notes.push(m),
      });
      assert.equal(await directCheck.delivers(), true);
      assert.equal(notes.length, 1);
    } finally {
      await hub.close();
      await direct.close();
    }
  });

  test('waiting through PgBouncer alone falls back to polling and sees the job finish', async () => {
    const hub = new NotificationHub({ connectionString: viaBouncer });
    try {
      const check = new ListenCheck(hub, bouncerPool, probeChannel, {
        timeoutMs: 3000,
        onUnavailable: () => {},
      });
      assert.equal(await check.delivers(), false);
      const { jobId, release } = await heldJob();
      const firstRead = deferred();
      const waiting = waitForFinalState({
        jobId,
        read: async () => {
          const state = await stepping.getJob(jobId);
          firstRead.resolve();
          return state;
        },
        isFinal,
        hub,
        doneChannel,
        listenCheck: check,
        pollMs: 200,
        // No deadline to wake at: only polling can end this wait (the test runner's timeout would fail it).
        timeoutMs: 3_600_000,
      });
      await firstRead.promise;
      release();
      assert.equal((await waiting).status, 'succeeded');
    } finally {
      await hub.close();
    }
  });

  test('with a direct listen connection, NOTIFY wakes the waiter (no polling)', async () => {
    const hub = new NotificationHub({ connectionString: h.url });
    try {
      const check = new ListenCheck(hub, bouncerPool, probeChannel);
      assert.equal(await check.delivers(), true);
      const { jobId, release } = await heldJob();
      let reads = 0;
      const firstRead = deferred();
      const waiting = waitForFinalState({
        jobId,
        read: async () => {
          reads++;
          const state = await stepping.getJob(jobId);
          firstRead.resolve();
          return state;
        },
        isFinal,
        hub,
        doneChannel,
        listenCheck: check,
        // Far longer than the test's timeout: only a notification can end this wait in time.
        pollMs: 3_600_000,
        timeoutMs: 3_600_000,
      });
      await firstRead.promise;
      release();
      assert.equal((await waiting).status, 'succeeded');
      assert.equal(reads, 2, 'one read before, one after the notification');
    } finally {
      await hub.close();
    }
  });

  test('a job that does not exist, and a wait that times out, end with typed errors', async () => {
    const hub = new NotificationHub({ connectionString: viaBouncer });
    try {
      const check = new ListenCheck(hub, bouncerPool, probeChannel, {
        timeoutMs: 3000,
        onUnavailable: () => {},
      });
      const base = { isFinal, hub, doneChannel, listenCheck: check, pollMs: 100 };
      await assert.rejects(
        waitForFinalState({ ...base, jobId: '0', read: () => stepping.getJob('0') }),
        /no job 0/,
      );
      const { jobId, release } = await heldJob();
      try {
        await assert.rejects(
          waitForFinalState({ ...base, jobId, read: () => stepping.getJob(jobId), timeoutMs: 300 }),
          /is still (pending|running) after 300 ms/,
        );
      } finally {
        release();
      }
    } finally {
      await hub.close();
    }
  });
});
