import assert from 'node:assert/strict';
import { test } from 'node:test';

import pg from 'pg';

import { createWorker, defineStep } from '../src/index.js';
import { nextEvent, withTimeout } from './fixtures/core-util.js';
import { deferred, setup } from './support/harness.js';

type Deferred = ReturnType<typeof deferred<void>>;

const h = await setup(import.meta.url);

// A poll interval far beyond the tests' bounds: a retry must be woken by its own timer.
const NO_POLL = 600_000;

test('a throwing step is retried with growing delays, then succeeds', async (t) => {
  // Records the delay the engine chose at each failure (available_at - the failure's own
  // time), exactly, so "the delays grow" does not depend on how busy the machine is.
  await h.pool.query(`
    CREATE TABLE public.core_retry_log (attempt integer, delay_ms float8);
    CREATE FUNCTION public.core_retry_log() RETURNS trigger LANGUAGE plpgsql
    SET search_path = public, pg_catalog AS $$
    BEGIN
      IF OLD.status = 'running' AND NEW.status = 'pending' AND NEW.step_name = 'retry.growing' THEN
        INSERT INTO public.core_retry_log
        VALUES (NEW.attempt, extract(epoch FROM NEW.available_at - NEW.updated_at)::float8 * 1000);
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER core_retry_log AFTER UPDATE ON stepping.jobs
      FOR EACH ROW EXECUTE FUNCTION public.core_retry_log();`);
  const starts: number[] = [];
  const attempts: number[] = [];
  const flaky = defineStep(
    'retry.growing',
    async (_args: unknown, ctx) => {
      starts.push(performance.now());
      attempts.push(ctx.attempt);
      if (ctx.attempt <= 3) throw new Error(`growing failure ${ctx.attempt}`);
    },
    { backoff: { baseMs: 50, maxMs: 5000 } },
  );
  await h.worker({ steps: [flaky] }, t);
  const id = await h.stepping.enqueue([flaky({})]);
  const job = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
  await h.pool.query(
    'DROP TRIGGER core_retry_log ON stepping.jobs; DROP FUNCTION public.core_retry_log() CASCADE',
  );
  assert.equal(job.status, 'succeeded');
  assert.deepEqual(attempts, [1, 2, 3, 4]);

  const log = await h.pool.query<{ attempt: number; delay_ms: number }>(
    'SELECT attempt, delay_ms FROM public.core_retry_log ORDER BY attempt',
  );
  assert.deepEqual(
    log.rows.map((r) => r.attempt),
    [1, 2, 3],
  );
  const delays = log.rows.map((r) => r.delay_ms);
  const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
  delays.forEach((delay, i) => {
    // After n failures the delay is in [0.5, 1) x min(max, base * 2^(n-1)).
    const cap = Math.min(5000, 50 * 2 ** i);
    assert.ok(delay >= 0.5 * cap && delay <= cap, `delay after failure ${i + 1}: ${delay} ms, cap ${cap} ms`);
    // The worker waited at least that long between the two attempts' handler starts.
    // (Timer resolution: PostgreSQL's clock and performance.now() may differ by < 1 ms.)
    assert.ok(
      gaps[i]! >= delay - 1,
      `gap after failure ${i + 1} is ${gaps[i]!.toFixed(1)} ms, shorter than the ${delay.toFixed(1)} ms backoff`,
    );
    assert.ok(gaps[i]! >= 0.5 * cap, `gap after failure ${i + 1} is ${gaps[i]!.toFixed(1)} ms`);
  });
  assert.ok(delays[2]! > delays[0]!, `third delay (${delays[2]} ms) exceeds the first (${delays[0]} ms)`);
  const { rows } = await h.pool.query(
    'SELECT status, attempts FROM stepping.step_overview WHERE job_id = $1',
    [id],
  );
  assert.deepEqual(rows, [{ status: 'succeeded', attempts: 4 }]);
});

