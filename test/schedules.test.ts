/**
 * Recurring schedules in one process: definition and validation, the view, pause and
 * resume, the missed-run policy after downtime (run once, or backfill up to N), and
 * daylight-saving transitions in Europe/Berlin (a 02:30 daily job runs once each day,
 * on the spring-forward day at 03:00 local time). The engine's clock is set to the days
 * in question; nothing waits for real time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DEFAULT_QUEUE } from '../src/defaults.js';
import { createWorker, defineStep, InvalidArgumentError } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

const tick = defineStep('sched.tick', async () => {});

/** Sets the engine's clock to `iso`. */
async function engineTime(iso: string): Promise<void> {
  await h.pool.query(`UPDATE stepping.settings SET clock_offset = $1::timestamptz - clock_timestamp()`, [
    iso,
  ]);
}

/** Keys of the jobs schedule `name` enqueued, oldest due time first. */
async function keys(name: string): Promise<string[]> {
  const { rows } = await h.pool.query<{ key: string }>(
    `SELECT key FROM stepping.jobs WHERE key LIKE $1 ORDER BY key`,
    [`schedule:${name}:%`],
  );
  return rows.map((r) => r.key);
}

async function nextRunAt(name: string): Promise<string | null> {
  const { rows } = await h.pool.query(`SELECT next_run_at FROM stepping.schedule_overview WHERE name = $1`, [
    name,
  ]);
  return rows[0]?.next_run_at ? (rows[0].next_run_at as Date).toISOString() : null;
}

test('schedule() validates, computes the next run on the engine clock, lists; pause, resume, unschedule', async () => {
  await engineTime('2026-05-05T10:17:30Z');
  assert.equal(
    await h.stepping.schedule('every-5', '*/5 * * * *', [tick({})], { queue: 'sched', priority: 3 }),
    true,
  );
  assert.equal(await nextRunAt('every-5'), '2026-05-05T10:20:00.000Z');
  const [s] = (await h.stepping.listSchedules()).filter((x) => x.name === 'every-5');
  assert.equal(s!.queue, 'sched');
  // Without a queue the view shows the default queue (a literal there: see sql/schedules.sql).
  await h.stepping.schedule('every-6', '*/6 * * * *', [tick({})]);
  const [d] = (await h.stepping.listSchedules()).filter((x) => x.name === 'every-6');
  assert.equal(d!.queue, DEFAULT_QUEUE);
  assert.equal(await h.stepping.unschedule('every-6'), true);
  assert.deepEqual(s!.stepNames, ['sched.tick']);
  assert.equal(s!.timeZone, 'UTC');
  assert.equal(s!.paused, false);
  // Same cron and zone: the next due time is kept (a restarting worker must not skip a run).
  await engineTime('2026-05-05T10:22:00Z');
  assert.equal(await h.stepping.schedule('every-5', '*/5 * * * *', [tick({ v: 2 })]), false);
  assert.equal(await nextRunAt('every-5'), '2026-05-05T10:20:00.000Z');
  // Another cron: recomputed from now.
  assert.equal(await h.stepping.schedule('every-5', '*/10 * * * *', [tick({})]), false);
  assert.equal(await nextRunAt('every-5'), '2026-05-05T10:30:00.000Z');

  assert.equal(await h.stepping.pauseSchedule('every-5'), true);
  await engineTime('2026-05-05T12:01:00Z');
  assert.equal(await h.stepping.resumeSchedule('every-5'), true);
  assert.equal(await nextRunAt('every-5'), '2026-05-05T12:10:00.000Z', 'runs due while paused are skipped');
  assert.equal(await h.stepping.pauseSchedule('nope'), false);

  await assert.rejects(h.stepping.schedule('bad', 'not a cron', [tick({})]), InvalidArgumentError);
  await assert.rejects(
    h.stepping.schedule('bad', '* * * * *', [tick({})], { timeZone: 'Mars/Olympus' }),
    InvalidArgumentError,
  );
  await assert.rejects(
    h.stepping.schedule('bad', '* * * * *', [tick({})], { key: 'x' } as never),
    /unknown schedule option "key"/,
  );
  await assert.rejects(h.stepping.schedule('bad', '* * * * *', []), /at least one step/);
  await assert.rejects(h.stepping.schedule('bad', '* * * * *', [tick({})], { backfill: 1001 }), /backfill/);
  // The engine checks too: a job template it cannot enqueue is refused (SP001).
  await assert.rejects(
    h.pool.query(
      `SELECT stepping.schedule_upsert('bad', '* * * * *', 'UTC', '{"steps": [], "queue": "q"}', now())`,
    ),
    /steps/,
  );
  // A fire enqueues every missed run at once: a large job times a large backfill is refused
  // now, not at every fire (past 256 MiB PostgreSQL refuses the array).
  const big = tick({ blob: 'x'.repeat(900_000) });
  await assert.rejects(
    h.stepping.schedule('bad', '* * * * *', [big], { backfill: 1000 }),
    /a schedule's job \(\d+ bytes\) times its backfill \(1000\) exceeds 33554432 bytes/,
  );
  assert.equal(await h.stepping.schedule('big-ok', '* * * * *', [big], { backfill: 30 }), true);
  assert.equal(await h.stepping.unschedule('big-ok'), true);
  assert.equal((await h.stepping.listSchedules()).filter((x) => x.name === 'bad').length, 0);
  assert.equal(await h.stepping.unschedule('every-5'), true);
  assert.equal(await h.stepping.unschedule('every-5'), false);
});

