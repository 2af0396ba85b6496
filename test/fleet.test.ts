/**
 * Recurring schedules and fleet-wide limits with several `stepping-worker` processes:
 * one job per schedule tick with three workers over many ticks (the engine's clock is
 * moved, nothing waits for real minutes); a fleet-wide limit of 2 never exceeded by
 * three workers of concurrency 10 (counted by the handlers themselves); a rate limit of
 * 5 per second (at most 5 claims in any second on the engine's clock, and at most 5
 * handler starts in any window of a second minus the 250 ms a start may lag its claim);
 * a per-key rate of 2 per second held for each rate key, a flooding key not holding
 * back another.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { type Running, start, trackChildren, within } from './fixtures/processes.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();

const STEPS = 'test/fixtures/fleet-steps.ts';

/** Starts a worker child serving one queue, polling fast. */
function worker(queue: string, ...extra: string[]): Running {
  return start(
    'src/cli/stepping-worker.ts',
    ['--steps', STEPS, '--queue', queue, '--poll-interval', '100', '--quiet', ...extra],
    { DATABASE_URL: h.url },
  );
}

async function stopAll(workers: Running[]): Promise<void> {
  for (const w of workers) w.child.kill('SIGTERM');
  for (const w of workers) {
    const exit = await within(w.exited, 60_000, `worker ${w.pid} to exit`);
    assert.equal(exit.code, 0, exit.stderr);
  }
}

async function count(sql: string, values: unknown[] = []): Promise<number> {
  return Number((await h.pool.query(sql, values)).rows[0].n);
}

test('a schedule fires one job per tick with three worker processes, over many ticks', async () => {
  await h.pool.query('CREATE TABLE fleet_runs (job_id bigint, pid int)');
  const dir = mkdtempSync(path.join(tmpdir(), 'stepping-fleet-'));
  const file = path.join(dir, 'schedules.json');
  writeFileSync(
    file,
    JSON.stringify([
      { name: 'tick', cron: '* * * * *', steps: [{ name: 'fleet.tick', args: {} }], queue: 'ticks' },
    ]),
  );
  const workers = [1, 2, 3].map(() => worker('ticks', '--schedules', file));
  await eventually(
    async () =>
      (await count(`SELECT count(*) AS n FROM stepping.schedule_overview WHERE name = 'tick'`)) === 1,
    30_000,
    'the declarative schedule to be created',
  );
  const TICKS = 15;
  for (let i = 1; i <= TICKS; i++) {
    // Move the engine's clock just past the next due time; every worker's scheduler sees it.
    await h.pool.query(
      `UPDATE stepping.settings SET clock_offset =
         (SELECT next_run_at FROM stepping.schedules WHERE name = 'tick') + interval '1 second' - clock_timestamp()`,
    );
    await eventually(
      async () =>
        (await count(
          `SELECT count(*) AS n FROM stepping.jobs WHERE key LIKE 'schedule:tick:%' AND status = 'succeeded'`,
        )) === i,
      30_000,
      `tick ${i} to be enqueued and run`,
    );
  }
  // Every scheduler had the chance to fire the last tick again; none did.
  const { rows } = await h.pool.query(
    `SELECT key, count(*)::int AS n FROM stepping.jobs WHERE key LIKE 'schedule:tick:%' GROUP BY key`,
  );
  assert.equal(rows.length, TICKS);
  assert.ok(rows.every((r) => r.n === 1));
  assert.equal(await count('SELECT count(*) AS n FROM fleet_runs'), TICKS);
  assert.equal(await count('SELECT count(DISTINCT job_id) AS n FROM fleet_runs'), TICKS);
  await stopAll(workers);
  assert.equal(
    await count(`SELECT count(*) AS n FROM stepping.jobs WHERE key LIKE 'schedule:tick:%'`),
    TICKS,
    'no tick fired twice',
  );
  await h.stepping.unschedule('tick');
});

test('a fleet-wide limit of 2 holds across three workers of concurrency 10 (claims and continuations)', async () => {
  await h.pool.query('CREATE TABLE fleet_counter (running int NOT NULL, peak int NOT NULL)');
  await h.pool.query('INSERT INTO fleet_counter VALUES (0, 0)');
  await h.stepping.setQueueLimit('limited', { maxRunning: 2 });
  const JOBS = 40;
  // Two steps each: the second is a continuation, which must respect the limit too.
  await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: JOBS }, () => ({
      steps: [
        { name: 'fleet.limited', args: { ms: 20 } },
        { name: 'fleet.limited', args: { ms: 20 } },
      ],
      options: { queue: 'limited' },
    })),
  );
  const workers = [1, 2, 3].map(() => worker('limited', '--concurrency', '10'));
  await eventually(
    async () =>
      (await count(
        `SELECT count(*) AS n FROM stepping.jobs WHERE queue = 'limited' AND status = 'succeeded'`,
      )) === JOBS,
    120_000,
    'every limited job to succeed',
  );
  await stopAll(workers);
  const { rows } = await h.pool.query('SELECT running, peak FROM fleet_counter');
  assert.equal(rows[0].running, 0);
  assert.equal(rows[0].peak, 2, 'at most 2 handlers ran at once, and the limit was used');
  await h.stepping.clearQueueLimit('limited');
});

