/**
 * The built package, as a user installs it: the bins from dist/ (compiled by `npm test`'s
 * pretest build) run with plain node, no tsx: `stepping` reads the database, and
 * `stepping-worker` runs a job from a compiled (.mjs) steps module, then stops on SIGTERM;
 * under tsx (`node --import tsx`), it runs a TypeScript steps module.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { sourceRoot, trackChildren, within } from './fixtures/processes.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();
const bin = (name: string) => path.join(sourceRoot, 'dist', 'src', 'cli', `${name}.js`);

/** Runs node with these arguments (a built bin and its own); resolves with its exit code and output. */
function node(args: string[]): {
  done: Promise<{ code: number | null; out: string; err: string }>;
  kill: (s: NodeJS.Signals) => void;
  out: () => string;
} {
  const child = spawn(process.execPath, args, { env: { ...process.env, DATABASE_URL: h.url } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
  return { done, kill: (s) => child.kill(s), out: () => out };
}

test('the built stepping bin reads the database with plain node', async () => {
  await h.stepping.enqueue([{ name: 'dist.queued', args: {} }], { queue: 'dist-q' });
  const status = await within(node([bin('stepping'), 'status', '--json']).done, 60_000, 'stepping status');
  assert.equal(status.code, 0, status.err);
  const rows = (JSON.parse(status.out) as { queues: { queue: string; status: string; jobs: number }[] })
    .queues;
  assert.ok(rows.some((r) => r.queue === 'dist-q' && r.status === 'pending' && r.jobs === 1));
});

/**
 * Writes a steps module (`body` after an import of defineStep from dist/), starts the built
 * worker on it with `nodeOptions` before the bin, runs one `step` job through it and stops
 * the worker with SIGTERM. Returns the job's output and how the worker ended.
 */
async function oneJobThroughBuiltWorker(
  file: string,
  body: string,
  step: string,
  args: object,
  nodeOptions: string[] = [],
): Promise<{ output: unknown; stopped: { code: number | null; out: string; err: string } }> {
  const module = path.join(mkdtempSync(path.join(os.tmpdir(), 'stepping-dist-')), file);
  const index = path.join(sourceRoot, 'dist', 'src', 'index.js');
  writeFileSync(module, `import { defineStep } from ${JSON.stringify(index)};\n${body}`);
  const worker = node([...nodeOptions, bin('stepping-worker'), '--steps', module]);
  const id = await h.stepping.enqueue([{ name: step, args }]);
  const job = await h.stepping.waitForJob(id, { timeoutMs: 60_000 });
  assert.equal(job.status, 'succeeded');
  worker.kill('SIGTERM');
  const stopped = await within(worker.done, 30_000, 'the worker to stop');
  assert.equal(stopped.code, 0, stopped.err);
  return { output: job.output, stopped };
}

test('the built stepping-worker runs a compiled steps module and stops on SIGTERM', async () => {
  const { output, stopped } = await oneJobThroughBuiltWorker(
    'steps.mjs',
    `export const built = defineStep('dist.built', async (args) => ({ doubled: args.n * 2 }));\n`,
    'dist.built',
    { n: 21 },
  );
  assert.deepEqual(output, { doubled: 42 });
  assert.match(stopped.out, /stopped/);
});

test('under tsx, the built stepping-worker runs a TypeScript steps module, as the README shows', async () => {
  // The other tests run every bin compiled; this is the one path through tsx's hooks.
  const { output } = await oneJobThroughBuiltWorker(
    'steps.ts',
    `interface Args { n: number }\n` +
      `export const typed = defineStep('dist.typed', async (args: Args) => ({ tripled: args.n * 3 }));\n`,
    'dist.typed',
    { n: 7 },
    ['--import', 'tsx'],
  );
  assert.deepEqual(output, { tripled: 21 });
});
