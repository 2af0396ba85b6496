/**
 * The driver's side of the enqueue contract: every input either enqueues and round-trips
 * exactly (the stored args equal JSON.parse(JSON.stringify(args))) or throws
 * EnqueueValidationError before any SQL runs, leaving the caller's transaction usable.
 * Each case here was a raw PostgreSQL error (aborting the transaction), an untyped
 * JavaScript error, or silently changed args before the fix.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';

import { serializeJobs } from '../src/enqueue/serialize.js';
import {
  defineStep,
  EnqueueValidationError,
  jsonbTextBytes,
  MAX_CALL_JSON_BYTES,
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
  type StepCall,
} from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
const noop = defineStep('v.noop', async () => {});
const QUEUE_PARKED = 'nobody-serves-this';

/** Nested arrays `depth` levels deep around 1. */
function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

let markers = 0;

/** In one transaction holding a marker row, every case must throw EnqueueValidationError; then it still commits. */
async function expectRejectedInTransaction(cases: [string, (c: pg.Client) => Promise<unknown>, RegExp][]) {
  const marker = `v-marker-${++markers}`;
  const c = await h.client();
  await c.query('BEGIN');
  await c.query(
    `INSERT INTO stepping.jobs (queue, step_count, step_name, available_at) VALUES ($1, 1, 'x', now())`,
    [marker],
  );
  for (const [what, run, message] of cases) {
    await assert.rejects(
      run(c),
      (e: unknown) => {
        assert.ok(
          e instanceof EnqueueValidationError,
          `${what}: expected EnqueueValidationError, got ${String(e)}`,
        );
        assert.match(e.message, message, what);
        return true;
      },
      what,
    );
    // The transaction was never touched: it still answers.
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, what);
  }
  await c.query('COMMIT');
  const n = await h.pool.query(`SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = $1`, [marker]);
  assert.equal(n.rows[0].n, 1);
}

test('lone surrogates, holes, out-of-range dates and delays are refused before SQL', async () => {
  const sparse: StepCall[] = [noop({}), noop({})];
  delete sparse[0];
  await expectRejectedInTransaction([
    [
      'lone surrogate in args',
      (c) => h.stepping.enqueue(c, [noop({ s: 'emoji half \ud83d' })]),
      /args\.s contains a lone UTF-16 surrogate/,
    ],
    [
      'lone surrogate in an args key',
      (c) => h.stepping.enqueue(c, [noop({ ['k\udc00']: 1 })]),
      /has a key containing a lone UTF-16 surrogate/,
    ],
    [
      'lone surrogate in a step name',
      (c) => h.stepping.enqueue(c, [{ name: 'step\ud800', args: {} }]),
      /step 0 name contains a lone UTF-16 surrogate/,
    ],
    [
      'lone surrogate in a key',
      (c) => h.stepping.enqueue(c, [noop({})], { key: '\ud800' }),
      /key contains a lone UTF-16 surrogate/,
    ],
    [
      'lone surrogate in a queue',
      (c) => h.stepping.enqueue(c, [noop({})], { queue: 'q\udfff' }),
      /queue contains a lone UTF-16 surrogate/,
    ],
    [
      'lone surrogate in a compensation name',
      (c) => h.stepping.enqueue(c, [noop({}, { compensate: { name: '\ud800' } })]),
      /compensate\.name contains a lone UTF-16 surrogate/,
    ],
    [
      '\\u0000 in a queue',
      (c) => h.stepping.enqueue(c, [noop({})], { queue: 'a\u0000' }),
      /queue contains the character \\u0000/,
    ],
    ['a hole as the only step', (c) => h.stepping.enqueue(c, new Array(1)), /step 0 must be an object/],
    ['a hole among steps', (c) => h.stepping.enqueue(c, sparse), /step 0 must be an object/],
    [
      'runAt in year 275760',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: new Date(8.64e15) }),
      /runAt must be from 2000-01-01T00:00:00.000Z to before 2200/,
    ],
    [
      'runAt in year -271821',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: new Date(-8.64e15) }),
      /runAt must be from/,
    ],
    [
      'runAt in year 0',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: new Date('0000-06-01T00:00:00Z') }),
      /runAt must be from/,
    ],
    [
      'runAt in year 10000',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: new Date('+010000-01-01T00:00:00Z') }),
      /runAt must be from/,
    ],
    [
      'runAt just before MIN_DATE',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: new Date(MIN_DATE.getTime() - 1) }),
      /runAt must be from/,
    ],
    [
      'runAt at MAX_DATE',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: MAX_DATE }),
      /runAt must be from/,
    ],
    [
      'deadline in year 10000',
      (c) => h.stepping.enqueue(c, [noop({})], { deadline: new Date('+010000-01-01T00:00:00Z') }),
      /deadline must be from/,
    ],
    [
      'runAt not a Date',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: '2030-01-01' as never }),
      /runAt must be a Date, got "2030-01-01"/,
    ],
    [
      'delayMs 1e20',
      (c) => h.stepping.enqueue(c, [noop({})], { delayMs: 1e20 }),
      /delayMs must be a number of milliseconds from 0 to 3155760000000/,
    ],
    [
      'delayMs over MAX_DELAY_MS',
      (c) => h.stepping.enqueue(c, [noop({})], { delayMs: MAX_DELAY_MS + 1 }),
      /delayMs must be/,
    ],
    ['delayMs NaN', (c) => h.stepping.enqueue(c, [noop({})], { delayMs: NaN }), /delayMs must be/],
    [
      'timeoutMs 1e20',
      (c) => h.stepping.enqueue(c, [noop({})], { timeoutMs: 1e20 }),
      /timeoutMs must be a number of milliseconds from 1/,
    ],
    ['timeoutMs 0', (c) => h.stepping.enqueue(c, [noop({})], { timeoutMs: 0 }), /timeoutMs must be/],
  ]);
});

