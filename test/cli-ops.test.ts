/**
 * Issue 12, CLI: `stepping status` with live workers and unrunnable step names (and
 * --watch), `stepping jobs` filters and paging, bulk `stepping retry --status failed`, and
 * progress lines on a terminal (prune, bulk retry, migrate --databases).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runOperatorCli } from '../src/cli/operator.js';
import { defineStep } from '../src/index.js';
import { start, trackChildren, within } from './fixtures/processes.js';
import { operatorCli } from './support/cli.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();

/** Runs the `stepping` CLI in this process on this file's database. */
const cli = operatorCli(h.url);

/** A job failed at its first step `name` through the engine's own functions, as a worker would. */
async function failedJob(queue: string, name: string): Promise<string> {
  const jobId = await h.stepping.enqueue([{ name, args: {} }], { queue, maxAttempts: 1 });
  const claimed = await h.pool.query<{ job_id: string; lease_token: string }>(
    `SELECT job_id::text, lease_token::text FROM stepping.step_claim('test', $1, $2, 1, 30000)`,
    [[name], [queue]],
  );
  assert.equal(claimed.rows[0]?.job_id, jobId);
  await h.pool.query(
    `SELECT stepping.step_fail(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY[$3]::jsonb[])`,
    [jobId, claimed.rows[0]!.lease_token, JSON.stringify({ error: { message: 'no' } })],
  );
  return jobId;
}

test('status shows the live workers and the step names no live worker can run, as text and JSON', async (t) => {
  const step = defineStep('co.run', async () => {});
  await h.worker({ steps: [step], queues: ['co-q'], workerId: 'co-worker', concurrency: 7 }, t);
  await h.stepping.enqueue([{ name: 'co.nobody', args: {} }], { queue: 'co-q' });
  const text = await cli(['status']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^live workers: 1$/m);
  assert.match(text.stdout, /^WORKER\s+HOST\s+PID\s+QUEUES\s+STEPS\s+RUNNING\s+CONCURRENCY\s+HEARTBEAT$/m);
  assert.match(
    text.stdout,
    new RegExp(`^co-worker\\s+\\S+\\s+${process.pid}\\s+co-q\\s+co\\.run\\s+0\\s+7\\s+`, 'm'),
  );
  assert.match(text.stdout, /^step names no live worker can run:$/m);
  assert.match(text.stdout, /^co\.nobody\s+co-q\s+1\s+\S+$/m);
  const asJson = await cli(['status', '--json']);
  const parsed = JSON.parse(asJson.stdout) as {
    workers: { worker_id: string; queues: string[]; step_names: string[]; concurrency: number }[];
    unrunnable: { step_name: string; queue: string; jobs: number; oldest_wait_ms: number }[];
  };
  assert.deepEqual(
    parsed.workers.map((w) => [w.worker_id, w.queues, w.step_names, w.concurrency]),
    [['co-worker', ['co-q'], ['co.run'], 7]],
  );
  const nobody = parsed.unrunnable.find((u) => u.step_name === 'co.nobody');
  assert.equal(nobody?.queue, 'co-q');
  assert.equal(nobody?.jobs, 1);
  assert.equal(typeof nobody?.oldest_wait_ms, 'number');
  await h.pool.query(
    `SELECT stepping.job_cancel(job_id) FROM stepping.job_overview WHERE queue = 'co-q' AND status = 'pending'`,
  );
});

test('status --watch redraws on a terminal until interrupted', async () => {
  const interrupt = new AbortController();
  let clears = 0;
  let stdout = '';
  const watching = runOperatorCli(
    ['status', '--watch', '--interval', '100ms'],
    {
      stdout: (t) => {
        if (t.includes('\x1b[2J')) clears += 1;
        stdout += t;
      },
      stderr: () => {},
      stdoutIsTerminal: true,
      interrupt: interrupt.signal,
    },
    { DATABASE_URL: h.url },
  );
  await eventually(() => clears >= 2, 10_000, 'two redraws');
  interrupt.abort();
  assert.equal(await watching, 0);
  assert.match(stdout, /stepping status at .*, every 100ms \(Ctrl-C stops\)/);
  assert.match(stdout, /live workers:/);
});

test('status --watch without a terminal prints refresh after refresh and exits 0 on SIGINT', async () => {
  const child = start('src/cli/stepping.ts', ['status', '--watch', '--interval', '200ms'], {
    DATABASE_URL: h.url,
  });
  await eventually(() => (child.stdout().match(/^--- /gm)?.length ?? 0) >= 2, 30_000, 'two refreshes');
  child.child.kill('SIGINT');
  const done = await within(child.exited, 10_000, 'status --watch to exit');
  assert.equal(done.code, 0, done.stderr);
  assert.doesNotMatch(done.stdout, /\x1b/, 'no control sequences into a pipe');
  assert.match(done.stdout, /live workers:/);
});