test('after downtime a schedule runs once for the latest missed time; backfill N enqueues up to N', async (t) => {
  await engineTime('2026-06-01T08:00:30Z');
  await h.stepping.schedule('once', '* * * * *', [tick({})], { queue: 'missed', rateKey: 'tenant-7' });
  await h.stepping.schedule('back3', '* * * * *', [tick({})], { queue: 'missed', backfill: 3 });
  // Ten minutes pass with no worker running.
  await engineTime('2026-06-01T08:10:30Z');
  await h.worker({ steps: [tick], queues: ['missed'], pollIntervalMs: 50 }, t);
  await eventually(async () => (await keys('back3')).length === 3, 10_000, 'the backfill');
  await eventually(async () => (await keys('once')).length === 1, 10_000, 'the single catch-up run');
  assert.deepEqual(await keys('once'), ['schedule:once:2026-06-01T08:10:00.000Z']);
  assert.deepEqual(await keys('back3'), [
    'schedule:back3:2026-06-01T08:08:00.000Z',
    'schedule:back3:2026-06-01T08:09:00.000Z',
    'schedule:back3:2026-06-01T08:10:00.000Z',
  ]);
  assert.equal(await nextRunAt('once'), '2026-06-01T08:11:00.000Z');
  const [job] = (
    await h.pool.query(
      `SELECT queue, status, rate_key FROM stepping.jobs WHERE key = 'schedule:once:2026-06-01T08:10:00.000Z'`,
    )
  ).rows;
  assert.equal(job.queue, 'missed');
  assert.equal(job.rate_key, 'tenant-7');
  await h.stepping.unschedule('once');
  await h.stepping.unschedule('back3');
});

