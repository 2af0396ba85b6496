/**
 * The engine's side of the enqueue contract, for psql, triggers and other languages:
 * job_enqueue_batch (and so job_enqueue) enforces every limit of src/limits.ts itself,
 * raising SQLSTATE SP001 with a message naming the job (0-based), the step and the field,
 * never a raw PostgreSQL error and never the offending value.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type pg from 'pg';

import {
  MAX_DATE,
  MAX_DELAY_MS,
  MAX_INT,
  MAX_JSON_BYTES,
  MAX_JSON_DEPTH,
  MAX_KEY_LENGTH,
  MAX_NAME_LENGTH,
  MAX_PRIORITY,
  MAX_QUEUE_LENGTH,
  MAX_STEPS,
  MIN_DATE,
  MIN_PRIORITY,
} from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** A batch of one job with `steps` and the job fields of `extra`, as JSON text. */
function job(steps: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify([{ steps, ...extra }]);
}

/** Nested arrays `depth` levels deep, as JSON text. */
function nestedText(depth: number): string {
  return `${'['.repeat(depth)}1${']'.repeat(depth)}`;
}

/** Each statement must fail with SP001 and a message matching; nothing is written and the session goes on. */
async function expectSp001(c: pg.Client, cases: [string, string, unknown[], RegExp][]) {
  const count = async () =>
    (
      await c.query(
        `SELECT (SELECT count(*) FROM stepping.jobs) + (SELECT count(*) FROM stepping.steps) AS n`,
      )
    ).rows[0].n;
  const before = await count();
  for (const [what, sql, values, message] of cases) {
    await c.query('SAVEPOINT s');
    await assert.rejects(
      c.query(sql, values),
      (e: unknown) => {
        const err = e as { code?: string; message: string };
        assert.equal(err.code, 'SP001', `${what}: ${err.message}`);
        assert.match(err.message, message, what);
        return true;
      },
      what,
    );
    await c.query('ROLLBACK TO SAVEPOINT s');
  }
  assert.equal(await count(), before);
}

test('the inputs the driver used to let through to SQL are refused by SQL too (SP001 naming the field)', async () => {
  const c = await h.client();
  await c.query('BEGIN');
  const step = { name: 's' };
  await expectSp001(c, [
    [
      '5,000 steps',
      'SELECT stepping.job_enqueue($1)',
      [JSON.stringify(Array.from({ length: 5000 }, () => step))],
      /^stepping: job 0: steps must be an array of 1 to 1000 steps$/,
    ],
    [
      '8 MiB of args',
      'SELECT stepping.job_enqueue($1)',
      [JSON.stringify([{ name: 's', args: 'x'.repeat(8 * 1024 * 1024) }])],
      /^stepping: job 0 step 0: args are 8388610 bytes as PostgreSQL prints them, over the limit of 1048576$/,
    ],
    [
      'priority -2^31',
      'SELECT stepping.job_enqueue($1, p_priority => $2)',
      [JSON.stringify([step]), -(2 ** 31)],
      /^stepping: job 0: priority must be an integer from -1000000 to 1000000$/,
    ],
    [
      'a 7,990-character queue',
      'SELECT stepping.job_enqueue($1, $2)',
      [JSON.stringify([step]), 'q'.repeat(7990)],
      /^stepping: job 0: queue must be a string of 1 to 100 characters$/,
    ],
    [
      'a negative backoff',
      'SELECT stepping.job_enqueue($1)',
      [JSON.stringify([{ name: 's', backoff_base_ms: -1000 }])],
      /^stepping: job 0 step 0: backoff_base_ms must be an integer from 1 to 2147483647$/,
    ],
    [
      'max_attempts 0',
      'SELECT stepping.job_enqueue($1)',
      [JSON.stringify([step, { name: 's', max_attempts: 0 }])],
      /^stepping: job 0 step 1: max_attempts must be an integer from 1 to 2147483647$/,
    ],
    [
      "run_at 'infinity'",
      "SELECT stepping.job_enqueue($1, p_run_at => 'infinity')",
      [JSON.stringify([step])],
      /^stepping: job 0: run_at must be a timestamp \(a string\) from .* to before /,
    ],
    [
      "deadline '-infinity'",
      "SELECT stepping.job_enqueue($1, p_deadline => '-infinity')",
      [JSON.stringify([step])],
      /^stepping: job 0: deadline must be a timestamp/,
    ],
  ]);
  await c.query('ROLLBACK');
});

