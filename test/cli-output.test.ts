/**
 * What the bins print is safe for the operator's terminal: data (queue and step names,
 * keys, errors) cannot drive the terminal or forge lines, and connection strings never
 * show their passwords. Real child processes, as an operator runs them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { runOperatorCli } from '../src/cli/operator.js';
import { run, start, trackChildren, within } from './fixtures/processes.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();

/** Sets the terminal's title, then turns the text red. */
const EVIL_QUEUE = 'evil\u001b]0;pwned\u0007\u001b[31m';
/** How the bins show it: the escapes as visible text. */
const EVIL_QUEUE_SHOWN = 'evil\\u001b]0;pwned\\u0007\\u001b[31m';
/** C1 CSI (one character) in a step name, C1 NEL (a line break to some terminals) in another, a right-to-left override in a key. */
const EVIL_STEP = 'cli.step\u009b2J';
const EVIL_FAILED_STEP = 'cli.fail\u0085';
const EVIL_KEY = 'invoice\u202egpj.exe';

/** Raw characters a terminal acts on: every control but the line feed, DEL, C1, bidi overrides and isolates. */
const RAW_CONTROL =
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Passwords of the listed databases (none of which may ever be printed) and their URLs. */
const SECRETS = {
  slash: ['p4ss/w0rd', 'postgres://app:p4ss/w0rd@127.0.0.1:1/orders1'],
  // A URL parser reads host "localhost", port 1: the old id was localhost:1/t0psecret@...
  slashAfterDigits: ['t0psecret', 'postgres://localhost:1/t0psecret@127.0.0.1:1/orders2'],
  encoded: ['a%2Fb%40c', 'postgres://app:a%2Fb%40c@127.0.0.1:1/orders3'],
  at: ['at@pw-9', 'postgres://app:at@pw-9@127.0.0.1:1/orders4'],
  emptyUser: ['3mpty-user-pw', 'postgres://:3mpty-user-pw@127.0.0.1:1/orders5'],
  query: ['qu3ry-pw', 'postgres://app@127.0.0.1:1/orders6?password=qu3ry-pw&sslmode=disable'],
} as const;

function assertSafe(output: { stdout: string; stderr: string }, what: string): void {
  for (const [stream, text] of Object.entries({ stdout: output.stdout, stderr: output.stderr })) {
    const raw = RAW_CONTROL.exec(text);
    assert.equal(raw, null, `${what}: raw U+${raw?.[0].charCodeAt(0).toString(16)} on ${stream}:\n${text}`);
    for (const [secret] of Object.values(SECRETS)) {
      assert.ok(!text.includes(secret), `${what}: password ${secret} on ${stream}:\n${text}`);
    }
    assert.doesNotMatch(text, /^FORGED/m, `${what}: a forged line on ${stream}`);
  }
}