test('option values of the wrong type give a typed error whose message building never throws', async () => {
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  await expectRejectedInTransaction([
    [
      'BigInt queue',
      (c) => h.stepping.enqueue(c, [noop({})], { queue: 10n as never }),
      /queue must be a string of 1 to 100 characters, got a BigInt/,
    ],
    [
      'BigInt step name',
      (c) => h.stepping.enqueue(c, [{ name: 10n as never, args: {} }]),
      /step 0 name must be a string .*got a BigInt/,
    ],
    [
      'BigInt key',
      (c) => h.stepping.enqueue(c, [noop({})], { key: 10n as never }),
      /key must be a string .*got a BigInt/,
    ],
    [
      'BigInt onDuplicate',
      (c) => h.stepping.enqueue(c, [noop({})], { onDuplicate: 10n as never }),
      /onDuplicate must be 'return' or 'error', got a BigInt/,
    ],
    [
      'Symbol onDuplicate',
      (c) => h.stepping.enqueue(c, [noop({})], { onDuplicate: Symbol('x') as never }),
      /got a symbol/,
    ],
    [
      'object priority',
      (c) => h.stepping.enqueue(c, [noop({})], { priority: {} as never }),
      /priority must be an integer .*got an object/,
    ],
    [
      'revoked proxy priority',
      (c) => h.stepping.enqueue(c, [noop({})], { priority: revoked.proxy as never }),
      /priority must be an integer/,
    ],
    [
      'BigInt maxAttempts',
      (c) => h.stepping.enqueue(c, [noop({})], { maxAttempts: 3n as never }),
      /maxAttempts must be an integer from 1 to 2147483647, got a BigInt/,
    ],
    [
      'Symbol step',
      (c) => h.stepping.enqueue(c, [Symbol('s') as never]),
      /step 0 must be an object \{ name, args \}, got a symbol/,
    ],
    [
      'a definition with a BigInt name',
      (c) => h.stepping.enqueue(c, [Object.assign(() => {}, { stepName: 1n }) as never]),
      /step 0 is a step definition, not a call/,
    ],
    [
      'revoked proxy as args',
      (c) => h.stepping.enqueue(c, [noop(revoked.proxy)]),
      /args could not be read: a getter, toJSON\(\) or proxy threw TypeError/,
    ],
    [
      'a throwing getter',
      (c) =>
        h.stepping.enqueue(c, [
          {
            name: 'x',
            get args(): unknown {
              throw new Error('boom');
            },
          },
        ]),
      /could not be read: a getter or proxy threw Error/,
    ],
    [
      'a throwing toJSON',
      (c) =>
        h.stepping.enqueue(c, [
          noop({
            a: {
              toJSON: () => {
                throw new Error('no');
              },
            },
          }),
        ]),
      /args\.a could not be read/,
    ],
    [
      'options a string',
      (c) => h.stepping.enqueue(c, [noop({})], 'fast' as never),
      /options must be an object, got "fast"/,
    ],
    [
      'backoff a number',
      (c) => h.stepping.enqueue(c, [noop({}, { backoff: 5 as never })]),
      /backoff must be an object/,
    ],
  ]);
});

