/**
 * The `stepping` and `stepping-worker` bins as an operator uses them: real child
 * processes against this file's database, checked by exit code, output and the rows they
 * leave behind.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runOperatorCli } from '../src/cli/operator.js';
import { RESULT_WIDTH } from '../src/cli/overview.js';
import { parseWorkerArgs, runWorkerCli } from '../src/cli/worker-cli.js';
import { WORKER_DEFAULTS } from '../src/index.js';
import { run, runnable, trackChildren } from './fixtures/processes.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();

const stepping = (...args: string[]) => run('src/cli/stepping.ts', args, { DATABASE_URL: h.url });
const steppingWorker = (...args: string[]) =>
  run('src/cli/stepping-worker.ts', args, { DATABASE_URL: h.url });

/** The same CLI in this process: for secondary checks, since every child process costs seconds of start-up. */
const quick = (...args: string[]) => inProcess(runOperatorCli, args);

function json<T>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

/** A job of `queue` made failed through the engine's own functions, as a worker would. */
async function failedJob(queue: string): Promise<string> {
  const jobId = await h.stepping.enqueue([{ name: 'cli.fail', args: {} }], { queue, maxAttempts: 1 });
  const claimed = await h.pool.query(
    `SELECT job_id, lease_token FROM stepping.step_claim('test', $1, $2, 1, 30000)`,
    [['cli.fail'], [queue]],
  );
  assert.equal(String(claimed.rows[0].job_id), jobId);
  const failed = await h.pool.query(
    `SELECT accepted, job_status FROM stepping.step_fail(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY[$3]::jsonb[])`,
    [jobId, claimed.rows[0].lease_token, JSON.stringify({ error: { message: 'card declined' } })],
  );
  assert.deepEqual(failed.rows[0], { accepted: true, job_status: 'failed' });
  return jobId;
}

test('migrate is idempotent and reports what it applied', async () => {
  const first = await stepping('migrate', '--schema', 'cli_fresh');
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^migrated schema cli_fresh: applied [1-9]\d* migrations?\n$/);
  const second = await stepping('migrate', '--schema', 'cli_fresh');
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, 'migrated schema cli_fresh: applied 0 migrations\n');
  const asJson = await quick('--json', 'migrate');
  assert.equal(asJson.code, 0, asJson.stderr);
  assert.deepEqual(json(asJson.stdout), { schema: 'stepping', applied: [], missingRoles: [] });
  const { rows } = await h.pool.query(`SELECT to_regclass('cli_fresh.job_overview') IS NOT NULL AS ok`);
  assert.equal(rows[0].ok, true);
  const empty = await quick('status', '--schema', 'cli_fresh');
  assert.equal(
    empty.stdout,
    'no jobs in schema cli_fresh\n\nlive workers: none\n\nstep names no live worker can run: none\n',
  );
});

test('status shows queue_stats per queue and status, as text and JSON', async () => {
  await h.stepping.enqueue([{ name: 'cli.a', args: {} }], { queue: 'cli-status' });
  await h.stepping.enqueue([{ name: 'cli.a', args: {} }], { queue: 'cli-status' });
  await h.stepping.enqueue([{ name: 'cli.a', args: {} }], {
    queue: 'cli-status-later',
    runAt: new Date(Date.now() + 3_600_000),
  });
  const text = await stepping('status');
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^QUEUE\s+STATUS\s+JOBS\s+RUNNABLE\s+SCHEDULED\s+OLDEST RUNNABLE$/);
  assert.ok(
    lines.some((l) => /^cli-status\s+pending\s+2\s+2\s+0\s+[\d.]+(ms|s)$/.test(l)),
    text.stdout,
  );
  assert.ok(
    lines.some((l) => /^cli-status-later\s+pending\s+1\s+0\s+1\s+-$/.test(l)),
    text.stdout,
  );
  const asJson = await quick('status', '--json');
  const rows = json<{ queues: Record<string, unknown>[] }>(asJson.stdout).queues;
  const later = rows.find((r) => r.queue === 'cli-status-later');
  assert.deepEqual(later, {
    queue: 'cli-status-later',
    status: 'pending',
    jobs: 1,
    runnable: 0,
    scheduled: 1,
    oldest_runnable_age_ms: null,
  });
  const now = rows.find((r) => r.queue === 'cli-status');
  assert.equal(now?.jobs, 2);
  assert.equal(typeof now?.oldest_runnable_age_ms, 'number');
});

