/**
 * `stepping limits` and `stepping schedules` (in this process), and the sections they add
 * to `stepping status`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runOperatorCli } from '../src/cli/operator.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runOperatorCli(
    args,
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) },
    { DATABASE_URL: h.url },
  );
  return { code, stdout, stderr };
}

test('stepping limits set, list (text and JSON), clear; usage errors exit 2', async () => {
  const set = await cli('limits', 'set', 'emails', 'running=5', 'rate=10/1s');
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /emails\s+0\/5\s+0\/10 per 1s\s+0\s+no/);
  const listed = await cli('limits', '--json');
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout), [
    {
      queue: 'emails',
      maxRunning: 5,
      running: 0,
      rateCount: 10,
      ratePeriodMs: 1000,
      windowStarts: 0,
      ratePerKey: false,
      keysAtLimit: null,
      ready: 0,
      atLimit: false,
    },
  ]);
  const perKey = await cli('limits', 'set', 'sms', 'rate=3/1m', 'per-key');
  assert.equal(perKey.code, 0, perKey.stderr);
  assert.match(perKey.stdout, /sms\s+0\s+3 per 1m per key: 0 keys at it\s+0\s+no/);
  assert.equal((await cli('limits', 'clear', 'sms')).code, 0);
  const status = await cli('status');
  assert.match(status.stdout, /queue limits\n/);
  assert.equal((await cli('limits', 'clear', 'emails')).stdout, 'queue emails: limits cleared\n');
  assert.equal((await cli('limits')).stdout, 'no queue limits\n');
  for (const bad of [
    ['limits', 'set', 'emails'],
    ['limits', 'set', 'emails', 'running=0'],
    ['limits', 'set', 'emails', 'rate=10'],
    ['limits', 'set', 'emails', 'running=3', 'per-key'],
    ['limits', 'frob'],
  ]) {
    const r = await cli(...bad);
    assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
  }
});

test('stepping schedules lists, pauses, resumes and removes; status shows schedules', async () => {
  await h.stepping.schedule('nightly', '0 3 * * *', [{ name: 'x.y', args: {} }], {
    timeZone: 'Europe/Berlin',
  });
  const listed = await cli('schedules');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /nightly\s+0 3 \* \* \*\s+Europe\/Berlin\s+default\s+active/);
  assert.equal((await cli('schedules', 'pause', 'nightly')).stdout, 'schedule nightly: paused\n');
  assert.match((await cli('status')).stdout, /schedules\n[\s\S]*nightly[\s\S]*paused/);
  assert.equal((await cli('schedules', 'resume', 'nightly')).stdout, 'schedule nightly: resumed\n');
  assert.equal((await cli('schedules', 'remove', 'nightly')).stdout, 'schedule nightly: removed\n');
  const missing = await cli('schedules', 'pause', 'nightly');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no schedule named "nightly"/);
  assert.equal((await cli('schedules', 'pause')).code, 2);
});
