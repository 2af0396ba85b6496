/**
 * Data between steps: a handler's return value is stored with the step's completion, seen
 * by later steps (ctx.results) and by compensations (compensate(args, result)), returned by
 * waitForJob and shown by the views; values that cannot be stored fail the step clearly
 * and permanently; a crash between a handler's return and its report stores nothing of
 * that attempt; a transactional step's result commits with its ctx.tx writes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineStep, PermanentError, type StepContext } from '../src/index.js';
import { MAX_CLAIM_RESULTS_BYTES, MAX_JOB_RESULTS_BYTES, MAX_JSON_BYTES } from '../src/limits.js';
import { start, trackChildren, within } from './fixtures/processes.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();
await h.pool.query(`CREATE TABLE res_tx_effects (id text PRIMARY KEY, job_id bigint NOT NULL)`);

/** What handlers saw, per job: step name, phase and ctx.results. */
const seen = new Map<
  string,
  { name: string; phase: string; stepIndex: number; results: unknown[]; args: unknown }[]
>();
function see(name: string, args: unknown, ctx: StepContext): void {
  const list = seen.get(ctx.jobId) ?? [];
  list.push({ name, phase: ctx.phase, stepIndex: ctx.stepIndex, results: ctx.results as unknown[], args });
  seen.set(ctx.jobId, list);
}
/** Calls of compensate(args, result), per order id. */
const compensateCalls: { step: string; args: unknown; result: unknown }[] = [];

interface Charge {
  orderId: string;
  cents: number;
}
interface ChargeResult {
  chargeId: string;
  cents: number;
}

const chargeStep = defineStep(
  'res.charge',
  async (args: Charge, ctx): Promise<ChargeResult> => {
    see('res.charge', args, ctx);
    return { chargeId: `ch-${args.orderId}`, cents: args.cents };
  },
  {
    compensate: (args, result) => {
      compensateCalls.push({ step: 'res.charge', args, result });
      return { name: 'res.refund', args: { orderId: args.orderId, chargeId: result?.chargeId ?? null } };
    },
  },
);
const refundStep = defineStep(
  'res.refund',
  async (args: { orderId: string; chargeId: string | null }, ctx) => {
    see('res.refund', args, ctx);
    // A compensation's return value is not stored, so it need not be JSON.
    return { refunded: args.chargeId, when: 10n, done: () => true };
  },
);
const receiptStep = defineStep('res.receipt', async (args: unknown, ctx) => {
  see('res.receipt', args, ctx);
  return `receipt for ${(ctx.results[0] as ChargeResult).chargeId}`;
});
const nothingStep = defineStep('res.nothing', async (args: unknown, ctx) => {
  see('res.nothing', args, ctx);
});
const nullStep = defineStep('res.null', async (args: unknown, ctx) => {
  see('res.null', args, ctx);
  return null;
});
const richStep = defineStep('res.rich', async () => ({
  at: new Date(0),
  boxed: [new Number(2), new String('s'), new Boolean(false)],
  custom: { toJSON: () => 'custom' },
  // Text that merely looks like escapes, and a well-formed surrogate pair.
  text: 'C:\\u0000\\ud800 😀',
  left: undefined,
  holes: [undefined],
}));
const failStep = defineStep(
  'res.fail',
  async (args: { orderId: string }, ctx) => {
    see('res.fail', args, ctx);
    throw new PermanentError('shipping refused');
  },
  {
    compensate: (args, result) => {
      compensateCalls.push({ step: 'res.fail', args, result });
      return { name: 'res.refund', args: { orderId: args.orderId, chargeId: null } };
    },
  },
);

