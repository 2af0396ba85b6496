/**
 * The `stepping-worker` bin's log lines go out in one write per turn of the event loop:
 * stdout to a pipe or a file is a synchronous system call per write on Linux, and a
 * settled batch of units logs three lines per one-step job in one turn. Lines keep their
 * order, none waits past the turn, a big burst does not wait at all, and the bin writes
 * what is pending as it exits (test/cli-worker*.test.ts read its lines from a real pipe).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { BATCHED_WRITER_MAX_PENDING, batchedWriter } from '../src/cli/batched-writer.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('lines written in one turn reach the stream in one write, in order', async () => {
  const writes: string[] = [];
  const w = batchedWriter((text) => writes.push(text));
  const lines = Array.from({ length: 300 }, (_, i) => `line ${i}\n`);
  for (const line of lines) w.write(line);
  assert.deepEqual(writes, [], 'nothing written before the turn ends');
  await turn();
  assert.deepEqual(writes, [lines.join('')]);
  w.write('next turn\n');
  await turn();
  assert.deepEqual(writes, [lines.join(''), 'next turn\n']);
});

test('a burst past the size cap is written at once, and flush() writes what is pending', async () => {
  const writes: string[] = [];
  const w = batchedWriter((text) => writes.push(text));
  const big = 'x'.repeat(BATCHED_WRITER_MAX_PENDING - 1);
  w.write(big);
  assert.equal(writes.length, 0);
  w.write('yz');
  assert.deepEqual(writes, [`${big}yz`], 'written without waiting for the turn');
  w.write('pending\n');
  w.flush();
  assert.deepEqual(writes.at(-1), 'pending\n');
  await turn();
  assert.equal(writes.length, 2, 'the turn has nothing left to write');
});

test('the worker bin writes the lines still pending when its process exits', () => {
  // A child that writes through the bin's stdout and exits in the same turn.
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  const script = `
    const { workerProcessIo } = await import(${JSON.stringify(path.join(root, 'src', 'cli', 'args.js'))});
    for (let i = 0; i < 1000; i++) workerProcessIo.stdout('line ' + i + '\\n');
    process.exit(0);
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const out = child.stdout.split('\n').filter(Boolean);
  assert.equal(out.length, 1000);
  assert.equal(out[999], 'line 999');
});