/** A databases file: the live test database, then every secret-bearing URL (all refuse connections). */
async function databasesFile(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stepping-cli-output-'));
  const file = path.join(dir, 'tenants.txt');
  const lines = [`tenant-live=${h.url}`, ...Object.values(SECRETS).map(([, url]) => url)];
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** A failed job whose step name and error carry escapes, made through the engine's functions. */
async function hostileFailedJob(): Promise<string> {
  const jobId = await h.stepping.enqueue([{ name: EVIL_FAILED_STEP, args: {} }], {
    queue: EVIL_QUEUE,
    maxAttempts: 1,
  });
  const claimed = await h.pool.query(
    `SELECT job_id, lease_token FROM stepping.step_claim('test', $1, $2, 1, 30000)`,
    [[EVIL_FAILED_STEP], [EVIL_QUEUE]],
  );
  assert.equal(String(claimed.rows[0].job_id), jobId);
  const error = { message: 'declined\u001b[2J\u009b1;1H\nFORGED operator line' };
  await h.pool.query(
    `SELECT accepted FROM stepping.step_fail(ARRAY[$1]::bigint[], ARRAY[$2]::uuid[], ARRAY[$3]::jsonb[])`,
    [jobId, claimed.rows[0].lease_token, JSON.stringify({ error })],
  );
  return jobId;
}

test('stepping status, jobs and job print hostile names, keys and errors escaped; --json stays exact', async () => {
  const pending = await h.stepping.enqueue([{ name: EVIL_STEP, args: {} }], {
    queue: EVIL_QUEUE,
    key: EVIL_KEY,
  });
  const failed = await hostileFailedJob();
  const stepping = (...args: string[]) => run('src/cli/stepping.ts', args, { DATABASE_URL: h.url });

  const status = await stepping('status');
  assert.equal(status.code, 0, status.stderr);
  assertSafe(status, 'status');
  assert.ok(status.stdout.includes(EVIL_QUEUE_SHOWN), status.stdout);

  const jobs = await stepping('jobs');
  assert.equal(jobs.code, 0, jobs.stderr);
  assertSafe(jobs, 'jobs');
  assert.ok(jobs.stdout.includes('declined\\u001b[2J\\u009b1;1H FORGED operator line'), jobs.stdout);

  const job = await stepping('job', pending);
  assert.equal(job.code, 0, job.stderr);
  assertSafe(job, 'job');
  assert.match(job.stdout, /^key\s+invoice\\u202egpj\.exe$/m);
  assert.match(job.stdout, /^0\s+cli\.step\\u009b2J\s+pending/m);

  const asJson = await stepping('jobs', '--json');
  assert.equal(asJson.code, 0, asJson.stderr);
  assertSafe(asJson, 'jobs --json');
  const rows = JSON.parse(asJson.stdout) as { job_id: string; queue: string; last_error: string | null }[];
  assert.equal(rows.find((r) => r.job_id === pending)?.queue, EVIL_QUEUE, 'JSON carries the exact name');
  assert.match(
    rows.find((r) => r.job_id === failed)?.last_error ?? '',
    /declined\u001b\[2J\u009b1;1H\nFORGED/,
  );

  // In process (a child costs seconds): the command that prints a step name in a sentence.
  let stdout = '';
  let stderr = '';
  const code = await runOperatorCli(
    ['retry', failed],
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) },
    { DATABASE_URL: h.url },
  );
  assert.equal(code, 0, stderr);
  assertSafe({ stdout, stderr }, 'retry');
  assert.equal(stdout, `job ${failed}: pending from step #0 cli.fail\\u0085\n`);
});