/** Fails its first attempt (or asks to run later), then charges: its compensation needs the charge id. */
const flakyChargeStep = defineStep(
  'res.flaky-charge',
  async (args: Charge & { first: 'fail' | 'later' }, ctx): Promise<ChargeResult> => {
    see('res.flaky-charge', args, ctx);
    if (ctx.attempt === 1 && args.first === 'fail') throw new Error('provider timeout');
    if (ctx.attempt === 1 && seen.get(ctx.jobId)!.length === 1 && args.first === 'later') {
      return ctx.retryLater(10) as never;
    }
    return { chargeId: `ch-${args.orderId}`, cents: args.cents };
  },
  {
    backoff: { baseMs: 10, maxMs: 10 },
    compensate: (args, result) => ({
      name: 'res.refund',
      args: { orderId: args.orderId, chargeId: result?.chargeId ?? null },
    }),
  },
);

/** A value of each kind a result cannot be. */
function badValue(kind: string): unknown {
  switch (kind) {
    case 'bigint':
      return { amount: 10n };
    case 'function':
      return () => 'not data';
    case 'nested-function':
      return { id: 'x', callback: () => 'not data' };
    case 'cycle': {
      const node: Record<string, unknown> = { id: 1 };
      node.parent = { child: node };
      return node;
    }
    case 'nan':
      return { total: Number.NaN };
    case 'infinity':
      return [1, Infinity];
    case 'nul':
      return { note: 'a\u0000b' };
    case 'surrogate':
      return { note: 'broken \ud800 pair' };
    case 'map':
      return new Map([['a', 1]]);
    case 'too-big':
      return 'x'.repeat(MAX_JSON_BYTES);
    case 'too-big-printed':
      // Under the limit as JSON text ([1,1,...]: 2 bytes an element), over it as PostgreSQL
      // prints the jsonb ([1, 1, ...]: 3 bytes an element): the engine refuses the report.
      return new Array<number>(Math.ceil(MAX_JSON_BYTES / 2.5)).fill(1);
    default:
      throw new Error(`unknown kind ${kind}`);
  }
}
const badStep = defineStep('res.bad', async (args: { kind: string }) => badValue(args.kind));

const lastStep = defineStep(
  'res.last',
  async (_args: unknown, ctx) => {
    await ctx.tx!.query('INSERT INTO res_tx_effects (id, job_id) VALUES ($1, $2)', ['last', ctx.jobId]);
    return 'one more';
  },
  { transactional: true },
);

const txStep = defineStep(
  'res.tx',
  async (args: { id: string; big: boolean }, ctx) => {
    await ctx.tx!.query('INSERT INTO res_tx_effects (id, job_id) VALUES ($1, $2)', [args.id, ctx.jobId]);
    return args.big ? badValue('too-big-printed') : { written: args.id };
  },
  { transactional: true },
);

const badCompensations = {
  // The handler's result lacks what its compensate function reads.
  throws: defineStep('res.comp-throws', async (): Promise<{ missing?: { id: string } }> => ({}), {
    compensate: (_args, result) => ({ name: 'res.refund', args: { id: result!.missing!.id } }),
  }),
  notJson: defineStep('res.comp-not-json', async () => ({ ok: true }), {
    compensate: () => ({ name: 'res.refund', args: { amount: 10n } }),
  }),
};

/** Errors the worker reported (a refused report is one), as `during: message`. */
const workerErrors: string[] = [];
const worker = await h.worker({
  steps: [
    chargeStep,
    refundStep,
    receiptStep,
    nothingStep,
    nullStep,
    richStep,
    failStep,
    badStep,
    txStep,
    lastStep,
    flakyChargeStep,
    badCompensations.throws,
    badCompensations.notJson,
  ],
  concurrency: 8,
  pollIntervalMs: 200,
});
worker.on('error', (e) => workerErrors.push(`${e.during}: ${e.error.message}`));

const WAIT = { timeoutMs: 60_000 };

/** step_overview's result column as stored (SQL NULL → null, jsonb as its text). */
async function storedResults(jobId: string): Promise<(string | null)[]> {
  const { rows } = await h.pool.query<{ result: string | null }>(
    'SELECT result::text AS result FROM stepping.step_overview WHERE job_id = $1 ORDER BY step_index',
    [jobId],
  );
  return rows.map((r) => r.result);
}