test('args: nesting, size (compensation args too) and the size of one call are bounded', async () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.again = { cyclic };
  await expectRejectedInTransaction([
    [
      'args nested 3,000 deep',
      (c) => h.stepping.enqueue(c, [noop(nested(3000))]),
      /args\[0\]\[0\].* is nested more than 100 levels deep/,
    ],
    [
      'args nested one over the limit',
      (c) => h.stepping.enqueue(c, [noop(nested(MAX_JSON_DEPTH + 1))]),
      /nested more than 100 levels deep/,
    ],
    [
      'compensation args of 3 MiB',
      (c) =>
        h.stepping.enqueue(c, [
          noop({}, { compensate: { name: 'undo', args: 'x'.repeat(3 * 1024 * 1024) } }),
        ]),
      /step 0 \(v\.noop\) compensate\.args are more than 1048576 bytes/,
    ],
    [
      'args one byte over (escapes count as PostgreSQL prints them)',
      (c) => h.stepping.enqueue(c, [noop(`${'\n'.repeat((MAX_JSON_BYTES - 2) / 2)}x`)]),
      /over the limit/,
    ],
    ['an array of 10^9 holes', (c) => h.stepping.enqueue(c, [noop(new Array(1e9))]), /over the limit/],
    [
      '40 steps of 1 MB in one call',
      (c) =>
        h.stepping.enqueue(
          c,
          Array.from({ length: 40 }, () => noop('y'.repeat(1_000_000))),
        ),
      /over the limit of one call/,
    ],
    [
      'a cycle through a nested object',
      (c) => h.stepping.enqueue(c, [noop(cyclic)]),
      /args\.again\.cyclic refers back to itself/,
    ],
    ['a Set', (c) => h.stepping.enqueue(c, [noop({ s: new Set([1]) })]), /args\.s is a Set/],
    ['a symbol member', (c) => h.stepping.enqueue(c, [noop({ s: Symbol('x') })]), /args\.s is a symbol/],
    ['a boxed BigInt', (c) => h.stepping.enqueue(c, [noop({ b: Object(1n) })]), /args\.b is a BigInt/],
    ['a boxed NaN', (c) => h.stepping.enqueue(c, [noop([new Number(NaN)])]), /args\[0\] is NaN/],
  ]);
});

test('error messages never show args values, nor keys unless they are short identifiers', async () => {
  const secret = 'sk_live_4242424242';
  const cases: unknown[] = [
    { [`${secret}:x`]: 10n },
    { token: `${secret}\ud800` },
    { token: secret.repeat(100_000) },
    { nested: { [`${secret}-${secret}`]: { deeper: NaN } } },
  ];
  for (const args of cases) {
    await assert.rejects(h.stepping.enqueue([noop(args)]), (e: unknown) => {
      assert.ok(e instanceof EnqueueValidationError);
      assert.ok(!e.message.includes('sk_live'), e.message);
      return true;
    });
  }
});

