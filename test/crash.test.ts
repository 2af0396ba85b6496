/**
 * The `stepping-worker` bin as a real process: killed with SIGKILL mid-step (another
 * worker process finishes the job, re-running only the interrupted step), and stopped with
 * SIGTERM (the running step finishes, nothing new is claimed, exit 0).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type Running, start, trackChildren, within } from './fixtures/processes.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();

/** Starts a worker child on this file's database serving one queue, polling fast. */
function worker(fixture: string, queue: string, ...extra: string[]): Running {
  return start(
    'src/cli/stepping-worker.ts',
    ['--steps', fixture, '--queue', queue, '--poll-interval', '100', ...extra],
    { DATABASE_URL: h.url },
  );
}

/** Sends SIGTERM and expects a clean exit. */
async function stopWorker(w: Running): Promise<void> {
  w.child.kill('SIGTERM');
  const exit = await within(w.exited, 60_000, `worker ${w.pid} to exit`);
  assert.equal(exit.code, 0, exit.stderr);
}

test('kill -9 mid-step: a second worker process re-runs that step only, and the job completes', async () => {
  await h.pool.query(`CREATE TABLE crash_log (job_id bigint, step int, attempt int, pid int,
                                              at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  const jobId = await h.stepping.enqueue(
    [
      { name: 'crash.first', args: {} },
      { name: 'crash.hang', args: {} },
      { name: 'crash.last', args: {} },
    ],
    { queue: 'crash' },
  );
  const first = worker('test/fixtures/crash-steps.ts', 'crash', '--lease', '1000');
  // eventually returns only a truthy value: the pid of the worker running step 1.
  const hungPid = await eventually(
    async () =>
      (await h.pool.query('SELECT pid FROM crash_log WHERE job_id = $1 AND step = 1', [jobId])).rows[0]
        ?.pid as number | undefined,
    60_000,
    'step 1 to start in the first worker',
  );
  assert.equal(hungPid, first.pid);
  first.child.kill('SIGKILL');
  const killed = await within(first.exited, 30_000, 'the killed worker to exit');
  assert.equal(killed.signal, 'SIGKILL');

  const second = worker('test/fixtures/crash-steps.ts', 'crash', '--lease', '1000');
  const state = await h.stepping.waitForJob(jobId, { timeoutMs: 60_000 });
  assert.equal(state.status, 'succeeded', state.lastError ?? '');
  const { rows } = await h.pool.query(
    'SELECT step, attempt, pid FROM crash_log WHERE job_id = $1 ORDER BY step, at',
    [jobId],
  );
  assert.deepEqual(rows, [
    { step: 0, attempt: 1, pid: first.pid },
    { step: 1, attempt: 1, pid: first.pid },
    { step: 1, attempt: 2, pid: second.pid },
    { step: 2, attempt: 1, pid: second.pid },
  ]);
  const steps = await h.pool.query(
    'SELECT step_index, status, attempts FROM stepping.step_overview WHERE job_id = $1 ORDER BY step_index',
    [jobId],
  );
  assert.deepEqual(steps.rows, [
    { step_index: 0, status: 'succeeded', attempts: 1 },
    { step_index: 1, status: 'succeeded', attempts: 2 },
    { step_index: 2, status: 'succeeded', attempts: 1 },
  ]);
  await stopWorker(second);
});

test('SIGTERM: the running step finishes, nothing new is claimed, and the process exits 0', async () => {
  await h.pool.query(`CREATE TABLE graceful_log (job_id bigint, step int, pid int, event text,
                                                 at timestamptz NOT NULL DEFAULT clock_timestamp());
                      CREATE TABLE graceful_release (job_id bigint PRIMARY KEY)`);
  const blocked = await h.stepping.enqueue(
    [
      { name: 'graceful.block', args: {} },
      { name: 'graceful.next', args: {} },
    ],
    { queue: 'graceful' },
  );
  const w = worker('test/fixtures/graceful-steps.ts', 'graceful', '--graceful-stop', '60000');
  await eventually(
    async () =>
      (await h.pool.query(`SELECT 1 FROM graceful_log WHERE job_id = $1 AND event = 'start'`, [blocked]))
        .rowCount,
    60_000,
    'graceful.block to start',
  );
  w.child.kill('SIGTERM');
  // The worker prints this line after it has stopped claiming.
  await eventually(
    () => w.stdout().includes('stopping on SIGTERM'),
    30_000,
    'the worker to say it is stopping',
  );
  const later = await h.stepping.enqueue([{ name: 'graceful.next', args: {} }], { queue: 'graceful' });
  await h.pool.query('INSERT INTO graceful_release (job_id) VALUES ($1)', [blocked]);

  const exit = await within(w.exited, 60_000, 'the worker to exit after SIGTERM');
  assert.equal(exit.code, 0, exit.stderr);
  assert.match(exit.stdout, /step succeeded {2}job=\d+ step=0 name=graceful\.block/);
  assert.match(exit.stdout, /stopped\n$/);
  const log = await h.pool.query('SELECT job_id::text, step, event, pid FROM graceful_log ORDER BY at');
  assert.deepEqual(log.rows, [
    { job_id: blocked, step: 0, event: 'start', pid: w.pid },
    { job_id: blocked, step: 0, event: 'done', pid: w.pid },
  ]);
  // Step 0's success was recorded, but its next step was not leased to the stopping worker.
  const jobs = await h.pool.query(
    `SELECT job_id::text, status, current_step, current_attempt, locked_by
     FROM stepping.job_overview WHERE job_id = ANY($1::bigint[]) ORDER BY job_id`,
    [[blocked, later]],
  );
  assert.deepEqual(jobs.rows, [
    { job_id: blocked, status: 'pending', current_step: 1, current_attempt: 0, locked_by: null },
    { job_id: later, status: 'pending', current_step: 0, current_attempt: 0, locked_by: null },
  ]);
});

test('a worker whose stdout reader goes away keeps running its steps and stops cleanly', async () => {
  const w = worker('test/fixtures/crash-steps.ts', 'epipe');
  await eventually(() => w.stdout().length > 0, 60_000, 'the worker to log its start');
  // The log reader dies (a closed pipe to a logger): the next log line meets EPIPE.
  w.child.stdout!.destroy();
  const jobs = [];
  for (let i = 0; i < 3; i++) {
    jobs.push(await h.stepping.enqueue([{ name: 'crash.last', args: {} }], { queue: 'epipe' }));
  }
  for (const id of jobs) {
    const state = await h.stepping.waitForJob(id, { timeoutMs: 60_000 });
    assert.equal(state.status, 'succeeded', state.lastError ?? '');
  }
  assert.equal(w.child.exitCode, null, `the worker is still running: ${w.stderr()}`);
  await stopWorker(w);
  assert.match(w.stderr(), /stdout was closed by its reader/);
});