test('a handler’s JSON return value is stored and visible everywhere; the last one is the job’s output', async () => {
  const jobId = await h.stepping.enqueue([
    chargeStep({ orderId: 'o1', cents: 1250 }),
    nothingStep({}),
    nullStep({}),
    receiptStep({}),
  ]);
  const done = await h.stepping.waitForJob(jobId, WAIT);
  assert.equal(done.status, 'succeeded', done.lastError ?? '');
  const charge = { chargeId: 'ch-o1', cents: 1250 };
  // undefined and null both mean "no result".
  assert.deepEqual(done.results, [charge, undefined, undefined, 'receipt for ch-o1']);
  assert.equal(done.output, 'receipt for ch-o1');
  assert.equal((await h.stepping.getJob(jobId))?.output, 'receipt for ch-o1');
  assert.deepEqual(
    (await h.stepping.steps(jobId)).map((s) => s.result),
    [charge, undefined, undefined, 'receipt for ch-o1'],
  );
  // The views, as plain SQL sees them: SQL NULL where there is no result.
  assert.deepEqual(await storedResults(jobId), [
    '{"cents": 1250, "chargeId": "ch-o1"}',
    null,
    null,
    '"receipt for ch-o1"',
  ]);
  const { rows } = await h.pool.query('SELECT output::text FROM stepping.job_overview WHERE job_id = $1', [
    jobId,
  ]);
  assert.deepEqual(rows, [{ output: '"receipt for ch-o1"' }]);

  // Later steps see earlier results by step index (a dense array, undefined where none).
  assert.deepEqual(
    seen.get(jobId)!.map((s) => [s.name, s.stepIndex, s.results]),
    [
      ['res.charge', 0, [undefined, undefined, undefined, undefined]],
      ['res.nothing', 1, [charge, undefined, undefined, undefined]],
      ['res.null', 2, [charge, undefined, undefined, undefined]],
      ['res.receipt', 3, [charge, undefined, undefined, undefined]],
    ],
  );
});

test('a result is stored as JSON.stringify writes it (toJSON, boxed values); text that looks like escapes is kept', async () => {
  const jobId = await h.stepping.enqueue([richStep({})]);
  const done = await h.stepping.waitForJob(jobId, WAIT);
  assert.equal(done.status, 'succeeded', done.lastError ?? '');
  const expected = {
    at: '1970-01-01T00:00:00.000Z',
    boxed: [2, 's', false],
    custom: 'custom',
    text: 'C:\\u0000\\ud800 😀',
    holes: [null],
  };
  assert.deepEqual(done.output, expected);
  assert.deepEqual(done.results, [expected]);
});

test('compensations get the step’s result (undefined for the failing step itself) and see every result', async () => {
  const before = compensateCalls.length;
  const jobId = await h.stepping.enqueue([
    chargeStep({ orderId: 'o2', cents: 990 }),
    receiptStep({}),
    failStep({ orderId: 'o2' }),
  ]);
  const done = await h.stepping.waitForJob(jobId, WAIT);
  assert.equal(done.status, 'compensated', done.lastError ?? '');
  const charge = { chargeId: 'ch-o2', cents: 990 };
  assert.deepEqual(done.results, [charge, 'receipt for ch-o2', undefined]);
  assert.equal(done.output, undefined);
  assert.deepEqual(compensateCalls.slice(before), [
    { step: 'res.charge', args: { orderId: 'o2', cents: 990 }, result: charge },
    { step: 'res.fail', args: { orderId: 'o2' }, result: undefined },
  ]);
  const all = [charge, 'receipt for ch-o2', undefined];
  assert.deepEqual(
    seen.get(jobId)!.map((s) => [s.name, s.phase, s.stepIndex, s.args, s.results]),
    [
      ['res.charge', 'forward', 0, { orderId: 'o2', cents: 990 }, [undefined, undefined, undefined]],
      ['res.receipt', 'forward', 1, {}, [charge, undefined, undefined]],
      ['res.fail', 'forward', 2, { orderId: 'o2' }, [charge, 'receipt for ch-o2', undefined]],
      // Reverse order: the failing step's own compensation, then the charge's, which
      // refunds the charge id its step returned.
      ['res.refund', 'compensate', 2, { orderId: 'o2', chargeId: null }, all],
      ['res.refund', 'compensate', 0, { orderId: 'o2', chargeId: 'ch-o2' }, all],
    ],
  );
  // The compensations' own return values (not JSON here) are not stored and did not fail them.
  const steps = await h.stepping.steps(jobId);
  assert.deepEqual(
    steps.map((s) => [s.status, s.compensationStatus, s.compensationAttempts, s.result]),
    [
      ['succeeded', 'succeeded', 1, charge],
      ['succeeded', null, 0, 'receipt for ch-o2'],
      ['failed', 'succeeded', 1, undefined],
    ],
  );
});

