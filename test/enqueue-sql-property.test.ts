/**
 * Property: job_enqueue_batch, called directly from SQL with random JSON, accepts exactly
 * the valid batches and refuses every other one with SQLSTATE SP001 (never a raw
 * PostgreSQL error), and the database never holds a half-written job. Each generated
 * field carries whether it is valid, so the test knows which answer to expect. The JSON is
 * written as text, so numbers JavaScript cannot produce (1e400, 1.000, the widest
 * numerics) and timestamps of every shape are covered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';

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
import { propertyParameters } from './support/property.js';

const h = await setup(import.meta.url);

/** A piece of JSON text and whether the engine must accept it where it is used. */
type Gen = { text: string; valid: boolean };
const ok = (text: string): Gen => ({ text, valid: true });
const bad = (text: string): Gen => ({ text, valid: false });
const q = (s: string) => JSON.stringify(s);

/** Valid `valid`, mostly; sometimes one of `invalid`. */
const field = (valid: fc.Arbitrary<string>, invalid: fc.Arbitrary<string>): fc.Arbitrary<Gen> =>
  fc.oneof({ weight: 40, arbitrary: valid.map(ok) }, { weight: 1, arbitrary: invalid.map(bad) });

/** Strings jsonb can hold: any unicode but \u0000 and lone surrogates, and SQL injection attempts. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 10 }).filter((t) => !/[\u0000\p{Surrogate}]/u.test(t)),
  fc.constantFrom("'; DROP TABLE stepping.jobs; --", '$$ %s %I', 'job 0 step 0: name', '\\', '"'),
);
/** A string of exactly n characters (code points), mixing one-, two-, three- and four-byte ones. */
const ofLength = (n: number) => fc.constantFrom('x', 'é', '€', '😀').map((c) => c.repeat(n));
/** Other JSON types, for fields that want a string. */
const notString = fc.constantFrom('5', '1.5', 'true', 'false', '{}', '[]', '[1]', '{"a": 1}');
/** Other JSON types, for fields that want a number. */
const notNumber = fc.constantFrom('"5"', 'true', '{}', '[]', '[5]', '"infinity"', '"NaN"');

/** A string of 1..limit characters (valid) or '' / limit + 1 / another type (invalid). */
const textField = (limit: number) =>
  field(
    fc
      .oneof(
        anyText.filter((t) => t.length > 0 && [...t].length <= limit),
        ofLength(limit),
        ofLength(1),
      )
      .map(q),
    fc.oneof(fc.constant(q('')), ofLength(limit + 1).map(q), notString),
  );
/** An integer in [min, max], written every way JSON allows. */
const intField = (min: number, max: number) =>
  field(
    fc
      .tuple(
        fc.oneof(fc.integer({ min, max }), fc.constantFrom(min, max)),
        fc.constantFrom('', '.0', '.000', 'e0'),
      )
      .map(([n, suffix]) => `${n}${suffix}`),
    fc.oneof(
      fc.constantFrom(`${min - 1}`, `${max + 1}`, '1.5', '0.5', '1e400', '-1e400', `${min}.5`, '2147483648'),
      notNumber,
    ),
  );
/** A time field: valid ones carry their value (milliseconds: since the epoch, or from now). */
type TimeGen = Gen & { value?: number };
/** Valid `valid` (text and value), mostly; sometimes one of `invalid`. */
const timed = (valid: fc.Arbitrary<[string, number]>, invalid: fc.Arbitrary<string>): fc.Arbitrary<TimeGen> =>
  fc.oneof(
    { weight: 40, arbitrary: valid.map(([text, value]) => ({ text, valid: true, value })) },
    { weight: 1, arbitrary: invalid.map(bad) },
  );
/** A number of milliseconds in [min, MAX_DELAY_MS], fractions allowed (the engine rounds it). */
const msField = (min: number) =>
  timed(
    fc.oneof(
      fc
        .double({ min, max: MAX_DELAY_MS, noNaN: true })
        .map((n): [string, number] => [String(n), Math.round(n)]),
      fc.constantFrom<[string, number]>(
        [`${min}`, min],
        [`${MAX_DELAY_MS}`, MAX_DELAY_MS],
        ['1e3', 1000],
        ['2.5', 3],
      ),
    ),
    fc.oneof(fc.constantFrom(`${min - 1}`, `${MAX_DELAY_MS + 1}`, '1e20', '1e400', '-0.5'), notNumber),
  );
