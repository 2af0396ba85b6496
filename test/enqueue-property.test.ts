/**
 * Property: every input to stepping.enqueue / enqueueMany either enqueues and round-trips
 * exactly (stored args equal JSON.parse(JSON.stringify(args)); names, queue, key,
 * priority, dates and delays as given) or throws EnqueueValidationError before any SQL
 * runs, and the caller's transaction is then still usable with nothing half-written. The
 * engine never refuses what the driver let through (no EngineInputError, no raw error).
 * Inputs: names, queues and keys (unicode, lone surrogates, \u0000, SQL injection, at and
 * past their limits, wrong types), args (the same strings, extreme numbers, NaN, BigInt,
 * __proto__, boxed primitives, sparse arrays, toJSON, Dates, Map/Set, cycles, deep and
 * huge values), priorities, dates, delays.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';
import type pg from 'pg';

import {
  DuplicateJobError,
  type EnqueueOptions,
  EnqueueValidationError,
  MAX_DATE,
  MAX_DELAY_MS,
  MAX_INT,
  MAX_JSON_BYTES,
  MAX_JSON_DEPTH,
  MAX_KEY_LENGTH,
  MAX_NAME_LENGTH,
  MAX_PRIORITY,
  MAX_QUEUE_LENGTH,
  MIN_DATE,
  MIN_PRIORITY,
  type StepCall,
} from '../src/index.js';
import { setup } from './support/harness.js';
import { propertyParameters } from './support/property.js';

const h = await setup(import.meta.url);

const INJECTION = [
  "'; DROP TABLE stepping.jobs; --",
  "' OR '1'='1",
  'Robert"); DROP TABLE steps;--',
  '$$; SELECT pg_sleep(10); $$',
  '\\x27',
  '%s %I %L',
  'default',
  'job 0 step 0',
];

/** `valid` most of the time, `invalid` about once in `odds + 1` draws. */
const usually = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>, odds = 60) =>
  fc.oneof({ weight: odds, arbitrary: valid }, { weight: 1, arbitrary: invalid }) as fc.Arbitrary<T | U>;

/** Strings PostgreSQL stores: random unicode (escapes, astral characters) and injection attempts. */
const cleanText = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
  {
    weight: 3,
    arbitrary: fc.string({ unit: 'binary', maxLength: 12 }).filter((t) => !/[\u0000\p{Surrogate}]/u.test(t)),
  },
  { weight: 1, arbitrary: fc.constantFrom(...INJECTION, '"\\\n\u0001\u007f é 😀') },
);
/** Strings with \u0000 or a lone surrogate somewhere. */
const oddText = fc
  .tuple(cleanText, fc.constantFrom('\u0000', '\ud800', '\udfff', '\ud83d'), cleanText)
  .map(([a, odd, b]) => a + odd + b);
/** A string near a length limit, of one- or two-unit characters. */
const nearLimit = (limit: number) =>
  fc
    .tuple(fc.integer({ min: limit - 1, max: limit + 1 }), fc.constantFrom('x', 'é', '😀'))
    .map(([n, c]) => c.repeat(n));
/** Anything but a string. */
const notText = fc.oneof(
  fc.bigInt(),
  fc.constant(Symbol('s')),
  fc.constant(null),
  fc.double(),
  fc.boolean(),
  fc.constant({}),
  fc.constant([]),
);
const nameText = (limit: number) =>
  usually(
    fc.oneof(
      { weight: 30, arbitrary: cleanText.filter((t) => t.length > 0) },
      { weight: 1, arbitrary: nearLimit(limit) },
    ),
    fc.oneof(oddText, notText, fc.constant('')),
  );

const finite = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constantFrom(1e21, 1.5e-7, 5e-324, Number.MAX_VALUE, -0, 2 ** 53 + 2),
);
/** JSON leaves that JSON.stringify reads in its own ways, all storable. */
const trickyLeaf = fc.oneof(
  fc.boolean().map((b) => new Boolean(b)),
  cleanText.map((t) => new String(t)),
  finite.map((n) => new Number(n)),
  fc.constant(undefined),
  fc.date({ noInvalidDate: false }),
);
/** Leaves that must be refused. */
const invalidLeaf = fc.oneof(
  oddText,
  fc.constantFrom(NaN, Infinity, -Infinity, new Number(NaN)),
  fc.bigInt().map((b) => b as unknown),
  fc.constant(Object(1n) as unknown),
  fc.constant(Symbol('x')),
  fc.constant(() => 1),
  fc.constant(new Map([[1, 2]])),
  fc.constant(new Set([1])),
);