test('a step that failed or ran “not yet” before it succeeded is compensated from its result', async () => {
  for (const first of ['fail', 'later'] as const) {
    const orderId = `flaky-${first}`;
    const jobId = await h.stepping.enqueue([
      flakyChargeStep({ orderId, cents: 5, first }),
      failStep({ orderId: `${orderId}-ship` }),
    ]);
    const done = await h.stepping.waitForJob(jobId, WAIT);
    assert.equal(done.status, 'compensated', done.lastError ?? '');
    const refunds = seen.get(jobId)!.filter((s) => s.name === 'res.refund' && s.stepIndex === 0);
    assert.deepEqual(
      refunds.map((s) => s.args),
      [{ orderId, chargeId: `ch-${orderId}` }],
      `${first}: the refund gets the charge id of the attempt that succeeded`,
    );
  }
});

test('a result that cannot be stored fails the step at once and permanently, naming the step and the problem', async () => {
  const problems: [string, RegExp][] = [
    ['bigint', /result\.amount is a BigInt/],
    ['function', /result is a function, which is not JSON/],
    ['nested-function', /result\.callback is a function, which is not JSON/],
    ['cycle', /result\.parent\.child refers back to itself \(a cycle\)/],
    ['nan', /result\.total is NaN, which JSON cannot represent/],
    ['infinity', /result\[1\] is Infinity, which JSON cannot represent/],
    ['nul', /result\.note contains \\u0000/],
    ['surrogate', /result\.note contains a lone surrogate/],
    ['map', /result is a Map/],
    ['too-big', new RegExp(`${MAX_JSON_BYTES} bytes`)],
    ['too-big-printed', new RegExp(`over ${MAX_JSON_BYTES} bytes`)],
  ];
  const errorsBefore = workerErrors.length;
  const ids = await Promise.all(problems.map(([kind]) => h.stepping.enqueue([badStep({ kind })])));
  for (const [i, [kind, problem]] of problems.entries()) {
    const done = await h.stepping.waitForJob(ids[i]!, WAIT);
    assert.equal(done.status, 'failed', `${kind}: ${done.lastError}`);
    assert.match(done.lastError ?? '', /step res\.bad\b/, kind);
    assert.match(done.lastError ?? '', problem, kind);
    const [step] = await h.stepping.steps(ids[i]!);
    // Attempts are unlimited, yet one attempt ended it: the failure is permanent.
    assert.deepEqual([step!.status, step!.attempts, step!.result], ['failed', 1, undefined], kind);
    assert.deepEqual(await storedResults(ids[i]!), [null], kind);
  }
  // Only the value the engine refused reached it; its refusal is the one error reported.
  const reported = workerErrors.slice(errorsBefore);
  assert.ok(reported.length > 0, 'the refused report is reported as an error');
  for (const e of reported) assert.match(e, new RegExp(`^report: .*result is over ${MAX_JSON_BYTES} bytes`));
});