test('every field of job_enqueue_batch is checked for type and range, never reaching a cast or constraint', async () => {
  const c = await h.client();
  await c.query('BEGIN');
  const ok = [{ name: 's' }];
  const q = 'SELECT * FROM stepping.job_enqueue_batch($1::jsonb)';
  const cases: [string, string, RegExp][] = [
    ['a job that is a number', '[1]', /^stepping: job 0: is not an object$/],
    ['the second job not an object', `[${job(ok).slice(1, -1)}, "x"]`, /^stepping: job 1: is not an object$/],
    ['steps an object', job({ 0: { name: 's' } }), /job 0: steps must be an array/],
    ['no steps', job([]), /job 0: steps must be an array/],
    ['a step that is a string', job([{ name: 's' }, 'x']), /^stepping: job 0 step 1: is not an object$/],
    [
      'a job without steps, then one with a bad step',
      '[{"queue": "q"}, {"steps": [1]}]',
      /^stepping: job 1 step 0: is not an object$/,
    ],
    ['steps null', job(null), /^stepping: job 0: steps must be an array of 1 to 1000 steps$/],
    [
      'a step that is an array (22023 from jsonb_to_recordset before)',
      job([[{ name: 's' }]]),
      /job 0 step 0: is not an object/,
    ],
    [
      'a name that is a number',
      job([{ name: 5 }]),
      /job 0 step 0: name must be a string of 1 to 200 characters/,
    ],
    [
      'an empty name (23514 before)',
      job([{ name: 's' }, { name: '' }]),
      /job 0 step 1: name must be a string/,
    ],
    [
      'a name of 201 characters',
      job([{ name: 'é'.repeat(MAX_NAME_LENGTH + 1) }]),
      /job 0 step 0: name must be/,
    ],
    ['priority a string (22P02 before)', job(ok, { priority: '5' }), /job 0: priority must be an integer/],
    ['priority 1.5', job(ok, { priority: 1.5 }), /job 0: priority must be an integer/],
    [
      'priority 1e400 (22003 before)',
      job(ok, { priority: 1 }).replace('"priority":1', '"priority":1e400'),
      /priority must be/,
    ],
    ['priority past MAX_PRIORITY', job(ok, { priority: MAX_PRIORITY + 1 }), /priority must be/],
    ['queue a number', job(ok, { queue: 5 }), /job 0: queue must be a string of 1 to 100 characters/],
    ['queue empty', job(ok, { queue: '' }), /job 0: queue must be a string/],
    ['key an object', job(ok, { key: { a: 1 } }), /job 0: key must be a string of 1 to 500 characters/],
    ['key of 501 characters', job(ok, { key: 'k'.repeat(MAX_KEY_LENGTH + 1) }), /job 0: key must be/],
    [
      'on_duplicate maybe',
      job(ok, { on_duplicate: 'maybe' }),
      /job 0: on_duplicate must be "return" or "error"/,
    ],
    ['on_duplicate true', job(ok, { on_duplicate: true }), /job 0: on_duplicate must be/],
    ['run_at a number', job(ok, { run_at: 5 }), /job 0: run_at must be a timestamp/],
    ['run_at not a date (22007 before)', job(ok, { run_at: 'soon' }), /job 0: run_at must be a timestamp/],
    ['run_at February 30 (22008 before)', job(ok, { run_at: '2030-02-30T00:00:00Z' }), /run_at must be/],
    [
      'run_at year 10000 (22009 before)',
      job(ok, { run_at: '+010000-01-01T00:00:00.000Z' }),
      /run_at must be/,
    ],
    ['run_at infinity', job(ok, { run_at: 'infinity' }), /run_at must be/],
    ['run_at at MAX_DATE', job(ok, { run_at: MAX_DATE.toISOString() }), /run_at must be/],
    [
      'run_at before MIN_DATE',
      job(ok, { run_at: new Date(MIN_DATE.getTime() - 1).toISOString() }),
      /run_at must be/,
    ],
    [
      'run_at and delay_ms',
      job(ok, { run_at: '2030-01-01T00:00:00Z', delay_ms: 5 }),
      /job 0: give run_at or delay_ms, not both/,
    ],
    [
      'delay_ms a string',
      job(ok, { delay_ms: '5' }),
      /job 0: delay_ms must be a number from 0 to 3155760000000/,
    ],
    ['delay_ms 1e20 (22003 before)', job(ok, { delay_ms: 1e20 }), /delay_ms must be/],
    ['delay_ms -1', job(ok, { delay_ms: -1 }), /delay_ms must be/],
    ['deadline a boolean', job(ok, { deadline: true }), /job 0: deadline must be a timestamp/],
    [
      'deadline and timeout_ms',
      job(ok, { deadline: '2030-01-01T00:00:00Z', timeout_ms: 5 }),
      /give deadline or timeout_ms/,
    ],
    [
      'timeout_ms past MAX_DELAY_MS',
      job(ok, { timeout_ms: MAX_DELAY_MS + 1 }),
      /job 0: timeout_ms must be a number/,
    ],
    [
      'max_attempts true',
      job([{ name: 's', max_attempts: true }]),
      /job 0 step 0: max_attempts must be an integer/,
    ],
    ['max_attempts 2^31 (22003 before)', job([{ name: 's', max_attempts: 2 ** 31 }]), /max_attempts must be/],
    [
      'backoff_max_ms 0',
      job([{ name: 's', backoff_max_ms: 0 }]),
      /job 0 step 0: backoff_max_ms must be an integer from 1/,
    ],
    ['backoff_base_ms 2.5', job([{ name: 's', backoff_base_ms: 2.5 }]), /backoff_base_ms must be/],
    [
      'compensate a string',
      job([{ name: 's', compensate: 'undo' }]),
      /job 0 step 0: compensate must be an object \{name, args\}/,
    ],
    [
      'compensate without a name',
      job([{ name: 's', compensate: { args: {} } }]),
      /job 0 step 0: compensate\.name must be a string/,
    ],
    [
      'compensation args over the limit',
      job([{ name: 's', compensate: { name: 'u', args: 'x'.repeat(MAX_JSON_BYTES) } }]),
      /job 0 step 0: compensate\.args are 1048578 bytes/,
    ],
    [
      'args nested 101 deep',
      job([{ name: 's', args: 0 }]).replace('"args":0', `"args":${nestedText(MAX_JSON_DEPTH + 1)}`),
      /job 0 step 0: args are nested more than 100 levels deep/,
    ],
    [
      'args of 8 widest numbers (each 14 bytes of jsonb)',
      job([{ name: 's', args: 0 }]).replace(
        '"args":0',
        `"args":[${Array.from({ length: 8 }, () => `-1${'0'.repeat(131071)}.${'0'.repeat(16383)}`).join(',')}]`,
      ),
      /job 0 step 0: args are 1179672 bytes/,
    ],
  ];
  await expectSp001(
    c,
    cases.map(([what, payload, message]) => [what, q, [payload], message]),
  );
  await c.query('ROLLBACK');
});