test('jobs lists job_overview rows newest first, filtered and limited; job ID shows its steps', async () => {
  const older = await h.stepping.enqueue([{ name: 'cli.a', args: { n: 1 } }], { queue: 'cli-jobs' });
  const newer = await h.stepping.enqueue(
    [
      { name: 'cli.a', args: {} },
      { name: 'cli.b', args: {} },
    ],
    {
      queue: 'cli-jobs',
      key: 'order:42',
    },
  );
  const text = await stepping('jobs');
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n');
  assert.match(
    lines[0]!,
    /^\s*ID\s+QUEUE\s+STATUS\s+STEPS\s+AT STEP\s+ATTEMPT\s+CREATED\s+FINISHED\s+LAST ERROR$/,
  );
  const newerLine = lines.findIndex((l) =>
    new RegExp(`^\\s*${newer}\\s+cli-jobs\\s+pending\\s+2\\s+#0 cli\\.a`).test(l),
  );
  const olderLine = lines.findIndex((l) =>
    new RegExp(`^\\s*${older}\\s+cli-jobs\\s+pending\\s+1\\s+#0 cli\\.a`).test(l),
  );
  assert.ok(newerLine > 0 && olderLine > newerLine, text.stdout);

  const limited = await stepping('jobs', '--status', 'pending', '--limit', '1', '--json');
  assert.equal(limited.code, 0, limited.stderr);
  const rows = json<{ job_id: string; status: string }[]>(limited.stdout);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.job_id, newer);
  const none = await quick('jobs', '--status', 'compensating');
  assert.equal(none.stdout, 'no compensating jobs\n');

  const one = await stepping('job', newer);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, new RegExp(`^job\\s+${newer}$`, 'm'));
  assert.match(one.stdout, /^key\s+order:42$/m);
  assert.match(one.stdout, /^status\s+pending$/m);
  assert.match(one.stdout, /^#\s+NAME\s+STATUS\s+ATTEMPTS/m);
  assert.match(one.stdout, /^0\s+cli\.a\s+pending\s+0/m);
  assert.match(one.stdout, /^1\s+cli\.b\s+pending\s+0/m);
  const oneJson = json<{ job: { job_id: string; key: string }; steps: { name: string }[] }>(
    (await stepping('job', newer, '--json')).stdout,
  );
  assert.equal(oneJson.job.job_id, newer);
  assert.equal(oneJson.job.key, 'order:42');
  assert.deepEqual(
    oneJson.steps.map((s) => s.name),
    ['cli.a', 'cli.b'],
  );
});

/** Runs the job's next unit through the engine's own functions, as a worker would, storing `result`. */
async function completeNext(jobId: string, name: string, queue: string, result: unknown): Promise<void> {
  const claimed = await h.pool.query(
    `SELECT job_id, lease_token FROM stepping.step_claim('test', $1, $2, 1, 30000)`,
    [[name], [queue]],
  );
  assert.equal(String(claimed.rows[0].job_id), jobId);
  const done = await h.pool.query(
    `SELECT accepted FROM stepping.step_complete(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY[$3]::jsonb[])`,
    [jobId, claimed.rows[0].lease_token, JSON.stringify(result)],
  );
  assert.deepEqual(done.rows, [{ accepted: true }]);
}