test('while a step keeps failing, its last error and attempt count show in the views', async (t) => {
  const started = [1, 2, 3, 4].map(() => deferred());
  const gates = [1, 2, 3, 4].map(() => deferred());
  const visible = defineStep(
    'retry.visible',
    async (_args: unknown, ctx) => {
      started[ctx.attempt - 1]!.resolve();
      await gates[ctx.attempt - 1]!.promise;
      if (ctx.attempt <= 3) throw new Error(`visible failure ${ctx.attempt}`);
    },
    { backoff: { baseMs: 20, maxMs: 100 } },
  );
  await h.worker({ steps: [visible] }, t);
  const id = await h.stepping.enqueue([visible({})]);

  const views = async () => {
    const job = await h.pool.query(
      'SELECT status, current_attempt, last_error FROM stepping.job_overview WHERE job_id = $1',
      [id],
    );
    const step = await h.pool.query(
      `SELECT status, attempts, last_error, (last_error_detail->>'attempt')::int AS error_attempt,
              last_error_detail->>'stack' AS stack
       FROM stepping.step_overview WHERE job_id = $1`,
      [id],
    );
    return { job: job.rows[0], step: step.rows[0] };
  };

  await withTimeout(started[0]!.promise, 10_000, 'attempt 1');
  let v = await views();
  assert.deepEqual(v.job, { status: 'running', current_attempt: 1, last_error: null });
  assert.equal(v.step.status, 'running');
  assert.equal(v.step.attempts, 1);
  assert.equal(v.step.last_error, null);

  for (const attempt of [2, 3, 4]) {
    gates[attempt - 2]!.resolve();
    await withTimeout(started[attempt - 1]!.promise, 10_000, `attempt ${attempt}`);
    // The attempt before this one failed; this one is held open.
    v = await views();
    const message = `visible failure ${attempt - 1}`;
    assert.deepEqual(v.job, { status: 'running', current_attempt: attempt, last_error: message });
    assert.equal(v.step.status, 'running');
    assert.equal(v.step.attempts, attempt, 'step_overview attempts count up');
    assert.equal(v.step.last_error, message);
    assert.equal(v.step.error_attempt, attempt - 1);
    assert.match(String(v.step.stack), new RegExp(message));
  }
  gates[3]!.resolve();
  assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 30_000 })).status, 'succeeded');
  const step = await h.pool.query('SELECT status, attempts FROM stepping.step_overview WHERE job_id = $1', [
    id,
  ]);
  assert.deepEqual(step.rows, [{ status: 'succeeded', attempts: 4 }]);
});

test('without maxAttempts a step keeps being retried until it succeeds', async (t) => {
  let calls = 0;
  const stubborn = defineStep(
    'retry.unlimited',
    async () => {
      calls += 1;
      if (calls <= 6) throw new Error(`unlimited failure ${calls}`);
    },
    { backoff: { baseMs: 1, maxMs: 5 } },
  );
  await h.worker({ steps: [stubborn] }, t);
  const id = await h.stepping.enqueue([stubborn({})]);
  const job = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
  assert.equal(job.status, 'succeeded');
  assert.equal(calls, 7);
  const { rows } = await h.pool.query(
    'SELECT status, attempts, max_attempts FROM stepping.step_overview WHERE job_id = $1',
    [id],
  );
  assert.deepEqual(rows, [{ status: 'succeeded', attempts: 7, max_attempts: null }]);
});

test('maxAttempts exhausted ends the job failed, with the step failed and nothing after it run', async (t) => {
  let calls = 0;
  let laterCalls = 0;
  const doomed = defineStep(
    'retry.doomed',
    async (_args: unknown, ctx) => {
      calls += 1;
      throw new Error(`doomed attempt ${ctx.attempt}`);
    },
    { maxAttempts: 3, backoff: { baseMs: 1, maxMs: 5 } },
  );
  const later = defineStep('retry.after-doomed', async () => {
    laterCalls += 1;
  });
  const worker = await h.worker({ steps: [doomed, later] }, t);
  const failedEvents: string[] = [];
  worker.on('step:failed', (e) => failedEvents.push(`${e.attempt}:${e.outcome}`));

  const id = await h.stepping.enqueue([doomed({}), later({})]);
  const jobFailed = nextEvent(worker, 'job:failed', (e) => e.jobId === id);
  const job = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
  await withTimeout(jobFailed, 5000, 'job:failed event');
  assert.equal(job.status, 'failed');
  assert.equal(job.lastError, 'doomed attempt 3');
  assert.equal(calls, 3);
  assert.equal(laterCalls, 0);
  assert.deepEqual(failedEvents, ['1:retry', '2:retry', '3:failed']);

  const overview = await h.pool.query(
    'SELECT status, phase, current_step, failed_step, current_attempt FROM stepping.job_overview WHERE job_id = $1',
    [id],
  );
  assert.deepEqual(overview.rows[0], {
    status: 'failed',
    phase: 'forward',
    current_step: 0,
    failed_step: 0,
    current_attempt: 3,
  });
  const steps = await h.pool.query(
    `SELECT idx, status, attempts, last_error->>'message' AS error, comp_status
     FROM stepping.steps WHERE job_id = $1 ORDER BY idx`,
    [id],
  );
  assert.deepEqual(steps.rows, [
    { idx: 0, status: 'failed', attempts: 3, error: 'doomed attempt 3', comp_status: null },
    // Never ran because the job ended: skipped, not left pending for ever.
    { idx: 1, status: 'skipped', attempts: 0, error: null, comp_status: null },
  ]);
});