test('the steps of a job whose key is already held are checked too', async () => {
  const c = await h.client();
  await c.query('BEGIN');
  await c.query(`SELECT stepping.job_enqueue('[{"name":"s"}]', p_key => 'held')`);
  await expectSp001(c, [
    [
      'a held key with a bad step',
      'SELECT stepping.job_enqueue($1, p_key => $2)',
      [JSON.stringify([{ name: 's' }, { name: 's', max_attempts: 0 }]), 'held'],
      /job 0 step 1: max_attempts/,
    ],
  ]);
  await c.query('ROLLBACK');
});

test('errors name the job of a batch and never show the values', async () => {
  const c = await h.client();
  await c.query('BEGIN');
  const secret = 'sk_live_4242424242';
  const jobs = [
    { steps: [{ name: 's', args: { token: secret } }] },
    {
      steps: [
        { name: 's', args: { token: secret } },
        { name: 's', args: secret.repeat(60_000) },
      ],
      queue: secret,
    },
  ];
  await assert.rejects(
    c.query('SELECT * FROM stepping.job_enqueue_batch($1::jsonb)', [JSON.stringify(jobs)]),
    (e: unknown) => {
      const err = e as { code?: string; message: string; detail?: string; where?: string };
      assert.equal(err.code, 'SP001');
      assert.match(err.message, /^stepping: job 1 step 1: args are 1080002 bytes/);
      for (const text of [err.message, err.detail ?? '', err.where ?? ''])
        assert.ok(!text.includes('sk_live'), text);
      return true;
    },
  );
  await c.query('ROLLBACK');
});