test('job ID shows each step’s result and the job’s output on one line, escaped and cut; --json has them in full', async () => {
  const queue = 'cli-results';
  const jobId = await h.stepping.enqueue(
    [
      { name: 'cli.r0', args: {} },
      { name: 'cli.r1', args: {} },
    ],
    { queue },
  );
  // Keys in jsonb's order (shorter first), so the stored JSON starts like JSON.stringify's.
  const charge = { id: 'ch-1', memo: 'x'.repeat(200) };
  const receipt = 'paid\u001b[31m\nFORGED line\u202e';
  await completeNext(jobId, 'cli.r0', queue, charge);
  await completeNext(jobId, 'cli.r1', queue, receipt);

  const text = await stepping('job', jobId);
  assert.equal(text.code, 0, text.stderr);
  assert.doesNotMatch(text.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
  assert.doesNotMatch(text.stdout, /^FORGED/m);
  assert.match(text.stdout, /^status\s+succeeded$/m);
  // The output (the last step's result) as JSON, its controls shown as escapes.
  assert.match(text.stdout, /^output\s+"paid\\u001b\[31m\\nFORGED line\\u202e"$/m);
  assert.match(text.stdout, /^#\s+NAME\s+STATUS\s+ATTEMPTS.*\sRESULT$/m);
  // A long result is cut to RESULT_WIDTH characters, ending in an ellipsis.
  const cut = `${JSON.stringify(charge).slice(0, RESULT_WIDTH - 1)}…`;
  assert.equal(cut.length, RESULT_WIDTH);
  const line0 = text.stdout.split('\n').find((l) => /^0\s+cli\.r0\s+succeeded\s/.test(l));
  assert.ok(line0?.endsWith(`  ${cut}`), text.stdout);
  assert.match(text.stdout, /^1\s+cli\.r1\s+succeeded\s.*\s"paid\\u001b\[31m\\nFORGED line\\u202e"$/m);

  const full = json<{ job: { output: unknown }; steps: { result: unknown }[] }>(
    (await quick('job', jobId, '--json')).stdout,
  );
  assert.equal(full.job.output, receipt);
  assert.deepEqual(
    full.steps.map((s) => s.result),
    [charge, receipt],
  );
});

test('retry resumes a failed job; retrying a job that is not failed exits 1 with the reason', async () => {
  const jobId = await failedJob('cli-retry');
  const listed = await quick('jobs', '--status', 'failed');
  assert.match(listed.stdout, new RegExp(`^\\s*${jobId}\\s+cli-retry\\s+failed\\s.*card declined$`, 'm'));
  const retried = await stepping('retry', jobId);
  assert.equal(retried.code, 0, retried.stderr);
  assert.equal(retried.stdout, `job ${jobId}: pending from step #0 cli.fail\n`);
  assert.equal((await h.stepping.getJob(jobId))?.status, 'pending');
  const again = await quick('retry', jobId);
  assert.equal(again.code, 1);
  assert.equal(again.stdout, '');
  assert.match(again.stderr, new RegExp(`job ${jobId} is pending; only failed jobs can be retried`));
});

test('cancel stops a pending job, with or without compensation; a finished job cannot be cancelled', async () => {
  const jobId = await h.stepping.enqueue([{ name: 'cli.a', args: {} }], { queue: 'cli-cancel' });
  const cancelled = await stepping('cancel', jobId);
  assert.equal(cancelled.code, 0, cancelled.stderr);
  assert.equal(cancelled.stdout, `job ${jobId}: cancelled\n`);
  assert.equal((await h.stepping.getJob(jobId))?.status, 'cancelled');
  const again = await quick('cancel', jobId);
  assert.equal(again.code, 1);
  assert.match(again.stderr, new RegExp(`job ${jobId} is already cancelled`));

  const other = await h.stepping.enqueue([{ name: 'cli.a', args: {} }], { queue: 'cli-cancel' });
  const compensated = await stepping('cancel', other, '--compensate', '--json');
  assert.equal(compensated.code, 0, compensated.stderr);
  const { status } = json<{ job_id: string; status: string }>(compensated.stdout);
  // Nothing ran yet, so there is nothing to undo: the job ends at once.
  assert.equal(status, (await h.stepping.getJob(other))?.status);
  assert.ok(['cancelled', 'compensated'].includes(status), status);
});

test('prune deletes finished jobs older than --older-than, and keeps younger and failed ones', async () => {
  const old = await h.stepping.enqueue([{ name: 'cli.a', args: {} }], { queue: 'cli-prune' });
  await h.stepping.cancel(old);
  const young = await h.stepping.enqueue([{ name: 'cli.a', args: {} }], { queue: 'cli-prune' });
  await h.stepping.cancel(young);
  const failed = await failedJob('cli-prune');
  // Age them: the table is implementation, but the test may stage its rows.
  await h.pool.query(
    `UPDATE stepping.jobs SET finished_at = now() - interval '2 days' WHERE id = ANY($1::bigint[])`,
    [[old, failed]],
  );
  const none = await quick('prune', '--older-than', '3d');
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout, 'pruned 0 jobs finished more than 3d ago\n');
  const one = await stepping('prune', '--older-than', '36h');
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.stdout, 'pruned 1 job finished more than 1d 12h ago\n');
  assert.equal(await h.stepping.getJob(old), null);
  assert.equal((await h.stepping.getJob(young))?.status, 'cancelled');
  assert.equal((await h.stepping.getJob(failed))?.status, 'failed');
  const asJson = await quick('prune', '--older-than', '36h', '--json');
  assert.deepEqual(json(asJson.stdout), { deleted: 0 });
});