/** A timestamp in [MIN_DATE, MAX_DATE), as ISO text or with an offset (valid), or not (invalid). */
const timeField = timed(
  fc.oneof(
    fc
      .date({ min: MIN_DATE, max: new Date(MAX_DATE.getTime() - 1), noInvalidDate: true })
      .map((d): [string, number] => [q(d.toISOString()), d.getTime()]),
    fc.constantFrom<[string, number]>(
      [q(MIN_DATE.toISOString()), MIN_DATE.getTime()],
      [q('2030-01-01 12:00:00+02'), Date.UTC(2030, 0, 1, 10)],
      [q('2100-02-28T23:59:59.999999Z'), Date.UTC(2100, 1, 28, 23, 59, 59, 999) + 0.999],
    ),
  ),
  fc.oneof(
    fc.constantFrom(
      q('infinity'),
      q('-infinity'),
      q('soon'),
      q('2030-02-30T00:00:00Z'),
      q('+010000-01-01T00:00:00Z'),
      q(MAX_DATE.toISOString()),
      q(new Date(MIN_DATE.getTime() - 1).toISOString()),
      q('1999-12-31T23:59:59Z'),
      q(''),
    ),
    notString,
  ),
);

/** Any JSON value as text, including numbers JavaScript cannot write. */
const { json } = fc.letrec<{ json: string }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    anyText.map(q),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
    fc.constantFrom(
      '1e400',
      '-1e-400',
      '1.000',
      '0.000000',
      '-0',
      '12345678901234567890123456789',
      'true',
      'null',
    ),
    fc.array(tie('json'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc
      .array(fc.tuple(anyText, tie('json')), { maxLength: 4 })
      .map((entries) => `{${entries.map(([k, v]) => `${q(k)}:${v}`).join(',')}}`),
  ),
}));
const nested = (depth: number) => `${'['.repeat(depth)}0${']'.repeat(depth)}`;
const widest = `-1${'0'.repeat(131071)}.${'0'.repeat(16383)}`; // 147,457 characters printed
/** Step args: any JSON (valid); at and over the size and depth limits. */
const argsField = fc.oneof(
  { weight: 60, arbitrary: json.map(ok) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      ok(q('x'.repeat(MAX_JSON_BYTES - 2))),
      bad(q('x'.repeat(MAX_JSON_BYTES - 1))),
      ok(q('\n'.repeat((MAX_JSON_BYTES - 2) / 2))),
      bad(q(`${'\n'.repeat((MAX_JSON_BYTES - 2) / 2)}x`)),
      ok(nested(MAX_JSON_DEPTH)),
      bad(nested(MAX_JSON_DEPTH + 1)),
      ok(`[${Array.from({ length: 7 }, () => widest).join(',')}]`),
      bad(`[${Array.from({ length: 8 }, () => widest).join(',')}]`),
    ),
  },
);

/** An object of optional fields (JSON null counts as absent) and extra unknown ones. */
function object(fields: Record<string, fc.Arbitrary<Gen>>, required: string[] = []): fc.Arbitrary<Gen> {
  const entries = Object.entries(fields).map(([name, gen]) =>
    (required.includes(name)
      ? gen
      : fc.oneof(
          { weight: 3, arbitrary: fc.constant(null) },
          { weight: 1, arbitrary: fc.constant(ok('null')) },
          { weight: 3, arbitrary: gen },
        )
    ).map((g) => [name, g] as const),
  );
  return fc.tuple(fc.tuple(...entries), fc.boolean()).map(([pairs, extra]) => {
    const present = pairs.filter((p): p is readonly [string, Gen] => p[1] !== null);
    const members = present.map(([name, g]) => `${q(name)}: ${g.text}`);
    if (extra) members.push('"unknown_field": [1, "x"]');
    return { text: `{${members.join(', ')}}`, valid: present.every(([, g]) => g.valid) };
  });
}