test('daylight saving in Europe/Berlin: a 02:30 daily job runs once on spring-forward and fall-back days', async (t) => {
  await h.worker({ steps: [tick], queues: ['dst'], pollIntervalMs: 50 }, t);
  // Spring forward: 2026-03-29 02:00 CET -> 03:00 CEST; 02:30 does not exist that day.
  await engineTime('2026-03-28T12:00:00Z');
  // backfill 5: a second run for the same day would be enqueued, and seen, if one were due.
  await h.stepping.schedule('berlin-spring', '30 2 * * *', [tick({})], {
    timeZone: 'Europe/Berlin',
    queue: 'dst',
    backfill: 5,
  });
  assert.equal(
    await nextRunAt('berlin-spring'),
    '2026-03-29T01:00:00.000Z',
    '03:00 CEST, the first valid time',
  );
  for (const [now, expected] of [
    ['2026-03-29T12:00:00Z', 1],
    ['2026-03-30T12:00:00Z', 2],
  ] as const) {
    await engineTime(now);
    await eventually(async () => (await keys('berlin-spring')).length >= expected, 10_000, `run ${expected}`);
  }
  assert.deepEqual(await keys('berlin-spring'), [
    'schedule:berlin-spring:2026-03-29T01:00:00.000Z',
    'schedule:berlin-spring:2026-03-30T00:30:00.000Z',
  ]);
  await h.stepping.unschedule('berlin-spring');

  // Fall back: 2026-10-25 03:00 CEST -> 02:00 CET; 02:30 happens twice that day.
  await engineTime('2026-10-24T12:00:00Z');
  await h.stepping.schedule('berlin-fall', '30 2 * * *', [tick({})], {
    timeZone: 'Europe/Berlin',
    queue: 'dst',
    backfill: 5,
  });
  for (const [now, expected] of [
    ['2026-10-25T12:00:00Z', 1],
    ['2026-10-26T12:00:00Z', 2],
  ] as const) {
    await engineTime(now);
    await eventually(async () => (await keys('berlin-fall')).length >= expected, 10_000, `run ${expected}`);
  }
  assert.deepEqual(await keys('berlin-fall'), [
    'schedule:berlin-fall:2026-10-25T00:30:00.000Z', // 02:30 CEST, the first of the two
    'schedule:berlin-fall:2026-10-26T01:30:00.000Z', // 02:30 CET
  ]);
  await h.stepping.unschedule('berlin-fall');
});

test('schedule_fire enqueues a due time once: a second caller with the same due time gets NULL', async () => {
  await engineTime('2026-07-01T00:00:30Z');
  await h.stepping.schedule('race', '* * * * *', [tick({})], { queue: 'race', paused: true });
  await h.pool.query(`UPDATE stepping.schedules SET paused = false WHERE name = 'race'`);
  await engineTime('2026-07-01T00:01:30Z');
  const fire = `SELECT stepping.schedule_fire('race', '2026-07-01T00:01:00Z', ARRAY['2026-07-01T00:01:00Z'::timestamptz],
                                              '2026-07-01T00:02:00Z') AS n`;
  const a = await h.client();
  const b = await h.client();
  await a.query('BEGIN');
  assert.equal((await a.query(fire)).rows[0].n, 1);
  // While the first holds the row (SKIP LOCKED) and after it committed (next_run_at moved on).
  assert.equal((await b.query(fire)).rows[0].n, null);
  await a.query('COMMIT');
  assert.equal((await b.query(fire)).rows[0].n, null);
  assert.deepEqual(await keys('race'), ['schedule:race:2026-07-01T00:01:00.000Z']);
  // Due times outside [next_run_at, now] are refused.
  await assert.rejects(
    b.query(`SELECT stepping.schedule_fire('race', '2026-07-01T00:02:00Z', ARRAY['2026-07-01T05:00:00Z'::timestamptz],
                                           '2026-07-01T05:01:00Z')`),
    /runs must lie between/,
  );
  await h.stepping.unschedule('race');
});