test('the results of one job together are bounded: a result that would bring them over the limit is refused', async () => {
  // Steps whose results of MAX_JSON_BYTES each fill the budget, then one more with a small result.
  const filling = MAX_JOB_RESULTS_BYTES / MAX_JSON_BYTES;
  const jobId = await h.stepping.enqueue(
    [...Array.from({ length: filling }, () => ({ name: 'res.sql', args: {} })), lastStep({})],
    { queue: 'res-total' },
  );
  // The filling steps run through the engine's SQL functions, as a worker in any language
  // would: each result is a string that PostgreSQL prints in exactly MAX_JSON_BYTES.
  for (let i = 0; i < filling; i++) {
    const claimed = await h.pool.query(
      `SELECT job_id::text, lease_token::text AS token, step_index
       FROM stepping.step_claim('sql-worker', ARRAY['res.sql'], ARRAY['res-total'], 1, 600000)`,
    );
    const unit = claimed.rows[0] as { job_id: string; token: string; step_index: number };
    assert.deepEqual([unit.job_id, unit.step_index], [jobId, i]);
    const completed = await h.pool.query(
      `SELECT accepted FROM stepping.step_complete(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[],
                                                   ARRAY[to_jsonb(repeat('x', $3))])`,
      [jobId, unit.token, MAX_JSON_BYTES - 2],
    );
    assert.deepEqual(completed.rows, [{ accepted: true }]);
  }
  const { rows } = await h.pool.query(
    `SELECT sum(octet_length(result::text))::int AS total FROM stepping.step_overview WHERE job_id = $1`,
    [jobId],
  );
  assert.deepEqual(rows, [{ total: MAX_JOB_RESULTS_BYTES }]);
  // The worker runs the last step (transactional); the engine refuses its report (the
  // driver cannot know the job's total), its ctx.tx write is rolled back, and the step
  // fails permanently, named.
  const done = await h.stepping.waitForJob(jobId, WAIT);
  assert.equal(done.status, 'failed');
  assert.match(
    done.lastError ?? '',
    new RegExp(
      `^step res\\.last succeeded, but its report was refused \\(its ctx\\.tx writes were rolled back\\): .*results over ${MAX_JOB_RESULTS_BYTES} bytes`,
    ),
  );
  const last = (await h.stepping.steps(jobId))[filling]!;
  assert.deepEqual([last.status, last.attempts, last.result], ['failed', 1, undefined]);
  const written = await h.pool.query(`SELECT id FROM res_tx_effects WHERE id = 'last'`);
  assert.equal(written.rowCount, 0);
});