test('every limit is accepted by SQL exactly at its bound', async () => {
  const c = await h.client();
  await c.query('BEGIN');
  const widest = `-1${'0'.repeat(131071)}.${'0'.repeat(16383)}`; // 147,457 characters in 14 bytes of jsonb
  const cases: [string, string][] = [
    ['MAX_STEPS steps', job(Array.from({ length: MAX_STEPS }, () => ({ name: 's' })))],
    [
      'names of 200 characters (multibyte)',
      job([{ name: 'é'.repeat(MAX_NAME_LENGTH), compensate: { name: '😀'.repeat(MAX_NAME_LENGTH) } }]),
    ],
    ['args of exactly MAX_JSON_BYTES', job([{ name: 's', args: 'x'.repeat(MAX_JSON_BYTES - 2) }])],
    [
      'args of 7 widest numbers (1,032,213 bytes printed from 106 bytes of jsonb)',
      job([{ name: 's', args: 0 }]).replace(
        '"args":0',
        `"args":[${Array.from({ length: 7 }, () => widest).join(',')}]`,
      ),
    ],
    [
      'args nested exactly MAX_JSON_DEPTH deep',
      job([{ name: 's', args: 0 }]).replace('"args":0', `"args":${nestedText(MAX_JSON_DEPTH)}`),
    ],
    [
      'the extreme priority, queue and key',
      job([{ name: 's' }], {
        priority: MIN_PRIORITY,
        queue: 'q'.repeat(MAX_QUEUE_LENGTH),
        key: 'k'.repeat(MAX_KEY_LENGTH),
      }),
    ],
    [
      'MAX_PRIORITY and run_at at MIN_DATE',
      job([{ name: 's' }], {
        priority: MAX_PRIORITY,
        run_at: MIN_DATE.toISOString(),
        deadline: new Date(MAX_DATE.getTime() - 1).toISOString(),
      }),
    ],
    [
      'the longest delay and timeout',
      job([{ name: 's' }], { delay_ms: MAX_DELAY_MS - 1, timeout_ms: MAX_DELAY_MS }),
    ],
    [
      'integral numbers written as decimals',
      job([{ name: 's', max_attempts: 1 }]).replace('"max_attempts":1', '"max_attempts":1.000'),
    ],
    [
      'MAX_INT attempts and backoff, an unknown field (transactional) ignored',
      job([
        {
          name: 's',
          max_attempts: MAX_INT,
          backoff_base_ms: MAX_INT,
          backoff_max_ms: MAX_INT,
          transactional: 'no longer a field: the worker decides',
        },
      ]),
    ],
    [
      'JSON nulls as absent fields',
      job([{ name: 's', args: null, max_attempts: null, compensate: null }], {
        queue: null,
        priority: null,
        key: null,
        run_at: null,
        delay_ms: null,
        deadline: null,
        timeout_ms: null,
        on_duplicate: null,
      }),
    ],
    ['a timestamp with an offset', job([{ name: 's' }], { run_at: '2030-01-01 12:00:00+02' })],
  ];
  for (const [what, payload] of cases) {
    const { rows } = await c.query('SELECT * FROM stepping.job_enqueue_batch($1::jsonb)', [payload]);
    assert.equal(rows.length, 1, what);
    assert.equal(rows[0].created, true, what);
  }
  const { rows } = await c.query(`SELECT max(octet_length(args::text)) AS bytes FROM stepping.steps`);
  assert.equal(rows[0].bytes, MAX_JSON_BYTES);
  await c.query('ROLLBACK');
});