test(
  'schedules the driver cannot fire (cron or zone written in SQL) do not hold up the other schedules',
  { timeout: 120_000 },
  async (t) => {
    await engineTime('2026-08-01T00:00:30Z');
    // schedule_upsert checks the job and the zone's name, not the cron: psql or another
    // language can store an expression croner refuses, or a zone PostgreSQL knows and Node
    // does not. More of them than one look-up of due schedules takes, all due first.
    const job = JSON.stringify({ steps: [{ name: 'sched.tick', args: {} }], queue: 'wedge' });
    // A zone this server knows and Node refuses (PostgreSQL 15 on Debian knows
    // posix/Europe/Berlin, the embedded 17 does not): looked up, not named. Should a server
    // know none, the odd ones get another cron croner refuses instead.
    const { rows: zones } = await h.pool.query<{ name: string }>(
      'SELECT name FROM pg_timezone_names ORDER BY name',
    );
    const nodeRefuses = (zone: string) => {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: zone });
        return false;
      } catch {
        return true;
      }
    };
    const zone = zones.map((z) => z.name).find(nodeRefuses) ?? null;
    await h.pool.query(
      `SELECT stepping.schedule_upsert(format('broken-%s', i),
                                     CASE WHEN i % 2 = 0 THEN 'not a cron' WHEN $2::text IS NULL THEN '61 * * * *' ELSE '0 * * * *' END,
                                     CASE WHEN i % 2 = 0 OR $2::text IS NULL THEN 'UTC' ELSE $2::text END, $1::jsonb,
                                     '2026-08-01T00:00:00Z')
     FROM generate_series(1, 150) i`,
      [job, zone],
    );
    await h.stepping.schedule('healthy', '* * * * *', [tick({})], { queue: 'wedge' });
    await engineTime('2026-08-01T00:01:30Z');
    const failed = new Map<string, number>();
    const w = createWorker({ connectionString: h.url, steps: [tick], queues: ['wedge'], pollIntervalMs: 50 });
    t.after(() => w.stop());
    w.on('error', (e) => {
      if (e.during.startsWith('schedule broken-')) failed.set(e.during, (failed.get(e.during) ?? 0) + 1);
    });
    await w.start();
    await eventually(async () => (await keys('healthy')).length === 1, 20_000, 'the healthy schedule');
    assert.deepEqual(await keys('healthy'), ['schedule:healthy:2026-08-01T00:01:00.000Z']);
    await eventually(() => failed.size === 150, 20_000, 'an error for each broken schedule');
    // Ten more looks, each firing the healthy schedule: a broken one is not tried at each
    // (it waits 1 s, 2 s, 4 s... after its failures: ten tries would take over eight minutes).
    for (let minute = 2; minute <= 11; minute++) {
      await engineTime(`2026-08-01T00:${String(minute).padStart(2, '0')}:30Z`);
      await eventually(
        async () => (await keys('healthy')).length === minute,
        20_000,
        `healthy run ${minute}`,
      );
    }
    assert.ok(
      failed.get('schedule broken-1')! < 10,
      `broken-1 tried ${failed.get('schedule broken-1')} times`,
    );
    // A broken schedule that is fixed fires from its new definition.
    await h.stepping.schedule('broken-2', '*/5 * * * *', [tick({})], { queue: 'wedge' });
    await engineTime('2026-08-01T00:15:30Z');
    await eventually(async () => (await keys('broken-2')).length === 1, 20_000, 'the fixed schedule');
    assert.deepEqual(await keys('broken-2'), ['schedule:broken-2:2026-08-01T00:15:00.000Z']);
    await w.stop();
    await h.pool.query(`DELETE FROM stepping.schedules WHERE name LIKE 'broken-%' OR name = 'healthy'`);
  },
);

test(
  'a thousand yearly schedules with backfill 1000 fire at once: the due times are found from the missed ones, not from 1000 years back',
  { timeout: 180_000 },
  async (t) => {
    await engineTime('2027-12-31T23:00:00Z');
    await h.stepping.schedule('new-year-0', '0 0 1 1 *', [tick({})], { queue: 'new-year', backfill: 1000 });
    // The others as the first (the test writes the table: a thousand trial enqueues would be slow).
    await h.pool.query(
      `INSERT INTO stepping.schedules (name, cron, tz, job, backfill, next_run_at)
     SELECT format('new-year-%s', i), s.cron, s.tz, s.job, s.backfill, s.next_run_at
     FROM stepping.schedules s, generate_series(1, 999) i WHERE s.name = 'new-year-0'`,
    );
    assert.equal(await nextRunAt('new-year-999'), '2028-01-01T00:00:00.000Z');
    await engineTime('2028-01-01T00:00:30Z');
    await h.worker({ steps: [tick], queues: ['none'], pollIntervalMs: 50 }, t);
    // Each fire used to ask croner for the 1000 previous due times (back to the year 1028):
    // about 0.1 to 0.2 s of the worker's event loop per schedule, minutes for the thousand.
    await eventually(
      async () =>
        Number(
          (await h.pool.query(`SELECT count(*) AS n FROM stepping.jobs WHERE key LIKE 'schedule:new-year-%'`))
            .rows[0].n,
        ) === 1000,
      60_000,
      'a job for each of the thousand schedules',
    );
    assert.deepEqual(await keys('new-year-999'), ['schedule:new-year-999:2028-01-01T00:00:00.000Z']);
    assert.equal(await nextRunAt('new-year-999'), '2029-01-01T00:00:00.000Z');
    await h.pool.query(`DELETE FROM stepping.schedules WHERE name LIKE 'new-year-%'`);
  },
);