test('one claim, and one report’s continuations, hand a worker at most MAX_CLAIM_RESULTS_BYTES of results', async () => {
  // 2-step jobs whose first result, as the second step carries it ({"0": "xx…"}), prints
  // in MAX_JSON_BYTES.
  const perJob = MAX_JSON_BYTES;
  const fit = MAX_CLAIM_RESULTS_BYTES / perJob;
  const n = fit + 8;
  const queue = 'res-budget';
  for (let i = 0; i < n; i++) {
    await h.stepping.enqueue(
      [
        { name: 'res.budget', args: { i } },
        { name: 'res.budget', args: { i } },
      ],
      // A rate key each: the per-key rate below makes a claim scan several times.
      { queue, rateKey: `k${i}` },
    );
  }
  const claim = (q = queue) =>
    h.pool.query<{ job_id: string; token: string; step_index: number }>(
      `SELECT job_id::text, lease_token::text AS token, step_index
       FROM stepping.step_claim('sql-worker', ARRAY['res.budget'], ARRAY[$1], $2, 600000)`,
      [q, n],
    );
  const first = await claim();
  assert.equal(first.rowCount, n, 'first steps carry no results: one claim takes them all');
  // Their report stores each result and leases each next step on to this worker, within
  // the budget: the rest is given back, pending, for a claim. (Only flags come back here.)
  const reported = await h.pool.query<{ job_id: string; job_status: string; next_token: string | null }>(
    `SELECT job_id::text, job_status, (next).lease_token::text AS next_token
     FROM stepping.step_complete($1::bigint[], $2::uuid[], array_fill(to_jsonb(repeat('x', $3::int)), ARRAY[$4::int]),
                                 NULL, 'sql-worker', ARRAY['res.budget'], ARRAY[$5], 600000)`,
    [first.rows.map((r) => r.job_id), first.rows.map((r) => r.token), perJob - '{"0": ""}'.length, n, queue],
  );
  const handedOn = reported.rows.filter((r) => r.next_token !== null);
  assert.equal(handedOn.length, fit, 'continuations within the budget');
  assert.deepEqual(
    reported.rows.filter((r) => r.next_token === null).map((r) => r.job_status),
    Array<string>(n - fit).fill('pending'),
  );
  // Give the continuations back: now every job's second step waits, each carrying 1 MiB.
  await h.pool.query(`SELECT stepping.lease_release($1::bigint[], $2::uuid[])`, [
    handedOn.map((r) => r.job_id),
    handedOn.map((r) => r.next_token),
  ]);
  // Claims until every job's second step is taken. (A claim in a limited queue comes back
  // empty while another claimer, this file's worker, holds the queue's limit row: so an
  // empty claim is not the end.)
  const takeAll = async (q: string) => {
    const sizes: number[] = [];
    const tokens: { id: string; token: string }[] = [];
    await eventually(
      async () => {
        const c = await claim(q);
        if (c.rows.length > 0) sizes.push(c.rows.length);
        for (const r of c.rows) {
          assert.equal(r.step_index, 1);
          tokens.push({ id: r.job_id, token: r.token });
        }
        return tokens.length >= n;
      },
      20_000,
      `all ${n} second steps claimed`,
    );
    return { sizes, tokens };
  };
  const plain = await takeAll(queue);
  assert.deepEqual(plain.sizes, [fit, n - fit], 'each claim within the budget, nothing lost');
  // The same through a fleet-wide limited queue's claim path.
  await h.pool.query(`SELECT stepping.lease_release($1::bigint[], $2::uuid[])`, [
    plain.tokens.map((t) => t.id),
    plain.tokens.map((t) => t.token),
  ]);
  await h.stepping.setQueueLimit(queue, { maxRunning: 1000 });
  try {
    const limited = await takeAll(queue);
    assert.deepEqual(limited.sizes, [fit, n - fit]);
    assert.equal(new Set(limited.tokens.map((t) => t.id)).size, n);
    // A per-key rate of 1: each key that starts a unit is full, so the claim scans again for
    // the others; every scan draws on the one budget, and the budget keeps claim order.
    await h.pool.query(`SELECT stepping.lease_release($1::bigint[], $2::uuid[])`, [
      limited.tokens.map((t) => t.id),
      limited.tokens.map((t) => t.token),
    ]);
    await h.stepping.setQueueLimit(queue, { rate: { count: 1, periodMs: 3_600_000, perKey: true } });
    const keyed = await takeAll(queue);
    assert.deepEqual(keyed.sizes, [fit, n - fit]);
    const ids = keyed.tokens.map((t) => BigInt(t.id));
    const firstClaim = ids.slice(0, fit).sort((a, b) => (a < b ? -1 : 1));
    const all = [...ids].sort((a, b) => (a < b ? -1 : 1));
    assert.deepEqual(firstClaim, all.slice(0, fit), 'the budget kept the head of the claim order');
  } finally {
    await h.stepping.clearQueueLimit(queue);
  }
});

test('a compensation that cannot be computed or stored fails its step clearly instead of stalling reports', async () => {
  const throws = await h.stepping.enqueue([badCompensations.throws({})]);
  const notJson = await h.stepping.enqueue([badCompensations.notJson({}), nothingStep({})]);
  const a = await h.stepping.waitForJob(throws, WAIT);
  assert.equal(a.status, 'failed');
  assert.match(a.lastError ?? '', /^compensate\(args, result\) of step res\.comp-throws threw: /);
  const b = await h.stepping.waitForJob(notJson, WAIT);
  assert.equal(b.status, 'failed');
  assert.match(
    b.lastError ?? '',
    /^compensate\(args, result\) of step res\.comp-not-json returned args that cannot be stored: args\.amount is a BigInt/,
  );
  assert.equal((await h.stepping.steps(notJson))[0]!.attempts, 1);
});