test('a deadline that comes before the job may first run is refused by SQL (engine clock), and so is a passed deadline given to job_retry', async () => {
  const c = await h.client();
  await c.query('BEGIN');
  const q = 'SELECT * FROM stepping.job_enqueue_batch($1::jsonb)';
  const first =
    /deadline \(deadline or timeout_ms\) must be later than the job's first run \(run_at or delay_ms, else now\): it would fail before it could run$/;
  const hour = 3_600_000;
  const soon = new Date(Date.now() + hour).toISOString();
  const later = new Date(Date.now() + 2 * hour).toISOString();
  const ok = [{ name: 's' }];
  await expectSp001(c, [
    [
      'deadline before run_at',
      q,
      [job(ok, { run_at: later, deadline: soon })],
      new RegExp(`^stepping: job 0: ${first.source}`),
    ],
    ['deadline equal to run_at', q, [job(ok, { run_at: soon, deadline: soon })], first],
    ['timeout_ms equal to delay_ms', q, [job(ok, { delay_ms: 5000, timeout_ms: 5000 })], first],
    ['timeout_ms 0', q, [job(ok, { timeout_ms: 0 })], first],
    ['a passed deadline', q, [job(ok, { deadline: '2001-01-01T00:00:00Z' })], first],
    [
      'a passed deadline after a passed run_at (which runs now)',
      q,
      [job(ok, { run_at: '2001-01-01T00:00:00Z', deadline: '2002-01-01T00:00:00Z' })],
      first,
    ],
    ['deadline before now + delay_ms', q, [job(ok, { delay_ms: 2 * hour, deadline: soon })], first],
    ['run_at after now + timeout_ms', q, [job(ok, { run_at: later, timeout_ms: hour })], first],
    [
      'the second job of a batch',
      q,
      [
        JSON.stringify([
          { steps: ok, timeout_ms: hour },
          { steps: ok, run_at: later, deadline: soon },
        ]),
      ],
      /^stepping: job 1: deadline \(deadline or timeout_ms\)/,
    ],
    [
      'job_enqueue with a passed p_deadline',
      "SELECT stepping.job_enqueue($1, p_deadline => now() - interval '1 minute')",
      [JSON.stringify(ok)],
      first,
    ],
  ]);
  // The right way round, they are accepted.
  await c.query(q, [job(ok, { run_at: soon, deadline: later })]);
  await c.query(q, [job(ok, { delay_ms: 5000, timeout_ms: 5001 })]);
  await c.query(q, [job(ok, { delay_ms: hour, deadline: later })]);
  await c.query('ROLLBACK');

  // job_retry: a new deadline already passed would fail the job again at once.
  const { rows } = await h.pool.query(`SELECT stepping.job_enqueue($1) AS id`, [JSON.stringify(ok)]);
  await h.pool.query(`UPDATE stepping.jobs SET status = 'failed', finished_at = now() WHERE id = $1`, [
    rows[0].id,
  ]);
  await assert.rejects(
    h.pool.query(`SELECT stepping.job_retry($1, now() - interval '1 second')`, [rows[0].id]),
    (e: unknown) => {
      const err = e as { code?: string; message: string };
      assert.equal(err.code, 'SP001', err.message);
      assert.match(
        err.message,
        /^stepping: job_retry: p_deadline has passed on the engine's clock: the job would fail again at once$/,
      );
      return true;
    },
  );
  assert.equal(
    (await h.pool.query(`SELECT status FROM stepping.jobs WHERE id = $1`, [rows[0].id])).rows[0].status,
    'failed',
  );
});