test(
  'schedule_pause: resuming from SQL needs the next due time (NULL: never again), within the supported dates',
  { timeout: 60_000 },
  async () => {
    await engineTime('2026-09-01T10:00:30Z');
    await h.stepping.schedule('sql-resume', '*/5 * * * *', [tick({})], { paused: true });
    // The call psql users write to resume used to set next_run_at to NULL: an active schedule
    // that never fired again, silently.
    await assert.rejects(
      h.pool.query(`SELECT stepping.schedule_pause('sql-resume', false)`),
      /next due time/,
    );
    await assert.rejects(
      h.pool.query(`SELECT stepping.schedule_pause('sql-resume', false, '-infinity')`),
      /outside the supported dates/,
    );
    let [s] = (await h.stepping.listSchedules()).filter((x) => x.name === 'sql-resume');
    assert.equal(s!.paused, true);
    // Pausing needs no time; resuming with one continues from it.
    assert.equal(
      (await h.pool.query(`SELECT stepping.schedule_pause('sql-resume', true) AS ok`)).rows[0].ok,
      true,
    );
    await h.pool.query(`SELECT stepping.schedule_pause('sql-resume', false, '2026-09-01T10:05:00Z')`);
    assert.equal(await nextRunAt('sql-resume'), '2026-09-01T10:05:00.000Z');
    // An explicit NULL still means "never again" (the driver's resume of an expression without
    // a later due time).
    await h.stepping.pauseSchedule('sql-resume');
    await h.pool.query(`SELECT stepping.schedule_pause('sql-resume', false, NULL)`);
    [s] = (await h.stepping.listSchedules()).filter((x) => x.name === 'sql-resume');
    assert.equal(s!.paused, false);
    assert.equal(s!.nextRunAt, null);
    // The driver's pause and resume are unchanged.
    await h.stepping.pauseSchedule('sql-resume');
    assert.equal(await h.stepping.resumeSchedule('sql-resume'), true);
    assert.equal(await nextRunAt('sql-resume'), '2026-09-01T10:05:00.000Z');
    await h.stepping.unschedule('sql-resume');
  },
);

test(
  'a worker refuses declarative schedules that share a name (the last used to replace the others at each start)',
  { timeout: 60_000 },
  async () => {
    const w = createWorker({
      connectionString: h.url,
      steps: [tick],
      queues: ['dup'],
      schedules: [
        { name: 'dup-report', cron: '0 6 * * *', steps: [tick({ region: 'eu' })], queue: 'dup' },
        { name: 'dup-other', cron: '0 7 * * *', steps: [tick({})], queue: 'dup' },
        { name: 'dup-report', cron: '0 9 * * *', steps: [tick({ region: 'us' })], queue: 'dup' },
      ],
    });
    try {
      await assert.rejects(w.start(), /two schedules named "dup-report"/);
    } finally {
      await w.stop();
    }
    assert.deepEqual(
      (await h.stepping.listSchedules()).filter((s) => s.name.startsWith('dup-')),
      [],
    );
  },
);