test('a transactional step’s result commits with its ctx.tx writes, or neither is stored', async () => {
  const ok = await h.stepping.enqueue([txStep({ id: 'tx-ok', big: false })]);
  const refused = await h.stepping.enqueue([txStep({ id: 'tx-big', big: true })]);
  const done = await h.stepping.waitForJob(ok, WAIT);
  assert.equal(done.status, 'succeeded', done.lastError ?? '');
  assert.deepEqual(done.output, { written: 'tx-ok' });

  const failed = await h.stepping.waitForJob(refused, WAIT);
  assert.equal(failed.status, 'failed');
  assert.match(failed.lastError ?? '', /step res\.tx\b/);
  assert.match(failed.lastError ?? '', new RegExp(`${MAX_JSON_BYTES} bytes`));
  const [step] = await h.stepping.steps(refused);
  assert.deepEqual([step!.status, step!.attempts, step!.result], ['failed', 1, undefined]);
  const { rows } = await h.pool.query('SELECT id, job_id::text FROM res_tx_effects ORDER BY id');
  assert.deepEqual(rows, [{ id: 'tx-ok', job_id: ok }]);
});

test('kill -9 between a handler’s return and its report: the step re-runs elsewhere and only the rerun’s result is stored', async () => {
  const worker = (fixture: string) =>
    start('src/cli/stepping-worker.ts', ['--steps', fixture, '--queue', 'res-crash'], {
      DATABASE_URL: h.url,
    });
  const jobId = await h.stepping.enqueue(
    [
      { name: 'results.charge', args: {} },
      { name: 'results.echo', args: {} },
    ],
    { queue: 'res-crash' },
  );
  const first = worker('test/fixtures/result-crash-steps.ts');
  // The handler returned and the worker is about to send the report: it is held there.
  const held = await eventually(
    () => /^REPORT-HELD (.*)$/m.exec(first.stdout())?.[1],
    60_000,
    'the first worker to hold its report',
  );
  assert.deepEqual(JSON.parse(held!), [JSON.stringify({ chargeId: `ch-1-${first.pid}` })]);
  first.child.kill('SIGKILL');
  const killed = await within(first.exited, 30_000, 'the killed worker to exit');
  assert.equal(killed.signal, 'SIGKILL');

  // Nothing of that attempt is stored: the step is still running (its lease held by the
  // dead worker) and has no result.
  const during = await h.pool.query(
    `SELECT status, attempts, result FROM stepping.step_overview WHERE job_id = $1 ORDER BY step_index`,
    [jobId],
  );
  assert.deepEqual(during.rows, [
    { status: 'running', attempts: 1, result: null },
    { status: 'pending', attempts: 0, result: null },
  ]);

  // The lease lapses (the engine's clock moves past it) and a second process re-runs the step.
  await h.shiftClock('1 hour');
  const second = worker('test/fixtures/result-crash-steps.ts');
  const done = await h.stepping.waitForJob(jobId, WAIT);
  assert.equal(done.status, 'succeeded', done.lastError ?? '');
  const rerun = { chargeId: `ch-2-${second.pid}` };
  assert.deepEqual(done.results, [rerun, { saw: rerun }]);
  assert.deepEqual(done.output, { saw: rerun });
  const steps = await h.stepping.steps(jobId);
  assert.deepEqual(
    steps.map((s) => [s.status, s.attempts]),
    [
      ['succeeded', 2],
      ['succeeded', 1],
    ],
  );
  second.child.kill('SIGTERM');
  const exit = await within(second.exited, 60_000, 'the second worker to stop');
  assert.equal(exit.code, 0, exit.stderr);
});