const { args } = fc.letrec<{ args: unknown }>((tie) => ({
  args: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    {
      weight: 40,
      arbitrary: usually(fc.oneof(cleanText, finite, fc.boolean(), fc.constant(null)), invalidLeaf, 120),
    },
    { weight: 8, arbitrary: trickyLeaf },
    { weight: 10, arbitrary: fc.array(tie('args'), { maxLength: 4 }) },
    // Sparse arrays: holes where the flags say so.
    {
      weight: 4,
      arbitrary: fc.array(fc.tuple(tie('args'), fc.boolean()), { maxLength: 4 }).map((items) => {
        const out = items.map(([v]) => v);
        items.forEach(([, hole], i) => {
          if (hole) delete out[i];
        });
        return out;
      }),
    },
    {
      weight: 10,
      arbitrary: fc
        .array(
          fc.tuple(fc.oneof(cleanText, fc.constantFrom('__proto__', 'toJSON', 'constructor')), tie('args')),
          {
            maxLength: 4,
          },
        )
        .map((entries) => Object.fromEntries(entries) as unknown),
    },
    { weight: 3, arbitrary: tie('args').map((v) => ({ toJSON: (key: string) => ({ key, v }) })) },
    // Rarely: an object key that PostgreSQL cannot store, or a cycle.
    { weight: 1, arbitrary: tie('args').map((v) => ({ [`k\ud800`]: v })) },
    {
      weight: 1,
      arbitrary: tie('args').map((v) => {
        const cyclic: Record<string, unknown> = { v };
        cyclic.self = cyclic;
        return cyclic;
      }),
    },
  ),
}));
/** Nesting at and around MAX_JSON_DEPTH, and far past it. */
const deepArgs = fc
  .constantFrom(MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 3000)
  .map((depth) => {
    let v: unknown = 'leaf';
    for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { v };
    return v;
  });
/** Printed sizes at and around MAX_JSON_BYTES (escaped characters count as printed). */
const hugeArgs = fc
  .tuple(fc.integer({ min: -2, max: 2 }), fc.constantFrom('x', '\n', 'é'))
  .map(([delta, c]) => {
    const printed = c === 'x' ? 1 : 2; // '\n' prints as \n, é is two bytes of UTF-8
    return c.repeat(Math.floor((MAX_JSON_BYTES - 2) / printed)) + 'y'.repeat(Math.max(0, delta + 1));
  });
const anyArgs = fc.oneof(
  { weight: 80, arbitrary: args },
  { weight: 1, arbitrary: deepArgs },
  { weight: 1, arbitrary: hugeArgs },
);

const intOption = (min: number, max: number) =>
  usually(
    fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min, max: Math.min(max, min + 1000) }) },
      fc.constantFrom(min, max),
    ),
    fc.oneof(fc.constantFrom(min - 1, max + 1, 1.5), finite, notText, fc.string({ maxLength: 3 })),
  );
const date = usually(
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.date({ min: MIN_DATE, max: new Date(MAX_DATE.getTime() - 1), noInvalidDate: true }),
    },
    fc.constantFrom(MIN_DATE, new Date(MAX_DATE.getTime() - 1)),
  ),
  fc.oneof(
    fc.date({ noInvalidDate: false }),
    fc.constantFrom(
      new Date(MIN_DATE.getTime() - 1),
      MAX_DATE,
      new Date(8.64e15),
      new Date(-8.64e15),
      new Date(NaN),
    ),
    notText,
  ),
);
const delay = (min: number) =>
  usually(
    fc.oneof(
      { weight: 4, arbitrary: fc.double({ min, max: MAX_DELAY_MS, noNaN: true }) },
      fc.constantFrom(min, min + 0.4, MAX_DELAY_MS),
    ),
    fc.oneof(fc.constantFrom(MAX_DELAY_MS + 1, min - 1, 1e20, NaN, Infinity), notText),
  );