test('args are stored exactly as JSON.stringify gives them', async () => {
  const withProto = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown;
  const sparse = [1, , 3];
  const cases: unknown[] = [
    withProto,
    { nested: JSON.parse('{"__proto__": [1, 2]}') as unknown },
    { f: new Boolean(false), t: new Boolean(true), s: new String('ab'), n: new Number(1.5) },
    [new String(''), new Number(-0), new Boolean(false)],
    sparse,
    [undefined, 1, undefined],
    { gone: undefined, kept: null },
    { at: new Date('2030-05-06T07:08:09.010Z'), bad: new Date(NaN) },
    { custom: { toJSON: (key: string) => `toJSON got key ${key}` } },
    [{ toJSON: (key: string) => `index ${key}` }],
    { big: 1e21, small: 1.5e-7, tiny: 5e-324, max: Number.MAX_VALUE, negZero: -0, neg: -1.25e-300 },
    { text: 'quote " backslash \\ newline \n tab \t bell \u0007 del \u007f emoji 😀 é' },
    Buffer.from('hi'),
    new Uint8Array([1, 2]),
    'just a string',
    42,
    null,
  ];
  const c = await h.client();
  await c.query('BEGIN');
  for (const args of cases) {
    const id = await h.stepping.enqueue(c, [noop(args)]);
    const { rows } = await c.query('SELECT args FROM stepping.steps WHERE job_id = $1', [id]);
    assert.deepEqual(rows[0].args, JSON.parse(JSON.stringify(args)), JSON.stringify(args));
  }
  // No args at all is stored as null.
  const none = await h.stepping.enqueue(c, [{ name: 'v.noop' }]);
  const { rows } = await c.query('SELECT args FROM stepping.steps WHERE job_id = $1', [none]);
  assert.equal(rows[0].args, null);
  await c.query('ROLLBACK');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('serializeJobs bounds the JSON of a whole enqueueMany call, naming the job', () => {
  const jobs = Array.from({ length: 40 }, () => ({ steps: [noop('y'.repeat(1_000_000))] }));
  assert.throws(
    () => serializeJobs(jobs),
    (e: unknown) => {
      assert.ok(e instanceof EnqueueValidationError);
      assert.match(
        e.message,
        /jobs 0 to 33 print to more than 33554432 bytes of JSON, over the limit of one call/,
      );
      return true;
    },
  );
  assert.throws(
    () => serializeJobs([{ steps: [noop({})] }, undefined]),
    /job 1 must be an object \{ steps, options \}/,
  );
  assert.throws(
    () => serializeJobs([{ steps: [noop({})] }, { steps: [] }]),
    /job 1: a job needs at least one step/,
  );
  assert.equal(
    serializeJobs([{ steps: [noop(new String('a'))] }]),
    '[{"steps":[{"name":"v.noop","args":"a"}]}]',
  );
});

test("job options count toward the call's JSON: a batch whose keys alone pass the limit is refused before SQL", async () => {
  // 2,002 bytes of JSON each for key and rateKey (500 four-byte characters, quoted); the
  // args are tiny, so only the options take the batch past MAX_CALL_JSON_BYTES.
  const long = '\u{1F600}'.repeat(MAX_KEY_LENGTH);
  const perJob = 2 * jsonbTextBytes(long);
  const count = Math.ceil(MAX_CALL_JSON_BYTES / perJob) + 1;
  const jobs = Array.from({ length: count }, () => ({
    steps: [noop({})],
    options: { key: long, rateKey: long, queue: QUEUE_PARKED },
  }));
  const c = await h.client();
  await c.query('BEGIN');
  await assert.rejects(h.stepping.enqueueMany(c, jobs), (e: unknown) => {
    assert.ok(e instanceof EnqueueValidationError, `expected EnqueueValidationError, got ${String(e)}`);
    assert.match(
      e.message,
      /print to more than 33554432 bytes of JSON, over the limit of one call: split the batch/,
    );
    return true;
  });
  // Refused by the driver: the transaction is usable and nothing reached the database.
  assert.equal(
    (await c.query('SELECT count(*)::int AS n FROM stepping.jobs WHERE key = $1', [long])).rows[0].n,
    0,
  );
  await c.query('ROLLBACK');
  // Half of it goes through serializeJobs.
  assert.doesNotThrow(() => serializeJobs(jobs.slice(0, Math.floor(count / 2))));
});

test('compensation args round-trip too, and default to the step args read once', async () => {
  let reads = 0;
  const args = {
    get counted() {
      reads++;
      return reads;
    },
  };
  const c = await h.client();
  await c.query('BEGIN');
  const id = await h.stepping.enqueue(c, [
    noop(args, { compensate: { name: 'v.undo' } }),
    noop({}, { compensate: { name: 'v.undo', args: { b: new Boolean(true) } } }),
  ]);
  const { rows } = await c.query(
    'SELECT args, compensate_name, compensate_args FROM stepping.steps WHERE job_id = $1 ORDER BY idx',
    [id],
  );
  await c.query('ROLLBACK');
  assert.equal(reads, 1);
  assert.deepEqual(rows[0], {
    args: { counted: 1 },
    compensate_name: 'v.undo',
    compensate_args: { counted: 1 },
  });
  assert.deepEqual(rows[1].compensate_args, { b: true });
});

test('every limit is accepted exactly at its bound (by the driver and by SQL) and refused one past it', async () => {
  const astral = '😀'.repeat(MAX_NAME_LENGTH); // 200 characters, 400 UTF-16 units
  // Strings whose printed jsonb size is exactly MAX_JSON_BYTES: plain, and with escapes.
  const plain = 'x'.repeat(MAX_JSON_BYTES - 2);
  const escaped = `${'\u0001'.repeat(1000)}${'"'.repeat(1000)}${'é'.repeat(1000)}`;
  const escapedFull = escaped + 'x'.repeat(MAX_JSON_BYTES - jsonbTextBytes(escaped));
  assert.equal(jsonbTextBytes(escapedFull), MAX_JSON_BYTES);
  const c = await h.client();
  await c.query('BEGIN');
  const accepted: [string, () => Promise<string>][] = [
    ['a 200-character name of astral characters', () => h.stepping.enqueue(c, [{ name: astral, args: {} }])],
    ['args of exactly MAX_JSON_BYTES', () => h.stepping.enqueue(c, [noop(plain)])],
    [
      'args of exactly MAX_JSON_BYTES with escapes',
      () => h.stepping.enqueue(c, [noop({}, { compensate: { name: 'u', args: escapedFull } })]),
    ],
    ['args nested exactly MAX_JSON_DEPTH deep', () => h.stepping.enqueue(c, [noop(nested(MAX_JSON_DEPTH))])],
    [
      'MAX_STEPS steps',
      () =>
        h.stepping.enqueue(
          c,
          Array.from({ length: MAX_STEPS }, () => noop({})),
        ),
    ],
    [
      'the longest queue, key and the extreme priority',
      () =>
        h.stepping.enqueue(c, [noop({})], {
          queue: 'q'.repeat(MAX_QUEUE_LENGTH),
          key: 'k'.repeat(MAX_KEY_LENGTH),
          priority: MIN_PRIORITY,
        }),
    ],
    [
      'MAX_PRIORITY and MAX_DATE - 1 ms',
      () =>
        h.stepping.enqueue(c, [noop({})], {
          priority: MAX_PRIORITY,
          runAt: new Date(MAX_DATE.getTime() - 2),
          deadline: new Date(MAX_DATE.getTime() - 1),
        }),
    ],
    [
      'the longest delay and timeout',
      () => h.stepping.enqueue(c, [noop({})], { delayMs: MAX_DELAY_MS - 1, timeoutMs: MAX_DELAY_MS }),
    ],
    [
      'MAX_INT attempts and backoff',
      () =>
        h.stepping.enqueue(c, [
          noop({}, { maxAttempts: MAX_INT, backoff: { baseMs: MAX_INT, maxMs: MAX_INT } }),
        ]),
    ],
  ];
  for (const [what, run] of accepted) {
    await assert.doesNotReject(run, what);
  }
  const printed = await c.query(
    `SELECT max(octet_length(args::text)) AS args, max(octet_length(compensate_args::text)) AS comp FROM stepping.steps`,
  );
  assert.deepEqual(printed.rows[0], { args: MAX_JSON_BYTES, comp: MAX_JSON_BYTES });
  await c.query('ROLLBACK');

  await expectRejectedInTransaction([
    [
      'a 201-character name',
      (t) => h.stepping.enqueue(t, [{ name: `${astral}x`, args: {} }]),
      /name must be a string of 1 to 200 characters, got 201 characters/,
    ],
    ['args of MAX_JSON_BYTES + 1', (t) => h.stepping.enqueue(t, [noop(`${plain}x`)]), /over the limit/],
    [
      'MAX_STEPS + 1 steps',
      (t) =>
        h.stepping.enqueue(
          t,
          Array.from({ length: MAX_STEPS + 1 }, () => noop({})),
        ),
      /at most 1000 steps/,
    ],
    [
      'a queue too long',
      (t) => h.stepping.enqueue(t, [noop({})], { queue: 'q'.repeat(MAX_QUEUE_LENGTH + 1) }),
      /queue must be a string of 1 to 100 characters, got 101 characters/,
    ],
    [
      'a key too long',
      (t) => h.stepping.enqueue(t, [noop({})], { key: 'k'.repeat(MAX_KEY_LENGTH + 1) }),
      /key must be/,
    ],
    [
      'priority past MIN_PRIORITY',
      (t) => h.stepping.enqueue(t, [noop({})], { priority: MIN_PRIORITY - 1 }),
      /priority must be an integer from -1000000 to 1000000/,
    ],
    [
      'MAX_INT + 1 attempts',
      (t) => h.stepping.enqueue(t, [noop({}, { maxAttempts: MAX_INT + 1 })]),
      /maxAttempts must be an integer from 1 to 2147483647/,
    ],
  ]);
});

test('unknown step-call options are refused, naming the option and the step, not dropped', async () => {
  await expectRejectedInTransaction([
    [
      'timeoutMs on a call',
      (c) => h.stepping.enqueue(c, [noop({}), noop({ n: 1 }, { timeoutMs: 5 } as never)]),
      /^step 1 \(v\.noop\) options: unknown option "timeoutMs" \(known: maxAttempts, backoff, compensate\); timeoutMs and transactional are set by defineStep/,
    ],
    [
      'a typo on a plain step object',
      (c) => h.stepping.enqueue(c, [{ name: 'v.plain', args: {}, options: { maxAttempt: 3 } as never }]),
      /^step 0 \(v\.plain\) options: unknown option "maxAttempt"/,
    ],
    [
      'an unknown backoff field',
      (c) => h.stepping.enqueue(c, [noop({}, { backoff: { base: 5 } as never })]),
      /^step 0 \(v\.noop\) options: unknown backoff option "base" \(known: baseMs, maxMs\)/,
    ],
    [
      'an unknown compensate field',
      (c) => h.stepping.enqueue(c, [noop({}, { compensate: { name: 'u', arg: {} } as never })]),
      /^step 0 \(v\.noop\) options: unknown compensate option "arg" \(known: name, args\)/,
    ],
    [
      'in enqueueMany, the job is named too',
      (c) =>
        h.stepping.enqueueMany(c, [{ steps: [noop({})] }, { steps: [noop({}, { retries: 2 } as never)] }]),
      /^job 1: step 0 \(v\.noop\) options: unknown option "retries"/,
    ],
  ]);
});

test('a deadline that comes before the job may first run is refused before SQL, naming both times', async () => {
  const hour = 3_600_000;
  const soon = new Date(Date.now() + hour);
  const later = new Date(Date.now() + 2 * hour);
  await expectRejectedInTransaction([
    [
      'deadline before runAt',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: later, deadline: soon }),
      /^deadline \(.+\) must be later than the job's first run \(runAt .+\): it would fail before it could run$/,
    ],
    [
      'deadline equal to runAt',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: soon, deadline: new Date(soon.getTime()) }),
      /^deadline \(.+\) must be later than the job's first run \(runAt/,
    ],
    [
      'timeoutMs not over delayMs',
      (c) => h.stepping.enqueue(c, [noop({})], { delayMs: 5000, timeoutMs: 5000 }),
      /^timeoutMs \(5000\) must be more than delayMs \(5000\): the job would fail before it could run$/,
    ],
    [
      'deadline already passed',
      (c) => h.stepping.enqueue(c, [noop({})], { deadline: new Date(Date.now() - 1000) }),
      /^deadline \(.+\) must be later than the job's first run \(now, .+\): it would fail before it could run$/,
    ],
    [
      'runAt and deadline both passed (a past runAt runs now)',
      (c) =>
        h.stepping.enqueue(c, [noop({})], {
          runAt: new Date('2001-01-01T00:00:00Z'),
          deadline: new Date('2002-01-01T00:00:00Z'),
        }),
      /^deadline \(2002-01-01T00:00:00.000Z\) must be later than the job's first run \(runAt 2001-01-01T00:00:00.000Z is past, so now, .+\): it would fail before it could run$/,
    ],
    [
      'deadline before now + delayMs',
      (c) => h.stepping.enqueue(c, [noop({})], { delayMs: 2 * hour, deadline: soon }),
      /^deadline \(.+\) must be later than the job's first run \(delayMs 7200000 from now, .+\)/,
    ],
    [
      'runAt after now + timeoutMs',
      (c) => h.stepping.enqueue(c, [noop({})], { runAt: later, timeoutMs: hour }),
      /^timeoutMs 3600000 from now \(.+\) must be later than the job's first run \(runAt .+\)/,
    ],
    [
      'a bad deadline in the second job of a batch',
      (c) =>
        h.stepping.enqueueMany(c, [
          { steps: [noop({})], options: { timeoutMs: hour } },
          { steps: [noop({})], options: { runAt: later, deadline: soon } },
        ]),
      /^job 1: deadline \(.+\) must be later than the job's first run/,
    ],
  ]);
  // The same times the right way round are accepted.
  const c = await h.client();
  await c.query('BEGIN');
  await h.stepping.enqueue(c, [noop({})], { runAt: soon, deadline: later });
  await h.stepping.enqueue(c, [noop({})], { delayMs: 5000, timeoutMs: 5001 });
  await h.stepping.enqueue(c, [noop({})], { delayMs: hour, deadline: later });
  await c.query('ROLLBACK');
});