test(
  'a producer cannot take a scheduled run away by enqueueing a job with its key first',
  { timeout: 60_000 },
  async () => {
    await engineTime('2026-10-01T00:00:30Z');
    await h.stepping.schedule('hijack', '* * * * *', [tick({ real: true })], { queue: 'hijack' });
    // A role with only the producer grants knows the key of every future run
    // (schedule:<name>:<due time>): it holds the next one with a job that never runs.
    const producer = await h.client();
    await producer.query('SET ROLE stepping_producer');
    const forged = (
      await producer.query(
        `SELECT stepping.job_enqueue('[{"name": "sched.tick", "args": {"real": false}}]', 'elsewhere', 0,
                                   '2199-01-01T00:00:00Z', 'schedule:hijack:2026-10-01T00:01:00.000Z') AS id`,
      )
    ).rows[0].id as string;
    await producer.query('RESET ROLE');
    await engineTime('2026-10-01T00:01:30Z');
    const fire = `SELECT stepping.schedule_fire('hijack', '2026-10-01T00:01:00Z', ARRAY['2026-10-01T00:01:00Z'::timestamptz],
                                               '2026-10-01T00:02:00Z') AS n`;
    assert.equal((await h.pool.query(fire)).rows[0].n, 1, 'the run is enqueued');
    const { rows } = await h.pool.query(
      `SELECT j.id::text, j.queue, j.available_at, s.args FROM stepping.jobs j JOIN stepping.steps s ON s.job_id = j.id
     WHERE j.queue = 'hijack'`,
    );
    assert.equal(rows.length, 1);
    assert.equal((rows[0].available_at as Date).toISOString(), '2026-10-01T00:01:00.000Z');
    assert.deepEqual(rows[0].args, { real: true });
    const [s] = (await h.stepping.listSchedules()).filter((x) => x.name === 'hijack');
    assert.equal(s!.lastJobId, rows[0].id, 'the schedule names its own job, not the forged one');
    assert.notEqual(s!.lastJobId, forged);
    // The key still guards a due time the schedule may have fired before: next_run_at moved
    // back (as after the clock went back) finds its own unfinished job and adds none.
    await h.pool.query(
      `UPDATE stepping.schedules SET next_run_at = '2026-10-01T00:01:00Z' WHERE name = 'hijack'`,
    );
    assert.equal((await h.pool.query(fire)).rows[0].n, 0);
    assert.equal(
      (await h.pool.query(`SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = 'hijack'`)).rows[0].n,
      1,
    );
    await h.stepping.unschedule('hijack');
  },
);

test(
  'a due time whose next one lies past the supported dates is enqueued, and the schedule ends',
  { timeout: 60_000 },
  async (t) => {
    await engineTime('2029-12-31T23:00:00Z');
    // Croner reads a seventh field as years: after 2030 the next due time is in 2250, past
    // MAX_DATE (2200), which schedule_fire refuses as next_run_at.
    await h.stepping.schedule('last-decade', '0 0 0 1 1 * 2030,2250', [tick({})], { queue: 'years' });
    assert.equal(await nextRunAt('last-decade'), '2030-01-01T00:00:00.000Z');
    await engineTime('2030-01-01T00:00:30Z');
    await h.worker({ steps: [tick], queues: ['years'], pollIntervalMs: 50 }, t);
    await eventually(async () => (await keys('last-decade')).length === 1, 20_000, 'the 2030 run');
    assert.deepEqual(await keys('last-decade'), ['schedule:last-decade:2030-01-01T00:00:00.000Z']);
    await eventually(async () => (await nextRunAt('last-decade')) === null, 20_000, 'no next run');
    await h.stepping.unschedule('last-decade');
  },
);

test(
  'schedule() with paused: false resumes a paused schedule from the next due time after now, as resumeSchedule() does',
  { timeout: 60_000 },
  async () => {
    await engineTime('2026-05-05T10:00:30Z');
    const def = {
      name: 'upsert-resume',
      cron: '*/5 * * * *',
      steps: [tick({})],
      queue: 'none',
      backfill: 20,
    };
    await h.stepping.schedule(def.name, def.cron, def.steps, {
      queue: def.queue,
      backfill: 20,
      paused: true,
    });
    await engineTime('2026-05-05T12:00:30Z');
    // Same cron and zone, paused -> active (a declarative definition with paused: false):
    // the next due time used to be kept, and the next look enqueued the 20 runs due while paused.
    await h.stepping.schedule(def.name, def.cron, def.steps, {
      queue: def.queue,
      backfill: 20,
      paused: false,
    });
    assert.equal(await nextRunAt(def.name), '2026-05-05T12:05:00.000Z', 'runs due while paused are skipped');
    // Active -> active with the same cron still keeps the next due time (a restarting worker).
    await engineTime('2026-05-05T12:20:30Z');
    await h.stepping.schedule(def.name, def.cron, def.steps, {
      queue: def.queue,
      backfill: 20,
      paused: false,
    });
    assert.equal(await nextRunAt(def.name), '2026-05-05T12:05:00.000Z');
    await h.stepping.unschedule(def.name);
  },
);