const stepOptions = fc.record(
  {
    maxAttempts: intOption(1, MAX_INT),
    backoff: usually(
      fc.record({ baseMs: intOption(1, MAX_INT), maxMs: intOption(1, MAX_INT) }, { requiredKeys: [] }),
      notText,
    ),
    compensate: usually(
      fc.record({ name: nameText(MAX_NAME_LENGTH), args: anyArgs }, { requiredKeys: ['name'] }),
      notText,
    ),
  },
  { requiredKeys: [] },
);
const step = usually(
  fc.record(
    { name: nameText(MAX_NAME_LENGTH), args: anyArgs, options: stepOptions, transactional: fc.boolean() },
    { requiredKeys: ['name'] },
  ),
  fc.oneof(notText, fc.constant(undefined)),
);
const steps = usually(
  fc.array(step, { minLength: 1, maxLength: 3 }),
  fc.oneof(
    fc.array(step, { maxLength: 3 }).map((s) => {
      const sparse = [...s, ...s];
      delete sparse[0];
      return sparse;
    }),
    fc.constantFrom([], new Array(2), null, 'steps'),
  ),
);
/** runAt or delayMs (both: refused), and deadline or timeoutMs likewise. */
const when = (at: string, after: string, min: number) =>
  usually(
    fc.oneof(
      fc.constant({}),
      date.map((d) => ({ [at]: d })),
      delay(min).map((d) => ({ [after]: d })),
    ),
    fc.tuple(date, delay(min)).map(([d, ms]) => ({ [at]: d, [after]: ms })),
  );
const options = usually(
  fc
    .tuple(
      fc.record(
        {
          queue: nameText(MAX_QUEUE_LENGTH),
          priority: intOption(MIN_PRIORITY, MAX_PRIORITY),
          key: nameText(MAX_KEY_LENGTH),
          rateKey: nameText(MAX_KEY_LENGTH),
          onDuplicate: usually(fc.constantFrom('return', 'error'), fc.oneof(notText, cleanText)),
          maxAttempts: intOption(1, MAX_INT),
        },
        { requiredKeys: [] },
      ),
      when('runAt', 'delayMs', 0),
      when('deadline', 'timeoutMs', 1),
    )
    .map(([o, run, end]) => ({ ...o, ...run, ...end })),
  fc.constantFrom(undefined, { qeueu: 'x' }, 'fast', 5n),
);

type Job = { steps: unknown; options: unknown };

/** What JSON.stringify makes of a value, as PostgreSQL gives it back (undefined: null). */
function roundTrip(value: unknown): unknown {
  const text = JSON.stringify(value);
  return text === undefined ? null : JSON.parse(text);
}

async function counts(c: pg.Client): Promise<string> {
  const { rows } = await c.query(
    `SELECT (SELECT count(*) FROM stepping.jobs) AS jobs, (SELECT count(*) FROM stepping.steps) AS steps,
            (SELECT count(*) FROM stepping.jobs j
             WHERE step_count <> (SELECT count(*) FROM stepping.steps s WHERE s.job_id = j.id)) AS half`,
  );
  return `${rows[0].jobs} jobs, ${rows[0].steps} steps, ${rows[0].half} half-written`;
}

/** The stored job matches what was asked, exactly. */
async function checkStored(c: pg.Client, jobId: string, job: Job): Promise<void> {
  const callSteps = job.steps as StepCall[];
  const o = (job.options ?? {}) as EnqueueOptions;
  const { rows: jobs } = await c.query(
    `SELECT queue, priority, key, rate_key, step_count,
            extract(epoch FROM available_at - created_at) * 1000 AS delay_ms, available_at,
            extract(epoch FROM deadline - created_at) * 1000 AS timeout_ms, deadline
     FROM stepping.jobs WHERE id = $1`,
    [jobId],
  );
  const row = jobs[0];
  assert.equal(row.queue, o.queue ?? 'default');
  assert.equal(row.priority, (o.priority ?? 0) + 0); // + 0: -0 is stored as 0
  assert.equal(row.key, o.key ?? null);
  assert.equal(row.rate_key, o.rateKey ?? null);
  assert.equal(row.step_count, callSteps.length);
  if (o.runAt) assert.equal(row.available_at.getTime(), o.runAt.getTime());
  else assert.equal(Number(row.delay_ms), Math.round(o.delayMs ?? 0) + 0);
  if (o.deadline) assert.equal(row.deadline.getTime(), o.deadline.getTime());
  else if (o.timeoutMs !== undefined) assert.equal(Number(row.timeout_ms), Math.round(o.timeoutMs) + 0);
  else assert.equal(row.deadline, null);
  const { rows } = await c.query(
    `SELECT name, args, max_attempts, compensate_name, compensate_args FROM stepping.steps
     WHERE job_id = $1 ORDER BY idx`,
    [jobId],
  );
  callSteps.forEach((s, i) => {
    assert.equal(rows[i].name, s.name);
    assert.deepEqual(rows[i].args, roundTrip(s.args), `step ${i} args`);
    assert.equal(rows[i].max_attempts, s.options?.maxAttempts ?? o.maxAttempts ?? null);
    const comp = s.options?.compensate;
    assert.equal(rows[i].compensate_name, comp?.name ?? null);
    if (comp)
      assert.deepEqual(rows[i].compensate_args, roundTrip(comp.args === undefined ? s.args : comp.args));
  });
}

