/**
 * Arguments and configuration the API and the bins refuse with a typed error naming the
 * problem, instead of accepting them and misbehaving later (a step that times out at 0 ms
 * forever, a wait that never times out) or failing with a raw PostgreSQL or network error.
 * Each case here was accepted, or failed untyped, before its fix.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseWorkerArgs } from '../src/cli/worker-cli.js';
import {
  ConfigError,
  createStepping,
  createWorker,
  defineStep,
  InvalidArgumentError,
  InvalidJobStateError,
  MAX_INT,
  type StepOptions,
} from '../src/index.js';
import { start, trackChildren, within } from './fixtures/processes.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();
const noop = defineStep('av.noop', async () => {});

/** Asserts `run` throws `type` with a message matching `message`. */
function throwsTyped(run: () => unknown, type: new (...a: never[]) => Error, message: RegExp, what: string) {
  assert.throws(
    run,
    (e: unknown) => {
      assert.ok(e instanceof type, `${what}: expected ${type.name}, got ${String(e)}`);
      assert.match(e.message, message, what);
      return true;
    },
    what,
  );
}

/** Asserts the promise rejects with `type` and a message matching `message`. */
async function rejectsTyped(
  promise: Promise<unknown>,
  type: new (...a: never[]) => Error,
  message: RegExp,
  what: string,
) {
  await assert.rejects(
    promise,
    (e: unknown) => {
      assert.ok(e instanceof type, `${what}: expected ${type.name}, got ${String(e)}`);
      assert.match(e.message, message, what);
      return true;
    },
    what,
  );
}