test('a retry is woken by its backoff even when its failure is reported while the worker looks up what is due', async () => {
  // The worker's pool is wrapped to reproduce one interleaving, deterministically: right
  // after claiming, the worker asks next_due_in_ms (answered while the step still runs
  // under its lease), and that answer reaches the worker only after the step's failure was
  // reported and its retry scheduled, as on a slow connection. The retry (1 ms backoff)
  // must still run at once, not after the lease (60 s) or the poll (10 min).
  const pool = new pg.Pool({ connectionString: h.url, max: 5 });
  type QueryFn = (text: unknown, values?: unknown) => Promise<unknown>;
  const original = pool.query.bind(pool) as unknown as QueryFn;
  let race: { answered: Deferred; retryScheduled: Deferred } | null = null;
  const bounded = (p: Promise<void>) => withTimeout(p, 2000, 'the other query').catch(() => {});
  (pool as unknown as { query: QueryFn }).query = async (text, values) => {
    const r = race;
    if (r && typeof text === 'string' && text.includes('next_due_in_ms')) {
      const result = await original(text, values);
      r.answered.resolve();
      await bounded(r.retryScheduled.promise);
      return result;
    }
    if (r && typeof text === 'string' && text.includes('step_fail')) await bounded(r.answered.promise);
    return await original(text, values);
  };

  const once = defineStep(
    'retry.race',
    async (_args: unknown, ctx) => {
      if (ctx.attempt === 1) {
        race = { answered: deferred(), retryScheduled: deferred() };
        throw new Error('first attempt fails');
      }
      race = null;
    },
    { backoff: { baseMs: 1, maxMs: 1 } },
  );
  const worker = createWorker({ pool, steps: [once], pollIntervalMs: NO_POLL, leaseMs: 60_000 });
  worker.on('step:retry-scheduled', () => race?.retryScheduled.resolve());
  await worker.start();
  try {
    const id = await h.stepping.enqueue([once({})]);
    const job = await h.stepping.waitForJob(id, { timeoutMs: 5000 }).catch(async (error: unknown) => {
      const { rows } = await h.pool.query(
        'SELECT status, current_attempt, run_at < now() AS overdue FROM stepping.job_overview WHERE job_id = $1',
        [id],
      );
      assert.fail(`the retry did not run: ${JSON.stringify(rows[0])} (${String(error)})`);
    });
    assert.equal(job.status, 'succeeded');
  } finally {
    await worker.stop();
    await pool.end();
  }
});

test('stepping.backoff_delay(n, base, max) lies in [0.5, 1) x min(max, base * 2^(n-1))', async () => {
  const { rows } = await h.pool.query<{ n: number; lo: number; hi: number }>(
    `SELECT n, min(ms) AS lo, max(ms) AS hi
     FROM (SELECT n, (extract(epoch FROM stepping.backoff_delay(n, 50, 5000)) * 1000)::float8 AS ms
           FROM generate_series(1, 10) n, generate_series(1, 300) k) s
     GROUP BY n ORDER BY n`,
  );
  assert.equal(rows.length, 10);
  for (const { n, lo, hi } of rows) {
    const cap = Math.min(5000, 50 * 2 ** (n - 1));
    assert.ok(lo >= 0.5 * cap, `attempt ${n}: ${lo} ms is below ${0.5 * cap} ms`);
    // <=, not <: the interval is rounded to whole microseconds, which can reach the cap.
    assert.ok(hi <= cap, `attempt ${n}: ${hi} ms is above ${cap} ms`);
    // Jitter: 300 samples spread over the window, not one fixed value.
    assert.ok(hi - lo > 0.2 * cap, `attempt ${n}: samples span only ${lo}..${hi} ms`);
  }
  // Huge attempt counts neither overflow nor exceed the cap.
  const big = await h.pool.query<{ ms: number }>(
    `SELECT (extract(epoch FROM stepping.backoff_delay(100000, 1000, 3600000)) * 1000)::float8 AS ms`,
  );
  assert.ok(big.rows[0]!.ms >= 1_800_000 && big.rows[0]!.ms <= 3_600_000, `got ${big.rows[0]!.ms}`);
});
