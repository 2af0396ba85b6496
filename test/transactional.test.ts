import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, test } from 'node:test';

import pg from 'pg';

import { createWorker, defineStep } from '../src/index.js';
import { commandLine, projectRoot } from './fixtures/processes.js';
import { deferred, eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
await h.pool.query(
  `CREATE TABLE inbox_effects (event_id text NOT NULL, job_id bigint NOT NULL, pid int NOT NULL)`,
);

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Starts tx-worker.ts; resolves once it prints `waitFor`. */
async function startWorker(
  mode: string,
  waitFor = 'READY',
): Promise<{ child: ChildProcess; seen: Promise<string> }> {
  const child = spawn(process.execPath, commandLine('test/fixtures/tx-worker.ts', []), {
    cwd: projectRoot,
    env: { ...process.env, DATABASE_URL: h.url, MODE: mode },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  const ready = deferred();
  const seen = deferred<string>();
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('READY')) ready.resolve();
    const line = out.split('\n').find((l) => l.startsWith(waitFor));
    if (line) seen.resolve(line);
  });
  child.on('exit', (code) => {
    ready.reject(new Error(`worker exited early (${code}): ${out}`));
    seen.reject(new Error(`worker exited (${code}) before printing ${waitFor}: ${out}`));
  });
  seen.promise.catch(() => {});
  await ready.promise;
  return { child, seen: seen.promise };
}

async function effects(eventId: string): Promise<number> {
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM inbox_effects WHERE event_id = $1', [
    eventId,
  ]);
  return rows[0].n;
}

const killed = (child: ChildProcess) =>
  new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));

test('kill -9 inside a transactional handler: its write is rolled back, the rerun writes once', async () => {
  const id = await h.stepping.enqueue([
    { name: 'inbox.record', args: { eventId: 'e1' } },
    { name: 'inbox.after' },
  ]);
  const first = await startWorker('hang', 'INSERTED');
  assert.equal(await first.seen, `INSERTED ${id}`);
  assert.equal(await effects('e1'), 0, 'the write is not visible before its transaction commits');
  first.child.kill('SIGKILL');
  await killed(first.child);

  const second = await startWorker('normal');
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'succeeded');
  assert.equal(await effects('e1'), 1);
  const steps = await h.stepping.steps(id);
  assert.equal(steps[0]!.attempts, 2, 'the killed attempt counted; the step ran again');
  second.child.kill('SIGTERM');
  await killed(second.child);
});

test('kill -9 right after the transactional step committed: it never runs again', async () => {
  const id = await h.stepping.enqueue([
    { name: 'inbox.record', args: { eventId: 'e2' } },
    { name: 'inbox.after' },
  ]);
  const first = await startWorker('kill-after-commit');
  await killed(first.child);
  assert.equal(first.child.signalCode, 'SIGKILL');
  assert.equal(await effects('e2'), 1);

  // The next step was leased to the dead worker; another worker takes it when the lease lapses.
  const second = await startWorker('normal');
  const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
  assert.equal(final.status, 'succeeded');
  assert.equal(await effects('e2'), 1, 'the committed step was not repeated');
  const steps = await h.stepping.steps(id);
  assert.equal(steps[0]!.attempts, 1);
  second.child.kill('SIGTERM');
  await killed(second.child);
});

test('a throwing transactional handler rolls its writes back; the retry writes once', async (t) => {
  let failures = 2;
  const step = defineStep(
    'inbox.flaky',
    async (args: { eventId: string }, ctx) => {
      await ctx.tx!.query('INSERT INTO inbox_effects (event_id, job_id, pid) VALUES ($1, $2, 0)', [
        args.eventId,
        ctx.jobId,
      ]);
      if (failures-- > 0) throw new Error('after the write');
    },
    { transactional: true, backoff: { baseMs: 10, maxMs: 20 } },
  );
  const w = await h.worker({ steps: [step], pollIntervalMs: 100, queues: ['flaky'] }, t);
  const id = await h.stepping.enqueue([step({ eventId: 'e3' })], { queue: 'flaky' });
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'succeeded');
  assert.equal(await effects('e3'), 1);
  assert.equal((await h.stepping.steps(id))[0]!.attempts, 3);
  await w.stop();
});

test('a transactional step whose lease was taken over commits nothing', async (t) => {
  const inside = deferred();
  const release = deferred();
  const step = defineStep(
    'inbox.slow',
    async (args: { eventId: string }, ctx) => {
      await ctx.tx!.query('INSERT INTO inbox_effects (event_id, job_id, pid) VALUES ($1, $2, 0)', [
        args.eventId,
        ctx.jobId,
      ]);
      inside.resolve();
      await release.promise;
    },
    { transactional: true },
  );
  const w = await h.worker({ steps: [step], pollIntervalMs: 100, queues: ['slow'] }, t);
  const lost: string[] = [];
  w.on('step:lease-lost', (e) => lost.push(e.jobId));
  const id = await h.stepping.enqueue([step({ eventId: 'e4' })], { queue: 'slow' });
  await inside.promise;
  // Another claimer finds the lease expired and takes the step.
  const rows = await h.takeOver(['inbox.slow'], 'thief');
  assert.equal(rows.length, 1);
  release.resolve();
  await eventually(() => lost.includes(id), 10_000, 'the lease-lost event');
  assert.equal(await effects('e4'), 0, 'the stale attempt rolled back its write');
  const job = await h.pool.query('SELECT locked_by, status FROM stepping.jobs WHERE id = $1', [id]);
  assert.deepEqual(job.rows[0], { locked_by: 'thief', status: 'running' });
  await w.stop();
});

test('a transaction the server ended (idle-in-transaction timeout) fails the attempt naming the server’s reason', async (t) => {
  // Before, the stored error was pg's "Client has encountered a connection error and is not
  // queryable", which does not say what happened.
  const pool = new pg.Pool({
    connectionString: h.url,
    options: '-c idle_in_transaction_session_timeout=300',
  });
  t.after(() => pool.end());
  const step = defineStep(
    'tx.idle-timeout',
    async (_args: unknown, ctx) => {
      await ctx.tx!.query('SELECT 1');
      // Longer than the server lets a transaction sit idle.
      await new Promise((r) => setTimeout(r, 1000));
      await ctx.tx!.query('SELECT 1');
    },
    { transactional: true, maxAttempts: 1 },
  );
  const worker = createWorker({ pool, steps: [step] });
  worker.on('error', () => {});
  await worker.start();
  t.after(() => worker.stop());
  const id = await h.stepping.enqueue([step({})]);
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 20_000 })).status, 'failed');
  const [s] = await h.stepping.steps(id);
  assert.match(s!.lastError ?? '', /idle-in-transaction timeout/);
});