test('a per-queue limit above the concurrency names the concurrency as the bound, in the API and the bin', () => {
  throwsTyped(
    () => createWorker({ connectionString: h.url, steps: [noop], queues: { emails: 5, default: 20 } }),
    ConfigError,
    /^queues\.default must be an integer from 1 to 10 \(the worker's concurrency\), got 20$/,
    'createWorker',
  );
  const args = parseWorkerArgs(['--steps', 'steps.js', '--queue', 'emails=20', '--database-url', h.url]);
  throwsTyped(
    () => createWorker({ ...args.options, steps: [noop] }),
    ConfigError,
    /queues\.emails must be an integer from 1 to 10 \(the worker's concurrency\), got 20/,
    'stepping-worker --queue emails=20',
  );
  // Within the bound: accepted.
  createWorker({ connectionString: h.url, steps: [noop], queues: { emails: 5, default: 10 } });
});

test('createWorker refuses more step names or queues than a worker can register, naming the limit', () => {
  // 10,000 names and 1,000 queues register; one more of either never would.
  const pads = Array.from({ length: 10_000 }, (_, i) => defineStep(`av.pad.${i}`, async () => {}));
  const queues = Array.from({ length: 1000 }, (_, i) => `q${i}`);
  createWorker({ connectionString: h.url, steps: pads, queues });
  throwsTyped(
    () => createWorker({ connectionString: h.url, steps: [noop, ...pads] }),
    ConfigError,
    /^a worker can handle at most 10000 step names, got 10001/,
    '10,001 step names',
  );
  throwsTyped(
    () => createWorker({ connectionString: h.url, steps: [noop], queues: [...queues, 'one-more'] }),
    ConfigError,
    /^queues, when given, must name at most 1000 queues, got 1001/,
    '1,001 queues',
  );
  throwsTyped(
    () =>
      createWorker({
        connectionString: h.url,
        steps: [noop],
        queues: Object.fromEntries([...queues, 'one-more'].map((q) => [q, 1])),
      }),
    ConfigError,
    /^queues, when given, must name at most 1000 queues, got 1001/,
    '1,001 queues with limits',
  );
});

test('defineStep refuses options out of range, of the wrong type, or unknown, naming the option', () => {
  const bad: [string, unknown, RegExp][] = [
    ['maxAttempts 0', { maxAttempts: 0 }, /maxAttempts must be an integer from 1 to 2147483647, got 0/],
    [
      'maxAttempts 1.5',
      { maxAttempts: 1.5 },
      /maxAttempts must be an integer from 1 to 2147483647, got 1\.5/,
    ],
    ['maxAttempts text', { maxAttempts: '3' }, /maxAttempts must be an integer .*, got "3"/],
    ['timeoutMs 0', { timeoutMs: 0 }, /timeoutMs must be a number of milliseconds from 1 to 2147483647/],
    ['timeoutMs NaN', { timeoutMs: NaN }, /timeoutMs must be .*, got NaN/],
    ['timeoutMs too long', { timeoutMs: MAX_INT + 1 }, /timeoutMs must be .* to 2147483647/],
    ['backoff.baseMs -1', { backoff: { baseMs: -1 } }, /backoff\.baseMs must be an integer from 1 to/],
    ['backoff.maxMs 0', { backoff: { maxMs: 0 } }, /backoff\.maxMs must be an integer from 1 to/],
    ['backoff text', { backoff: 'fast' }, /backoff must be an object \{ baseMs, maxMs \}/],
    ['backoff typo', { backoff: { base: 5 } }, /unknown backoff option "base"/],
    ['unknown option', { retries: 3 }, /unknown option "retries" \(known: maxAttempts, backoff/],
    ['transactional text', { transactional: 'yes' }, /transactional must be true or false/],
    ['compensate number', { compensate: 42 }, /compensate must be a step name or a function/],
    [
      'compensate empty',
      { compensate: '' },
      /compensate \(a step name\) must be a string of 1 to 200 characters, got an empty string/,
    ],
    ['options null', null, /options must be an object/],
  ];
  for (const [what, options, message] of bad) {
    throwsTyped(
      () => defineStep('av.bad', async () => {}, options as StepOptions),
      ConfigError,
      new RegExp(`^defineStep\\(av\\.bad\\): ${message.source.replace(/^\^/, '')}`),
      what,
    );
  }
  // Every option at its bounds is accepted.
  const good: StepOptions[] = [
    { maxAttempts: 1, timeoutMs: 1, backoff: { baseMs: 1, maxMs: 1 }, transactional: false },
    {
      maxAttempts: MAX_INT,
      timeoutMs: MAX_INT,
      backoff: { baseMs: MAX_INT, maxMs: MAX_INT },
      transactional: true,
    },
    { compensate: 'av.undo' },
    { compensate: () => ({ name: 'av.undo' }) },
    { backoff: {} },
    {},
  ];
  for (const options of good) defineStep('av.good', async () => {}, options);
});

test('job ids that are not a bigint are refused with InvalidArgumentError naming the id, before any SQL', async () => {
  for (const id of ['abc', '1.5', '', ' 1', '-1', '9223372036854775808', '1e3']) {
    const shown = new RegExp(`job id must be .*, got ${JSON.stringify(JSON.stringify(id)).slice(1, -1)}`);
    await rejectsTyped(h.stepping.getJob(id), InvalidArgumentError, shown, `getJob(${id})`);
    await rejectsTyped(h.stepping.steps(id), InvalidArgumentError, shown, `steps(${id})`);
    await rejectsTyped(h.stepping.cancel(id), InvalidArgumentError, shown, `cancel(${id})`);
    await rejectsTyped(h.stepping.retry(id), InvalidArgumentError, shown, `retry(${id})`);
    await rejectsTyped(h.stepping.waitForJob(id), InvalidArgumentError, shown, `waitForJob(${id})`);
  }
  for (const id of [1.5, NaN, -1, 2 ** 53, null, {}]) {
    await rejectsTyped(
      h.stepping.getJob(id as never),
      InvalidArgumentError,
      /job id must be/,
      `getJob(${String(id)})`,
    );
  }
  // Ids as numbers and with leading zeros still name the job, the same way.
  const jobId = await h.stepping.enqueue([{ name: 'av.nobody', args: {} }], { queue: 'av-ids' });
  assert.equal((await h.stepping.getJob(Number(jobId) as never))?.jobId, jobId);
  assert.equal((await h.stepping.getJob(`00${jobId}`))?.jobId, jobId);
  assert.equal((await h.stepping.cancel(`0${jobId}`)) as string, 'cancelled');
  assert.equal((await h.stepping.waitForJob(`0${jobId}`, { timeoutMs: 0 })).status, 'cancelled');
  assert.equal(await h.stepping.getJob('9223372036854775807'), null);
});

test('waitForJob timeoutMs and prune numbers are checked, naming the option', async () => {
  const jobId = await h.stepping.enqueue([{ name: 'av.nobody', args: {} }], { queue: 'av-numbers' });
  for (const timeoutMs of [NaN, -1, Infinity, '5']) {
    await rejectsTyped(
      // Bounded: before the check, NaN waited forever.
      within(h.stepping.waitForJob(jobId, { timeoutMs: timeoutMs as number }), 60_000, 'waitForJob'),
      InvalidArgumentError,
      /^waitForJob: timeoutMs must be a number of milliseconds from 0 to \d+, got/,
      `timeoutMs ${String(timeoutMs)}`,
    );
  }
  for (const olderThanMs of [NaN, -1, Infinity, '7d']) {
    await rejectsTyped(
      h.stepping.prune({ olderThanMs: olderThanMs as number }),
      InvalidArgumentError,
      /^prune: olderThanMs must be a number of milliseconds from 0 to \d+, got/,
      `olderThanMs ${String(olderThanMs)}`,
    );
  }
  for (const limit of [NaN, 0, 1.5, 100_001]) {
    await rejectsTyped(
      h.stepping.prune({ limit }),
      InvalidArgumentError,
      /^prune: limit must be an integer from 1 to 100000, got/,
      `limit ${limit}`,
    );
  }
  // null means "not given" (plain JavaScript and config files pass it): the defaults apply.
  assert.equal(
    typeof (await h.stepping.prune({ olderThanMs: null, limit: null } as unknown as { limit: number })),
    'number',
  );
  await rejectsTyped(
    h.stepping.retry(jobId, { deadline: new Date(NaN) }),
    InvalidArgumentError,
    /^retry: deadline must be a valid Date, got an invalid Date/,
    'retry deadline',
  );
  // Valid numbers still prune (the job cancelled by the test above, if it ran first).
  assert.ok((await h.stepping.prune({ olderThanMs: 0, limit: 1 })) <= 1);
});

test(
  'operator calls refuse options that are not an object, unknown, or of the wrong type, before any SQL',
  {
    timeout: 120_000,
  },
  async () => {
    // Before: waitForJob(id, 5000) and waitForJob(id, { timeout: 5000 }) waited forever,
    // cancel(id, { compensation: true }) cancelled without compensating, prune({ olderThan })
    // pruned by the 7-day default, retry(id, null) threw a TypeError, and a compensate or
    // statuses of the wrong type reached PostgreSQL (SQLSTATE 22P02).
    const id = await h.stepping.enqueue([{ name: 'av.nobody', args: {} }], { queue: 'av-options' });
    const s = h.stepping;
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      [
        'waitForJob(id, 5000)',
        () => s.waitForJob(id, 5000 as never),
        /^waitForJob: options must be an object, got 5000$/,
      ],
      [
        'waitForJob timeout',
        () => s.waitForJob(id, { timeout: 5000 } as never),
        /^waitForJob: unknown option "timeout" \(known: timeoutMs, signal\)$/,
      ],
      [
        'cancel(id, true)',
        () => s.cancel(id, true as never),
        /^cancel: options must be an object, got true$/,
      ],
      [
        'cancel compensation',
        () => s.cancel(id, { compensation: true } as never),
        /^cancel: unknown option "compensation" \(known: compensate\)$/,
      ],
      [
        'cancel compensate {}',
        () => s.cancel(id, { compensate: {} } as never),
        /^cancel: compensate must be true or false, got an object$/,
      ],
      [
        'cancel compensate "yes"',
        () => s.cancel(id, { compensate: 'yes' } as never),
        /^cancel: compensate must be true or false, got "yes"$/,
      ],
      ['retry(id, [])', () => s.retry(id, [] as never), /^retry: options must be an object, got an array$/],
      [
        'retry deadLine',
        () => s.retry(id, { deadLine: new Date() } as never),
        /^retry: unknown option "deadLine" \(known: deadline\)$/,
      ],
      ['prune("7d")', () => s.prune('7d' as never), /^prune: options must be an object, got "7d"$/],
      [
        'prune olderThan',
        () => s.prune({ olderThan: 0 } as never),
        /^prune: unknown option "olderThan" \(known: olderThanMs, statuses, limit\)$/,
      ],
      [
        'prune statuses string',
        () => s.prune({ statuses: 'failed' } as never),
        /^prune: statuses must be an array of status names, got "failed"$/,
      ],
      [
        'prune statuses [1]',
        () => s.prune({ statuses: [1] } as never),
        /^prune: statuses must be an array of status names, got an array holding 1$/,
      ],
    ];
    for (const [what, run, message] of cases) {
      await rejectsTyped(within(run(), 60_000, what), InvalidArgumentError, message, what);
    }
    // None of them did anything: the job is still pending.
    assert.equal((await s.getJob(id))?.status, 'pending');
    // null reads as "not given", and the known options still work.
    assert.equal(await s.cancel(id, null as never), 'cancelled');
    assert.equal((await s.waitForJob(id, null as never)).status, 'cancelled');
    await rejectsTyped(
      s.retry(id, null as never),
      InvalidJobStateError,
      /./,
      'retry(id, null) of a cancelled job',
    );
    assert.equal(typeof (await s.prune(null as never)), 'number');
  },
);

test('createStepping refuses options that are not an object or unknown, naming them', () => {
  // Before: a misspelt connectionString fell back to DATABASE_URL without a word.
  throwsTyped(
    () => createStepping({ connectionURL: h.url } as never),
    ConfigError,
    /^createStepping: unknown option "connectionURL" \(known: connectionString, pool, schema, listenConnectionString, telemetry\)$/,
    'connectionURL',
  );
  throwsTyped(
    () => createStepping(h.url as never),
    ConfigError,
    /^createStepping: options must be an object \{ connectionString \} or \{ pool \}, got a string of \d+ UTF-16 units$/,
    'a string',
  );
});

test('a keyword/value connection string is refused with ConfigError that does not show its password', async () => {
  const kv = 'host=127.0.0.1 port=1 Pwd=s3cr3t password="my s3cr3t" dbname=orders';
  const check = (e: unknown, what: string) => {
    assert.ok(e instanceof ConfigError, `${what}: expected ConfigError, got ${String(e)}`);
    assert.match(e.message, /keyword\/value connection strings .* not supported .* postgres:\/\//, what);
    assert.match(e.message, /not shown/, what);
    assert.doesNotMatch(e.message, /s3cr3t|127\.0\.0\.1|orders/, what);
    assert.doesNotMatch(e.message, /:password@/, 'the example has no password part the CLI would mask');
    return true;
  };
  assert.throws(
    () => createStepping({ connectionString: kv }),
    (e) => check(e, 'createStepping'),
  );
  assert.throws(
    () => createStepping({ connectionString: h.url, listenConnectionString: kv }),
    (e) => check(e, 'createStepping listenConnectionString'),
  );
  assert.throws(
    () => createWorker({ connectionString: kv, steps: [noop] }),
    (e) => check(e, 'createWorker'),
  );
  // Something else altogether is refused without being shown (it may be all secret).
  throwsTyped(
    () => createStepping({ connectionString: 'db.internal:5432 u s3cr3t' }),
    ConfigError,
    /^connectionString must be a URL such as postgres:\/\/USER@HOST:5432\/DBNAME .*not shown/,
    'not a URL',
  );
  // URLs node-postgres reads are accepted (nothing connects until used), whatever their
  // scheme: it reads postgis:// (Django's) and pgsql:// as postgres://.
  for (const url of [
    'postgres://u@db/x',
    'POSTGRESQL://db',
    'postgis://u@db/x',
    'pgsql://db/x',
    'socket:/var/run/postgresql?db=x',
  ]) {
    await createStepping({ connectionString: url }).close();
  }
  // The CLI says the same, as a usage error (exit 2), without the password.
  const out = { stdout: '', stderr: '' };
  const { runOperatorCli } = await import('../src/cli/operator.js');
  const code = await runOperatorCli(['--database-url', kv, 'status'], {
    stdout: (t) => (out.stdout += t),
    stderr: (t) => (out.stderr += t),
  });
  assert.equal(code, 2, out.stderr);
  assert.match(out.stderr, /^stepping: --database-url: keyword\/value connection strings/);
  assert.doesNotMatch(out.stderr, /s3cr3t/);
  // The dashboard says it the same way (exit 2 before any server starts), naming DATABASE_URL
  // when that is where the string came from.
  const dash = { stdout: '', stderr: '' };
  const dashCode = await runOperatorCli(
    ['dashboard', '--port', '0'],
    { stdout: (t) => (dash.stdout += t), stderr: (t) => (dash.stderr += t) },
    { DATABASE_URL: kv },
  );
  assert.equal(dashCode, 2, dash.stderr);
  assert.match(dash.stderr, /DATABASE_URL: keyword\/value connection strings/);
  assert.doesNotMatch(dash.stderr, /s3cr3t/);
});

test('stepping status --watch whose reader goes away ends quietly with exit 0', async () => {
  const running = start('src/cli/stepping.ts', ['status', '--watch', '--interval', '100ms'], {
    DATABASE_URL: h.url,
  });
  // The first snapshot arrives; then the reader closes its end of the pipe (like `| head -1`).
  await within(
    new Promise((resolve) => running.child.stdout!.once('data', resolve)),
    60_000,
    'the first snapshot',
  );
  running.child.stdout!.destroy();
  const done = await within(running.exited, 60_000, 'the CLI to exit');
  assert.equal(done.stderr, '');
  assert.equal(done.code, 0);
});