test('a rate limit of 5 per second holds across three workers', async () => {
  await h.pool.query(
    'CREATE TABLE fleet_starts (job_id bigint, started_at timestamptz NOT NULL, claimed_at timestamptz NOT NULL)',
  );
  await h.stepping.setQueueLimit('rated', { rate: { count: 5, periodMs: 1000 } });
  const JOBS = 20;
  await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: JOBS }, () => ({
      steps: [{ name: 'fleet.rated', args: {} }],
      options: { queue: 'rated' },
    })),
  );
  const workers = [1, 2, 3].map(() => worker('rated', '--concurrency', '10'));
  await eventually(
    async () =>
      (await count(
        `SELECT count(*) AS n FROM stepping.jobs WHERE queue = 'rated' AND status = 'succeeded'`,
      )) === JOBS,
    120_000,
    'every rated job to succeed',
  );
  await stopAll(workers);
  const { rows } = await h.pool.query<{ started: number; claimed: number }>(
    `SELECT extract(epoch FROM started_at) * 1000 AS started, extract(epoch FROM claimed_at) * 1000 AS claimed
     FROM fleet_starts`,
  );
  assert.equal(rows.length, JOBS);
  const most = (times: number[], windowMs: number) => {
    const sorted = [...times].sort((a, b) => a - b);
    return Math.max(...sorted.map((t, i) => sorted.filter((u, j) => j >= i && u < t + windowMs).length));
  };
  // The engine's guarantee: at most 5 claims in any 1000 ms of its clock.
  assert.ok(
    most(
      rows.map((r) => Number(r.claimed)),
      1000,
    ) <= 5,
    'claims per second',
  );
  // Seen by the handlers: every start follows its claim, by a delay the engine does not
  // control (scheduling on a loaded machine). With the largest delay D, any window of
  // 1000 ms − D holds at most 5 starts, since their claims lie within 1000 ms.
  const lags = rows.map((r) => Number(r.started) - Number(r.claimed));
  assert.ok(Math.min(...lags) >= 0, 'a handler started before its unit was claimed');
  const window = 1000 - Math.max(...lags);
  if (window > 0) {
    assert.ok(
      most(
        rows.map((r) => Number(r.started)),
        window,
      ) <= 5,
      `handler starts per ${window} ms`,
    );
  }
  const claims = rows.map((r) => Number(r.claimed));
  // 20 starts at 5 per second need at least 3 full windows after the first.
  assert.ok(Math.max(...claims) - Math.min(...claims) >= 3000, 'the starts were spread over 3 s or more');
  await h.stepping.clearQueueLimit('rated');
});

test('a per-key rate limit of 2 per second holds for each key across three workers, and a flooding key never holds back another', async () => {
  await h.pool.query(
    'CREATE TABLE IF NOT EXISTS fleet_starts (job_id bigint, started_at timestamptz NOT NULL, claimed_at timestamptz NOT NULL)',
  );
  await h.pool.query('TRUNCATE fleet_starts');
  await h.stepping.setQueueLimit('per-key', { rate: { count: 2, periodMs: 1000, perKey: true } });
  // Key a floods the queue first; b and the jobs without a key (one bucket) come after.
  const keys = [...Array<string>(10).fill('a'), 'b', 'b', 'b', 'b', undefined, undefined];
  await h.stepping.enqueueMany(
    undefined,
    keys.map((rateKey) => ({
      steps: [{ name: 'fleet.rated', args: {} }],
      options: { queue: 'per-key', ...(rateKey === undefined ? {} : { rateKey }) },
    })),
  );
  const workers = [1, 2, 3].map(() => worker('per-key', '--concurrency', '10'));
  await eventually(
    async () =>
      (await count(
        `SELECT count(*) AS n FROM stepping.jobs WHERE queue = 'per-key' AND status = 'succeeded'`,
      )) === keys.length,
    120_000,
    'every per-key job to succeed',
  );
  await stopAll(workers);
  const { rows } = await h.pool.query<{ key: string; claimed: number }>(
    `SELECT coalesce(j.rate_key, '-') AS key, extract(epoch FROM s.claimed_at) * 1000 AS claimed
     FROM fleet_starts s JOIN stepping.jobs j ON j.id = s.job_id`,
  );
  assert.equal(rows.length, keys.length);
  const claimsOf = (key: string) => rows.filter((r) => r.key === key).map((r) => Number(r.claimed));
  const most = (times: number[], windowMs: number) => {
    const sorted = [...times].sort((a, b) => a - b);
    return Math.max(...sorted.map((t, i) => sorted.filter((u, j) => j >= i && u < t + windowMs).length));
  };
  // The engine's guarantee: at most 2 claims of each key in any 1000 ms of its clock.
  for (const key of ['a', 'b', '-']) assert.ok(most(claimsOf(key), 1000) <= 2, `claims of ${key} per second`);
  const a = claimsOf('a');
  const b = claimsOf('b');
  // 10 starts of a at 2 per second need at least 4 full windows after the first; b's 4
  // starts need one, and are not queued behind a's.
  assert.ok(Math.max(...a) - Math.min(...a) >= 4000, 'the starts of a were spread over 4 s or more');
  assert.ok(Math.max(...b) < Math.max(...a), 'b finished before a: a flooding key does not hold b back');
  await h.stepping.clearQueueLimit('per-key');
});