test(
  'throwing getters and revoked proxies in job specs and options are EnqueueValidationError through pg, a PoolClient and Kysely, the transaction still committing',
  {
    timeout: 120_000,
  },
  async (t) => {
    // Before: with @opentelemetry/api installed (an optional peer dependency, here a dev
    // dependency), the enqueue span read each spec's options.queue before validation, so
    // these escaped as the caller's own Error or TypeError, untyped.
    const revoked = () => {
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      return proxy;
    };
    /** `base` with a getter `key` that throws. */
    const throwing = (key: string, base: object = {}) =>
      Object.defineProperty({ ...base }, key, {
        enumerable: true,
        get() {
          throw new Error(`${key} getter`);
        },
      });
    const read = /^the enqueue input could not be read: a getter or proxy threw (Error|TypeError)$/;
    const cases: [string, (tx: never) => Promise<unknown>, RegExp][] = [
      [
        'a spec whose options getter throws',
        (tx) => h.stepping.enqueueMany(tx, [throwing('options', { steps: [noop({})] }) as never]),
        read,
      ],
      ['a revoked proxy as a spec', (tx) => h.stepping.enqueueMany(tx, [revoked() as never]), read],
      [
        'options whose queue getter throws',
        (tx) => h.stepping.enqueue(tx, [noop({})], throwing('queue')),
        read,
      ],
      ['a revoked proxy as options', (tx) => h.stepping.enqueue(tx, [noop({})], revoked() as never), read],
    ];
    const expectRefused = async (tx: never, client: string) => {
      for (const [what, run, message] of cases) {
        await assert.rejects(
          run(tx),
          (e: unknown) => {
            assert.ok(e instanceof EnqueueValidationError, `${client}, ${what}: got ${String(e)}`);
            assert.match(e.message, message, `${client}, ${what}`);
            return true;
          },
          `${client}, ${what}`,
        );
      }
    };
    const marked = async (marker: string) =>
      (await h.pool.query(`SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = $1`, [marker])).rows[0]
        .n;
    const insertMarker = `INSERT INTO stepping.jobs (queue, step_count, step_name, available_at) VALUES ($1, 1, 'x', now())`;

    const c = await h.client();
    await c.query('BEGIN');
    await c.query(insertMarker, ['v-getters-client']);
    await expectRefused(c as never, 'pg Client');
    await c.query('COMMIT');
    assert.equal(await marked('v-getters-client'), 1);

    const pooled = await h.pool.connect();
    try {
      await pooled.query('BEGIN');
      await pooled.query(insertMarker, ['v-getters-pooled']);
      await expectRefused(pooled as never, 'PoolClient');
      await pooled.query('COMMIT');
    } finally {
      pooled.release();
    }
    assert.equal(await marked('v-getters-pooled'), 1);

    const db = new Kysely<Record<string, never>>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: h.url, max: 2 }) }),
    });
    t.after(() => db.destroy());
    await db.transaction().execute(async (trx) => {
      await trx.executeQuery({
        ...(await import('kysely')).CompiledQuery.raw(insertMarker, ['v-getters-kysely']),
      });
      await expectRefused(trx as never, 'Kysely');
    });
    assert.equal(await marked('v-getters-kysely'), 1);
  },
);