test('jobs filters by queue, step, key and age, and pages with --before', async () => {
  const a = await h.stepping.enqueue([{ name: 'cj.one', args: {} }], { queue: 'cj', key: 'k-a' });
  await h.shiftClock('2 hours');
  const b = await h.stepping.enqueue(
    [
      { name: 'cj.one', args: {} },
      { name: 'cj.two', args: {} },
    ],
    { queue: 'cj', key: 'k-b' },
  );
  const c = await h.stepping.enqueue([{ name: 'cj.one', args: {} }], { queue: 'cj-other' });
  const ids = async (...args: string[]) => {
    const r = await cli(['jobs', '--json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { job_id: string }[]).map((j) => String(j.job_id));
  };
  assert.deepEqual(await ids('--queue', 'cj'), [b, a]);
  assert.deepEqual(await ids('--step', 'cj.two'), [b]);
  assert.deepEqual(await ids('--key', 'k-a'), [a]);
  assert.deepEqual(await ids('--queue', 'cj', '--older-than', '1h'), [a]);
  assert.deepEqual(await ids('--step', 'cj.one', '--newer-than', '1h'), [c, b]);
  const first = await cli(['jobs', '--step', 'cj.one', '--limit', '2']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, new RegExp(`more jobs: --before ${b}\\n`));
  assert.deepEqual(await ids('--step', 'cj.one', '--limit', '2', '--before', b), [a]);
  const last = await cli(['jobs', '--step', 'cj.one', '--before', b]);
  assert.equal(last.stderr, '', 'no further page');
  for (const [args, pattern] of [
    [['jobs', '--before', 'x'], /a job ID is a positive integer/],
    [['jobs', '--newer-than', '7'], /--newer-than must be a duration/],
    [['jobs', '--queue', ''], /--queue must be 1 to 100 characters/],
    [['status', '--interval', '1s'], /--interval needs --watch/],
    [['status', '--watch', '--interval', '10ms'], /--interval must be at least 100ms/],
  ] as [string[], RegExp][]) {
    const r = await cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, pattern);
  }
});

test('retry --status failed retries failed jobs of a queue and step in bulk, with a progress line on a terminal', async () => {
  const a1 = await failedJob('cr', 'cr.a');
  const a2 = await failedJob('cr', 'cr.a');
  const b1 = await failedJob('cr', 'cr.b');
  const other = await failedJob('cr-other', 'cr.a');
  const status = async (id: string) => (await h.stepping.getJob(id))?.status;

  const some = await cli(['retry', '--status', 'failed', '--queue', 'cr', '--step', 'cr.a'], {
    stderrIsTerminal: true,
  });
  assert.equal(some.code, 0, some.stderr);
  assert.equal(some.stdout, 'retried 2 failed jobs (queue cr, step cr.a)\n');
  assert.match(some.stderr, /\r\x1b\[Kretrying \[#+\] 2\/2 jobs/);
  assert.ok(some.stderr.endsWith('\r\x1b[K'), 'the progress line is cleared at the end');
  assert.deepEqual(
    [await status(a1), await status(a2), await status(b1), await status(other)],
    ['pending', 'pending', 'failed', 'failed'],
  );

  const rest = await cli(['retry', '--status', 'failed', '--queue', 'cr', '--json']);
  assert.equal(rest.code, 0, rest.stderr);
  assert.deepEqual(JSON.parse(rest.stdout), { retried: 1 });
  assert.equal(rest.stderr, '', 'no progress line without a terminal');
  assert.equal(await status(b1), 'pending');
  assert.equal(await status(other), 'failed');

  for (const [args, pattern] of [
    [['retry'], /retry needs a job ID, or --status failed/],
    [['retry', '--status', 'pending'], /retry needs a job ID, or --status failed/],
    [['retry', '5', '--queue', 'q'], /not both/],
  ] as [string[], RegExp][]) {
    const r = await cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, pattern);
  }
  await h.pool.query(
    `SELECT stepping.job_cancel(job_id) FROM stepping.job_overview WHERE queue = 'cr' AND status = 'pending'`,
  );
});

test('job_retry_many goes in bounded batches with a cursor, and leaves a job whose key is taken failed', async () => {
  const keyed = await h.stepping.enqueue([{ name: 'crm.a', args: {} }], {
    queue: 'crm',
    key: 'crm-key',
    maxAttempts: 1,
  });
  const claimed = await h.pool.query<{ lease_token: string }>(
    `SELECT lease_token::text FROM stepping.step_claim('test', ARRAY['crm.a'], ARRAY['crm'], 1, 30000)`,
  );
  await h.pool.query(
    `SELECT stepping.step_fail(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY['{"error":{"message":"x"}}']::jsonb[])`,
    [keyed, claimed.rows[0]!.lease_token],
  );
  // Another unfinished job now holds the key.
  await h.stepping.enqueue([{ name: 'crm.a', args: {} }], { queue: 'crm', key: 'crm-key' });
  const plain = [await failedJob('crm', 'crm.b'), await failedJob('crm', 'crm.b')];
  const first = await h.pool.query<{ retried: number; last_id: string }>(
    `SELECT retried, last_id::text FROM stepping.job_retry_many('crm', NULL, 2, 0)`,
  );
  assert.deepEqual(first.rows[0], { retried: 1, last_id: plain[0] }, 'the keyed job is skipped, not retried');
  const second = await h.pool.query<{ retried: number; last_id: string }>(
    `SELECT retried, last_id::text FROM stepping.job_retry_many('crm', NULL, 2, $1)`,
    [plain[0]],
  );
  assert.deepEqual(second.rows[0], { retried: 1, last_id: plain[1] });
  const done = await h.pool.query(
    `SELECT retried, last_id FROM stepping.job_retry_many('crm', NULL, 2, $1)`,
    [plain[1]],
  );
  assert.deepEqual(done.rows[0], { retried: 0, last_id: null });
  assert.equal((await h.stepping.getJob(keyed))?.status, 'failed');
  await assert.rejects(
    h.pool.query(`SELECT * FROM stepping.job_retry_many(p_limit => 0)`),
    /p_limit must be from 1/,
  );
  await h.pool.query(
    `SELECT stepping.job_cancel(job_id) FROM stepping.job_overview WHERE queue = 'crm' AND status = 'pending'`,
  );
});

test('prune and migrate --databases keep a progress line on a terminal only', async () => {
  const ok = defineStep('cp.ok', async () => {});
  const id = await h.stepping.enqueue([{ name: 'cp.ok', args: {} }], { queue: 'cp' });
  const worker = await h.worker({ steps: [ok], maintenanceIntervalMs: 0 });
  await h.stepping.waitForJob(id, { timeoutMs: 10_000 });
  await worker.stop();
  await h.shiftClock('2 hours');
  const pruned = await cli(['prune', '--older-than', '1h'], { stderrIsTerminal: true });
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stderr, /\r\x1b\[Kpruning: \d+ jobs deleted so far/);
  assert.ok(pruned.stderr.endsWith('\r\x1b[K'));
  const plain = await cli(['prune', '--older-than', '1h']);
  assert.equal(plain.stderr, '');

  const { createTestDatabase } = await import('./support/db.js');
  const a = await createTestDatabase('cli_ops_many_a');
  const b = await createTestDatabase('cli_ops_many_b');
  const many = await cli(['migrate', '--databases', `${a.url},${b.url}`], { stderrIsTerminal: true });
  assert.equal(many.code, 0, many.stderr);
  assert.match(many.stderr, /\r\x1b\[Kmigrating \[#{20}\] 2\/2 databases/);
  assert.match(many.stderr, /\[2\/2\] /);
  const quiet = await cli(['migrate', '--databases', `${a.url},${b.url}`]);
  assert.doesNotMatch(quiet.stderr, /\x1b/);
});

test('a duration past 100 years is a usage error naming the option, not a database error', async () => {
  await h.stepping.enqueue([{ name: 'co.long', args: {} }], { queue: 'co-long' });
  for (const args of [
    ['jobs', '--older-than', '100000000d'],
    ['jobs', '--newer-than', '36526d'],
    ['prune', '--older-than', '100000000d'],
  ]) {
    const result = await cli(args);
    assert.equal(result.code, 2, `stepping ${args.join(' ')}: ${result.stderr}`);
    assert.match(
      result.stderr,
      new RegExp(`^stepping: ${args[1]} must be at most 100 years \\(36525d\\), got "${args[2]}"\\n`),
    );
  }
  // Up to 100 years is taken.
  const longest = await cli(['jobs', '--queue', 'co-long', '--newer-than', '36525d']);
  assert.equal(longest.code, 0, longest.stderr);
  // A --watch interval is a timer's: past setTimeout's 24.8 days it would fire at once, in a loop.
  const watch = await cli(['status', '--watch', '--interval', '25d']);
  assert.equal(watch.code, 2, watch.stderr);
  assert.match(watch.stderr, /^stepping: --interval must be at most 24\.8 days/);
});