test('stepping status --databases never prints a password, whatever its shape', async () => {
  const file = await databasesFile();
  const text = await run('src/cli/stepping.ts', ['status', '--databases', file], {});
  assertSafe(text, 'status --databases');
  assert.equal(text.code, 1, 'the unreachable databases are down');
  assert.match(text.stdout, /^tenant-live\s+ok\s/m);
  for (const id of [
    '127.0.0.1:1/orders1',
    '127.0.0.1:1/orders2',
    '127.0.0.1:1/orders3',
    '127.0.0.1:1/orders6',
  ]) {
    assert.match(text.stdout, new RegExp(`^${id.replace(/\./g, '\\.')}\\s+down\\s`, 'm'), text.stdout);
  }
  assert.match(text.stdout, /^127\.0\.0\.1:1\/orders1\s+down.*percent-encode it/m);

  let stdout = '';
  let stderr = '';
  const list = Object.values(SECRETS)
    .map(([, url]) => url)
    .join(',');
  const code = await runOperatorCli(['status', '--json', '--databases', list], {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
  });
  assertSafe({ stdout, stderr }, 'status --json --databases url,url');
  assert.equal(code, 1);
  const rows = JSON.parse(stdout) as { database: string; state: string }[];
  assert.equal(rows.length, Object.keys(SECRETS).length);

  // migrate reports each database on its own row, none with its password.
  let migrateOut = '';
  let migrateErr = '';
  const migrated = await runOperatorCli(['migrate', '--databases', list], {
    stdout: (t) => (migrateOut += t),
    stderr: (t) => (migrateErr += t),
  });
  assertSafe({ stdout: migrateOut, stderr: migrateErr }, 'migrate --databases url,url');
  assert.equal(migrated, 1);
  assert.match(migrateOut, /^127\.0\.0\.1:1\/orders1\s+failed.*percent-encode it/m);
  assert.match(migrateErr, new RegExp(`\\[${Object.keys(SECRETS).length}/${Object.keys(SECRETS).length}\\]`));

  // A keyword/value string (not supported by node-postgres) is refused, masked.
  const keywords = await run(
    'src/cli/stepping.ts',
    ['status', '--databases', "host=127.0.0.1 port=1 password='k3y w0rd' dbname=x"],
    {},
  );
  assertSafe(keywords, 'status --databases keyword string');
  assert.equal(keywords.code, 2);
  assert.ok(!keywords.stderr.includes('k3y'), keywords.stderr);
  assert.match(keywords.stderr, /password=\*\*\* dbname=x/);
  // The same in a databases file: the line is not read as `id=url`.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stepping-cli-output-'));
  const keywordFile = path.join(dir, 'keywords.txt');
  await writeFile(keywordFile, "host=127.0.0.1 port=1 password='k3y w0rd' dbname=x\n");
  let fileOut = '';
  let fileErr = '';
  const fromFile = await runOperatorCli(['status', '--databases', keywordFile], {
    stdout: (t) => (fileOut += t),
    stderr: (t) => (fileErr += t),
  });
  assert.ok(!fileErr.includes('k3y'), fileErr);
  assert.equal(fromFile, 2, fileErr);
  assert.match(fileErr, /keyword\/value strings are not supported by node-postgres/);
  assert.equal(fileOut, '');
});

test('stepping-worker logs hostile names and errors escaped, and database-down lines without passwords', async () => {
  const file = await databasesFile();
  const worker = start(
    'src/cli/stepping-worker.ts',
    ['--steps', 'test/fixtures/cli-hostile-steps.ts', '--databases', file, '--poll-interval', '200'],
    {},
  );
  // A worker that dies early (as the old one did, printing a password) fails the test at once.
  let stopping = false;
  const died = worker.exited.then((e) => {
    if (stopping) return;
    assertSafe(e, 'stepping-worker');
    throw new Error(`stepping-worker exited early with code ${e.code}:\n${e.stderr}`);
  });
  const ok = await h.stepping.enqueue([{ name: 'cli.noop', args: {} }], { queue: EVIL_QUEUE });
  const bad = await h.stepping.enqueue([{ name: 'cli.hostile', args: {} }], { queue: EVIL_QUEUE });
  const served = async () => {
    assert.equal((await h.stepping.waitForJob(ok, { timeoutMs: 60_000 })).status, 'succeeded');
    assert.equal((await h.stepping.waitForJob(bad, { timeoutMs: 60_000 })).status, 'failed');
    // The lines are written after the results are stored.
    await eventually(
      () => worker.stdout().includes(`job failed      job=${bad}`),
      30_000,
      `the job lines in\n${worker.stdout()}`,
    );
    await eventually(
      () =>
        ['orders1', 'orders2', 'orders3'].every((db) =>
          worker.stderr().includes(`database down db=127.0.0.1:1/${db}:`),
        ),
      30_000,
      `the database-down lines in\n${worker.stderr()}`,
    );
  };
  await Promise.race([served(), died]);
  stopping = true;
  worker.child.kill('SIGTERM');
  const exited = await within(worker.exited, 60_000, 'stepping-worker to stop');
  assert.equal(exited.code, 0, exited.stderr);
  assertSafe(exited, 'stepping-worker');
  assert.ok(exited.stdout.includes(`queue=${EVIL_QUEUE_SHOWN}`), exited.stdout);
  assert.ok(exited.stdout.includes('boom\\u001b[2J\\u009b31m\\u000aFORGED worker line'), exited.stdout);
});