/** A value of the wrong JSON type where an object is expected. */
const notObject = fc.constantFrom('1', '"step"', 'true', '[]', '[{"name": "s"}]').map(bad);

const compensate = fc.oneof(
  { weight: 12, arbitrary: object({ name: textField(MAX_NAME_LENGTH), args: argsField }, ['name']) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      notObject,
      object({ args: argsField }).map((g) => bad(g.text)),
    ),
  },
);
const step = fc.oneof(
  {
    weight: 20,
    arbitrary: object(
      {
        name: textField(MAX_NAME_LENGTH),
        args: argsField,
        max_attempts: intField(1, MAX_INT),
        backoff_base_ms: intField(1, MAX_INT),
        backoff_max_ms: intField(1, MAX_INT),
        compensate,
      },
      ['name'],
    ),
  },
  { weight: 1, arbitrary: notObject },
);
const steps = fc.oneof(
  {
    weight: 20,
    arbitrary: fc
      .array(step, { minLength: 1, maxLength: 3 })
      .map((s) => ({ text: `[${s.map((g) => g.text).join(', ')}]`, valid: s.every((g) => g.valid) })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      bad('[]'),
      bad('{}'),
      bad('"steps"'),
      ok(`[${Array.from({ length: MAX_STEPS }, () => '{"name": "s"}').join(',')}]`),
      bad(`[${Array.from({ length: MAX_STEPS + 1 }, () => '{"name": "s"}').join(',')}]`),
    ),
  },
);
/** run_at or delay_ms, deadline or timeout_ms: both given is invalid. */
const exclusive = (at: string, after: string, min: number) =>
  fc
    .oneof(
      { weight: 4, arbitrary: fc.constant([null, null] as const) },
      { weight: 4, arbitrary: timeField.map((t) => [t, null] as const) },
      { weight: 4, arbitrary: msField(min).map((m) => [null, m] as const) },
      { weight: 1, arbitrary: fc.tuple(timeField, msField(min)) },
    )
    .map(([time, ms]) => {
      const members = [time && `${q(at)}: ${time.text}`, ms && `${q(after)}: ${ms.text}`].filter(Boolean);
      return {
        members,
        valid: (time?.valid ?? true) && (ms?.valid ?? true) && !(time && ms),
        at: time?.value,
        fromNow: ms?.value,
      };
    });
/**
 * The engine refuses a deadline not later than the job's first run (a run_at in the past:
 * now). Both relative: exact;
 * otherwise on this machine's clock, which the engine's (clock_timestamp()) follows within
 * milliseconds, while generated times that close to each other are vanishingly rare.
 */
function deadlineAfterStart(
  run: { at?: number; fromNow?: number },
  end: { at?: number; fromNow?: number },
): boolean {
  if (end.at === undefined && end.fromNow === undefined) return true;
  const now = Date.now();
  // A run_at in the past runs now.
  const start = run.at !== undefined && run.at <= now ? { fromNow: 0 } : run;
  if (start.at === undefined && end.at === undefined) return (end.fromNow ?? 0) > (start.fromNow ?? 0);
  return (end.at ?? now + (end.fromNow ?? 0)) > (start.at ?? now + (start.fromNow ?? 0));
}
const job = fc.oneof(
  {
    weight: 20,
    arbitrary: fc
      .tuple(
        object(
          {
            steps,
            queue: textField(MAX_QUEUE_LENGTH),
            priority: intField(MIN_PRIORITY, MAX_PRIORITY),
            key: textField(MAX_KEY_LENGTH),
            rate_key: textField(MAX_KEY_LENGTH),
            on_duplicate: field(
              fc.constantFrom(q('return'), q('error')),
              fc.constantFrom(q('maybe'), q(''), 'true', '1'),
            ),
          },
          ['steps'],
        ),
        exclusive('run_at', 'delay_ms', 0),
        exclusive('deadline', 'timeout_ms', 0),
      )
      .map(([o, run, end]) => ({
        text: [o.text.slice(0, -1), ...run.members, ...end.members].join(', ') + '}',
        valid: o.valid && run.valid && end.valid && deadlineAfterStart(run, end),
      })),
  },
  { weight: 1, arbitrary: notObject },
);
const batch = fc
  .array(job, { minLength: 1, maxLength: 3 })
  .map((jobs) => ({ text: `[${jobs.map((g) => g.text).join(', ')}]`, valid: jobs.every((g) => g.valid) }));