test('enqueue: every input enqueues exactly or is refused with a typed error, the transaction usable', async () => {
  const c = await h.client();
  let accepted = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ steps, options }), { minLength: 1, maxLength: 3 }),
      fc.boolean(),
      async (jobs: Job[], many) => {
        await c.query('BEGIN');
        try {
          const before = await counts(c);
          let results: { jobId: string; created: boolean }[];
          try {
            results =
              many || jobs.length > 1
                ? await h.stepping.enqueueMany(c, jobs as never)
                : [
                    {
                      jobId: await h.stepping.enqueue(c, jobs[0]!.steps as never, jobs[0]!.options as never),
                      created: true,
                    },
                  ];
          } catch (error) {
            // A key repeated in one batch with onDuplicate 'error': refused, the rest left for the caller to roll back.
            if (error instanceof DuplicateJobError) {
              assert.equal((await c.query('SELECT 1 AS ok')).rows[0].ok, 1);
              assert.match(await counts(c), / 0 half-written$/);
              return;
            }
            if (!(error instanceof EnqueueValidationError)) throw error;
            refused++;
            assert.equal((await c.query('SELECT 1 AS ok')).rows[0].ok, 1);
            assert.equal(await counts(c), before);
            return;
          }
          accepted++;
          // A key repeated in one batch returns the first job (created: false).
          for (const [i, r] of results.entries()) if (r.created) await checkStored(c, r.jobId, jobs[i]!);
          assert.match(await counts(c), / 0 half-written$/);
        } finally {
          await c.query('ROLLBACK');
        }
      },
    ),
    propertyParameters('enqueue contract', 300),
  );
  console.log(`# ${accepted} accepted, ${refused} refused`);
  // The generators must exercise both outcomes.
  assert.ok(accepted > 20 && refused > 20, `${accepted} accepted, ${refused} refused`);
});

test('enqueue: valid inputs are always accepted (the driver refuses nothing the engine takes)', async () => {
  const plain = fc
    .string({ unit: 'binary', minLength: 1, maxLength: 8 })
    .filter((s) => !s.includes('\u0000') && !/\p{Surrogate}/u.test(s));
  const json = fc.jsonValue({ maxDepth: 4 }).filter((v) => !JSON.stringify(v).includes('\\u0000'));
  const validStep = fc.record(
    {
      name: plain,
      args: json,
      options: fc.record(
        {
          maxAttempts: fc.integer({ min: 1, max: MAX_INT }),
          backoff: fc.record({ baseMs: fc.integer({ min: 1, max: MAX_INT }) }),
          compensate: fc.record({ name: plain, args: json }),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ['name'] },
  );
  const validOptions = fc.record(
    {
      queue: plain,
      priority: fc.integer({ min: MIN_PRIORITY, max: MAX_PRIORITY }),
      delayMs: fc.double({ min: 0, max: MAX_DELAY_MS, noNaN: true }),
      key: plain,
      rateKey: plain,
      // Later than any first run a delayMs can give (the engine refuses an earlier deadline).
      deadline: fc.date({
        min: new Date(Date.now() + MAX_DELAY_MS + 86_400_000),
        max: new Date(MAX_DATE.getTime() - 1),
        noInvalidDate: true,
      }),
      maxAttempts: fc.integer({ min: 1, max: MAX_INT }),
    },
    { requiredKeys: [] },
  );
  const c = await h.client();
  await fc.assert(
    fc.asyncProperty(fc.array(validStep, { minLength: 1, maxLength: 4 }), validOptions, async (s, o) => {
      await c.query('BEGIN');
      try {
        const id = await h.stepping.enqueue(c, s as StepCall[], o);
        await checkStored(c, id, { steps: s, options: o });
      } finally {
        await c.query('ROLLBACK');
      }
    }),
    propertyParameters('valid enqueue accepted', 150),
  );
});