/** Runs a CLI in this process, capturing its output; for the many command-line checks (a child costs seconds). */
async function inProcess(
  cli: typeof runOperatorCli | typeof runWorkerCli,
  args: string[],
  env: NodeJS.ProcessEnv = { DATABASE_URL: h.url },
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await cli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }, env);
  return { code, stdout, stderr };
}

test('the stepping process exits 2 on a usage error and 1 when the job does not exist', async () => {
  const unknown = await stepping('frobnicate');
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, '');
  assert.equal(unknown.stderr, 'stepping: unknown command "frobnicate"\nRun `stepping --help` for usage.\n');
  const missing = await stepping('job', '999999999');
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '');
  assert.equal(missing.stderr, 'stepping job: no job 999999999\n');
});

test('command-line mistakes exit 2 and failures exit 1, each with a message on stderr', async () => {
  const cases: [string[], number, RegExp][] = [
    [[], 2, /missing command/],
    [['status', '--bogus'], 2, /Unknown option '--bogus'/],
    [['status', 'extra'], 2, /usage: stepping status/],
    [['job'], 2, /usage: stepping job ID/],
    [['job', 'abc'], 2, /a job ID is a positive integer, got "abc"/],
    [['job', '99999999999999999999'], 2, /a job ID is a positive integer/],
    [['status', '--limit', '3'], 2, /status does not take --limit/],
    [['jobs', '--limit', '0'], 2, /--limit must be an integer from 1/],
    [['jobs', '--status', 'done'], 2, /--status must be one of pending, running/],
    [['prune', '--older-than', '7'], 2, /--older-than must be a duration like/],
    [['status', '--schema', 'Bad-Name'], 2, /schema "Bad-Name" is invalid/],
    [['retry', '999999999'], 1, /^stepping retry: no job 999999999\n$/],
    [['cancel', '999999999'], 1, /^stepping cancel: no job 999999999\n$/],
    [['status', '--schema', 'nowhere'], 1, /stepping migrate/],
    [['status', '--database-url', 'postgres://nobody@127.0.0.1:1/none'], 1, /ECONNREFUSED/],
  ];
  for (const [args, code, message] of cases) {
    const result = await inProcess(runOperatorCli, args);
    assert.equal(result.code, code, `stepping ${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message, `stepping ${args.join(' ')}`);
    assert.equal(result.stdout, '', `stepping ${args.join(' ')}`);
  }
  const noDatabase = await inProcess(runOperatorCli, ['status'], {});
  assert.equal(noDatabase.code, 2);
  assert.match(noDatabase.stderr, /pass --database-url or set DATABASE_URL/);
  const viaFlag = await inProcess(runOperatorCli, ['status', '--database-url', h.url], {});
  assert.equal(viaFlag.code, 0, viaFlag.stderr);
  const help = await inProcess(runOperatorCli, ['--help']);
  assert.equal(help.code, 0);
  for (const command of ['migrate', 'status', 'jobs', 'job ID', 'retry ID', 'cancel ID', 'prune']) {
    assert.match(help.stdout, new RegExp(`^  ${command}`, 'm'));
  }
});

test('stepping-worker --help lists every option with its default from WORKER_DEFAULTS', async () => {
  const help = await steppingWorker('--help');
  assert.equal(help.code, 0, help.stderr);
  const helpLines = help.stdout.split('\n');
  // An option's text with its continuation lines (deeper-indented lines that follow it).
  const option = (flag: string) => {
    const i = helpLines.findIndex((l) => l.trimStart().startsWith(flag));
    if (i < 0) return '';
    const more = helpLines.slice(i + 1).findIndex((l) => !/^ {10,}\S/.test(l));
    return helpLines
      .slice(i, i + 1 + (more < 0 ? 0 : more))
      .map((l) => l.trim())
      .join(' ');
  };
  // Typed by WORKER_DEFAULTS' keys: a new default fails to compile here until --help shows it.
  const lines: Record<keyof typeof WORKER_DEFAULTS, [string, RegExp]> = {
    concurrency: ['--concurrency', /\(default: VALUE\)$/],
    pollIntervalMs: ['--poll-interval', /\(default: VALUE\)$/],
    leaseMs: ['--lease', /\(default: VALUE\)$/],
    gracefulStopMs: ['--graceful-stop', /\(default: VALUE\)$/],
    callTimeoutMs: ['--call-timeout', /\(default: VALUE\)$/],
    poolSize: ['--pool-size', /\(default: VALUE;/],
    databasePoolSize: ['--pool-size', /with several databases: VALUE\)$/],
    maxConnections: ['--max-connections', /\(default: VALUE\)$/],
    idlePollMaxMs: ['--idle-poll-max', /\(default: VALUE\)$/],
    startConcurrency: ['--start-concurrency', /\(default: VALUE\)$/],
    startBurst: ['--start-burst', /\(default: VALUE\)$/],
    retentionMs: ['--retention', /\(default: VALUE\)$/],
    maintenanceIntervalMs: ['--maintenance-interval', /\(default: VALUE\)$/],
    registryHeartbeatMs: ['--registry-heartbeat', /\(default: VALUE\)$/],
  };
  for (const [key, [flag, pattern]] of Object.entries(lines)) {
    const value = String(WORKER_DEFAULTS[key as keyof typeof WORKER_DEFAULTS]);
    // An option's help may wrap onto the next line; read it with its continuation.
    const text = option(flag);
    assert.match(text, new RegExp(pattern.source.replace('VALUE', value)), `${flag} in\n${help.stdout}`);
  }
  assert.match(option('--schema'), /\(default: stepping\)$/);
  assert.match(option('--database-url'), /\(default: \$DATABASE_URL\)/);
  for (const flag of ['--steps', '--queue', '--quiet', '-h, --help']) assert.notEqual(option(flag), '', flag);
});

test('stepping-worker exits 2 without --steps or without steps in the module', async () => {
  const missing = await steppingWorker();
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^stepping-worker: --steps <module> is required\n/);
  const empty = await steppingWorker('--steps', 'test/fixtures/no-steps.ts');
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /no-steps\.[jt]s exports no step definitions/);
});

test('stepping-worker refuses a bad command line with exit 2 and a failed start with exit 1', async () => {
  // In-process: the module is imported by this process, so by its runnable path.
  const steps = ['--steps', runnable('test/fixtures/cli-steps.ts')];
  const cases: [string[], number, RegExp][] = [
    [[...steps, '--bogus'], 2, /Unknown option '--bogus'/],
    [[...steps, 'extra'], 2, /Unexpected argument 'extra'/],
    [['--steps', 'test/fixtures/no-such-file.ts'], 2, /no such file/],
    [[...steps, '--concurrency', '0'], 2, /--concurrency must be an integer/],
    [[...steps, '--queue', 'a=0'], 2, /--queue a=0 must be an integer/],
    [[...steps, '--concurrency', '2', '--queue', 'a=5'], 2, /queues\.a must be an integer from 1 to 2/],
    [[...steps, '--lease', 'soon'], 2, /--lease must be a duration/],
    [[...steps, '--lease', '50'], 2, /leaseMs must be an integer from 100/],
    [[...steps, '--schema', 'nowhere'], 1, /cannot start: .*stepping migrate/],
  ];
  for (const [args, code, message] of cases) {
    const result = await inProcess(runWorkerCli, args);
    assert.equal(result.code, code, `stepping-worker ${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message, `stepping-worker ${args.join(' ')}`);
  }
  const noDatabase = await inProcess(runWorkerCli, steps, {});
  assert.equal(noDatabase.code, 2);
  assert.match(noDatabase.stderr, /pass --database-url or set DATABASE_URL/);
});

test('stepping-worker options map onto WorkerOptions', () => {
  const parsed = parseWorkerArgs(
    [
      '--steps',
      'x.js',
      '--concurrency',
      '8',
      '--queue',
      'emails=3',
      '--queue',
      'default',
      '--poll-interval',
      '5s',
      '--lease',
      '1000',
      '--graceful-stop',
      '1m',
      '--pool-size',
      '4',
      '--schema',
      'jobs',
    ],
    { DATABASE_URL: 'postgres://env/db' },
  );
  assert.deepEqual(parsed, {
    help: false,
    quiet: false,
    stepsModule: 'x.js',
    options: {
      connectionString: 'postgres://env/db',
      schema: 'jobs',
      queues: { emails: 3, default: 8 },
      concurrency: 8,
      pollIntervalMs: 5000,
      leaseMs: 1000,
      gracefulStopMs: 60_000,
      poolSize: 4,
    },
  });
  const plain = parseWorkerArgs(
    ['--steps', 'x.js', '--queue', 'a', '--queue', 'b', '--quiet', '--database-url', 'u'],
    {},
  );
  assert.deepEqual(plain.options.queues, ['a', 'b']);
  assert.equal(plain.options.connectionString, 'u');
  assert.equal(plain.quiet, true);
  const many = parseWorkerArgs(
    [
      '--steps',
      'x.js',
      '--database-url',
      'a',
      '--database-url',
      'b',
      '--max-connections',
      '20',
      '--start-concurrency',
      '8',
      '--start-burst',
      '0',
      '--idle-poll-max',
      '5s',
      '--call-timeout',
      '2s',
    ],
    { DATABASE_URL: 'ignored' },
  );
  assert.deepEqual(many.options, {
    databases: ['a', 'b'],
    concurrency: 10,
    maxConnections: 20,
    startConcurrency: 8,
    startBurst: 0,
    idlePollMaxMs: 5000,
    callTimeoutMs: 2000,
  });
  for (const flag of [
    ['--max-connections', '20'],
    ['--start-concurrency', '8'],
    ['--start-burst', '2'],
    ['--call-timeout', '2s'],
  ]) {
    assert.throws(
      () => parseWorkerArgs(['--steps', 'x.js', ...flag], { DATABASE_URL: 'u' }),
      /--max-connections, --start-concurrency, --start-burst, --idle-poll-max and --call-timeout need several databases/,
    );
  }
});

test('migrate and status --databases work over many databases and report a broken one', async () => {
  const { createTestDatabase, serverUrl } = await import('./support/db.js');
  const { withDatabase } = await import('../scripts/embedded-db.js');
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const path = await import('node:path');
  const os = await import('node:os');
  const a = await createTestDatabase('cli_many_a');
  const b = await createTestDatabase('cli_many_b');
  const broken = withDatabase(serverUrl(), 'stepping_t_cli_no_such_db');

  const migrated = await inProcess(
    runOperatorCli,
    ['migrate', '--databases', `${a.url},${b.url},${broken}`],
    {},
  );
  assert.equal(migrated.code, 1, 'one database failed');
  assert.match(migrated.stderr, /\[3\/3\]/);
  assert.match(migrated.stdout, new RegExp(`${a.name}\\s+migrated`));
  assert.match(migrated.stdout, new RegExp(`${b.name}\\s+migrated`));
  assert.match(migrated.stdout, /stepping_t_cli_no_such_db\s+failed.*does not exist/);

  // A file with id=url lines and a comment.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stepping-cli-'));
  const file = path.join(dir, 'tenants.txt');
  await writeFile(file, `# tenants\ntenant-a=${a.url}\n\ntenant-b=${b.url}\n`);
  await h.stepping.enqueue([{ name: 'x', args: {} }]);
  const status = await inProcess(runOperatorCli, ['status', '--databases', file, '--json'], {});
  assert.equal(status.code, 0);
  const rows = JSON.parse(status.stdout) as { database: string; state: string }[];
  assert.deepEqual(
    rows.map((r) => [r.database, r.state]),
    [
      ['tenant-a', 'ok'],
      ['tenant-b', 'ok'],
    ],
  );
  const down = await inProcess(runOperatorCli, ['status', '--databases', `${a.url},${broken}`], {});
  assert.equal(down.code, 1);
  assert.match(down.stdout, /stepping_t_cli_no_such_db\s+down/);
  const wrong = await inProcess(runOperatorCli, ['jobs', '--databases', a.url], {});
  assert.equal(wrong.code, 2);

  const args = parseWorkerArgs(['--steps', 'x.js', '--databases', file, '--max-connections', '20'], {});
  assert.equal(typeof (args.options.databases as { list?: unknown }).list, 'function', 'a file is re-read');
  assert.equal(args.options.maxConnections, 20);
});