test('job_enqueue_batch accepts exactly the valid input; every refusal is SP001; nothing is half-written', async () => {
  const c = await h.client();
  await c.query('BEGIN');
  const lastId = async () =>
    (await c.query(`SELECT coalesce(max(id), 0) AS id FROM stepping.jobs`)).rows[0].id as string;
  /** Jobs and steps written after job `after` (indexed look-ups: the transaction only grows). */
  const written = async (after: string) =>
    (
      await c.query(
        `SELECT (SELECT count(*) FROM stepping.jobs WHERE id > $1) AS jobs,
                (SELECT count(*) FROM stepping.steps WHERE job_id > $1) AS steps`,
        [after],
      )
    ).rows[0] as { jobs: string; steps: string };
  /** Problems among the jobs after `lastId`: half-written, orphan steps, values past a limit. */
  const problems = async (lastId: string) =>
    (
      await c.query(
        `SELECT (SELECT count(*) FROM stepping.jobs j WHERE id > $1
                 AND step_count <> (SELECT count(*) FROM stepping.steps s WHERE s.job_id = j.id)) AS half,
                (SELECT count(*) FROM stepping.steps s WHERE job_id > $1
                 AND NOT EXISTS (SELECT 1 FROM stepping.jobs j WHERE j.id = s.job_id)) AS orphans,
                (SELECT count(*) FROM stepping.jobs WHERE id > $1
                 AND (priority NOT BETWEEN $2 AND $3 OR length(queue) NOT BETWEEN 1 AND $4
                      OR NOT isfinite(available_at) OR NOT isfinite(coalesce(deadline, available_at)))) AS out_of_range,
                (SELECT count(*) FROM stepping.steps WHERE job_id > $1
                 AND (octet_length(args::text) > $5 OR octet_length(coalesce(compensate_args, 'null')::text) > $5
                      OR backoff_base_ms < 1 OR backoff_max_ms < 1 OR max_attempts < 1)) AS past_limits`,
        [lastId, MIN_PRIORITY, MAX_PRIORITY, MAX_QUEUE_LENGTH, MAX_JSON_BYTES],
      )
    ).rows[0] as Record<string, string>;
  let accepted = 0;
  let refused = 0;
  try {
    await fc.assert(
      fc.asyncProperty(batch, async ({ text, valid }) => {
        const before = await lastId();
        await c.query('SAVEPOINT p');
        let error: { code?: string; message: string } | undefined;
        try {
          await c.query('SELECT * FROM stepping.job_enqueue_batch($1::jsonb)', [text]);
        } catch (e) {
          error = e as { code?: string; message: string };
        }
        if (error) {
          await c.query('ROLLBACK TO SAVEPOINT p');
          assert.equal(error.code, 'SP001', error.message);
          assert.equal(valid, false, `refused a valid batch: ${error.message}`);
          assert.deepEqual(await written(before), { jobs: '0', steps: '0' });
          refused++;
        } else {
          await c.query('RELEASE SAVEPOINT p');
          assert.equal(valid, true, 'accepted an invalid batch');
          assert.deepEqual(await problems(before), {
            half: '0',
            orphans: '0',
            out_of_range: '0',
            past_limits: '0',
          });
          accepted++;
        }
      }),
      propertyParameters('job_enqueue_batch contract', 400),
    );
  } finally {
    await c.query('ROLLBACK');
  }
  console.log(`# ${accepted} accepted, ${refused} refused`);
  assert.ok(accepted > 40 && refused > 40, `${accepted} accepted, ${refused} refused`);
});