test(
  "a producer holding an uncommitted job with a schedule run's key does not wedge the scheduler nor lose the run",
  { timeout: 90_000 },
  async (t) => {
    await engineTime('2026-05-07T10:00:30Z');
    await h.stepping.schedule('held-a', '* * * * *', [tick({})], { queue: 'held' });
    await h.stepping.schedule('held-b', '* * * * *', [tick({})], { queue: 'held' });
    // The producer's transaction stays open: its key's unique-index entry is undecided.
    const producer = await h.client();
    await producer.query('SET ROLE stepping_producer');
    await producer.query('BEGIN');
    await producer.query(
      `SELECT stepping.job_enqueue('[{"name": "sched.tick", "args": {}}]', 'elsewhere', 0, NULL,
                                   'schedule:held-a:2026-05-07T10:01:00.000Z')`,
    );
    await engineTime('2026-05-07T10:01:30Z');
    // A fire behind it fails fast (lock_timeout) instead of waiting with the schedule row
    // locked; statement_timeout only turns the old endless wait into an error here.
    const c = await h.client();
    await c.query(`SET statement_timeout = '5s'`);
    await assert.rejects(
      c.query(`SELECT stepping.schedule_fire('held-a', '2026-05-07T10:01:00Z',
                                            ARRAY['2026-05-07T10:01:00Z'::timestamptz], '2026-05-07T10:02:00Z')`),
      (e: { code?: string }) => {
        assert.equal(e.code, '55P03', `lock_not_available, not ${e.code}`);
        return true;
      },
    );
    assert.equal(await nextRunAt('held-a'), '2026-05-07T10:01:00.000Z', 'the due time stays due');
    const errors: string[] = [];
    const w = await h.worker({ steps: [tick], queues: ['none'], pollIntervalMs: 50 }, t);
    w.on('error', (e) => errors.push(e.during));
    // The other schedule fires meanwhile; the held one is reported and retried.
    await eventually(async () => (await keys('held-b')).length === 1, 20_000, 'the other schedule');
    await eventually(() => errors.includes('schedule held-a'), 20_000, 'an error for the held schedule');
    assert.deepEqual(await keys('held-a'), []);
    assert.equal(await h.stepping.pauseSchedule('held-b'), true);
    // Once the producer's transaction ends, the held run is enqueued, once.
    await producer.query('ROLLBACK');
    await eventually(async () => (await keys('held-a')).length === 1, 30_000, 'the held run');
    assert.deepEqual(await keys('held-a'), ['schedule:held-a:2026-05-07T10:01:00.000Z']);
    assert.equal(await nextRunAt('held-a'), '2026-05-07T10:02:00.000Z');
    await h.stepping.unschedule('held-a');
    await h.stepping.unschedule('held-b');
  },
);

test(
  'schedule_fire refuses a next due time not after now: the worker role cannot fire one due time many times',
  { timeout: 60_000 },
  async () => {
    await engineTime('2026-05-09T10:00:30Z');
    await h.stepping.schedule('chain', '0 3 * * *', [tick({})], { queue: 'chain' });
    await engineTime('2026-05-10T03:00:10Z');
    const w = await h.client();
    await w.query('SET ROLE stepping_worker');
    // next_run_at moved on by 1 ms stays due: each call used to enqueue another run.
    const fire = `SELECT stepping.schedule_fire('chain', $1, ARRAY[$1::timestamptz], $2) AS n`;
    let from = new Date('2026-05-10T03:00:00Z');
    let n = 0;
    for (let i = 0; i < 5; i++) {
      const next = new Date(from.getTime() + 1);
      n += Number((await w.query(fire, [from, next])).rows[0].n ?? 0);
      from = next;
    }
    assert.equal(n, 0, 'no run enqueued with a next due time in the past');
    assert.equal(await nextRunAt('chain'), '2026-05-10T03:00:00.000Z');
    // The scheduler's own call (the next due time after now) fires once.
    assert.equal((await w.query(fire, ['2026-05-10T03:00:00Z', '2026-05-11T03:00:00Z'])).rows[0].n, 1);
    assert.deepEqual(await keys('chain'), ['schedule:chain:2026-05-10T03:00:00.000Z']);
    await w.query('RESET ROLE');
    await h.stepping.unschedule('chain');
  },
);
