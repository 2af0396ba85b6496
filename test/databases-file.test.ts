/**
 * `stepping-worker --databases <file>`: an edit of the file takes effect at once, not at
 * the next periodic re-read (every 30 s): a tenant appended is served, and a tenant
 * dropped from a file saved by rename (as editors save) is let go. A real worker process.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { createStepping, createWorker, defineStep } from '../src/index.js';
import { start, trackChildren } from './fixtures/processes.js';
import { createTestDatabase } from './support/db.js';
import { eventually } from './support/harness.js';

trackChildren();
const dir = mkdtempSync(path.join(tmpdir(), 'stepping-databases-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Inside the 30-s periodic re-read, whose timer starts with the worker, before the first
 * tenant is up: the append comes a second or two later, so a wait that ends later than
 * this means the change was seen by the re-read, not by the watch. (Seen within 1.5 s
 * here; the margin is for a loaded machine.)
 */
const SEEN_WITHIN_MS = 20_000;

test('a tenant appended to the file is served at once, and one removed by a rename-save is let go', async () => {
  const [a, b] = await Promise.all([createTestDatabase('dbfile_a'), createTestDatabase('dbfile_b')]);
  const file = path.join(dir, 'tenants.txt');
  writeFileSync(file, `# tenants\nta=${a.url}\n`);
  const worker = start(
    'src/cli/stepping-worker.ts',
    ['--steps', 'test/fixtures/cli-steps.ts', '--databases', file, '--max-connections', '12'],
    {},
  );
  try {
    await eventually(() => /database up\s+db=ta\b/.test(worker.stdout()), 30_000, 'tenant ta up');
    const tenantB = createStepping({ connectionString: b.url });
    try {
      const jobId = await tenantB.enqueue([{ name: 'cli.noop', args: {} }]);
      appendFileSync(file, `tb=${b.url}\n`);
      await eventually(
        async () => (await tenantB.getJob(jobId))?.status === 'succeeded',
        SEEN_WITHIN_MS,
        `the job of the appended tenant tb (worker output:\n${worker.stdout()}${worker.stderr()})`,
      );
      assert.match(worker.stdout(), /database up\s+db=tb\b/);
    } finally {
      await tenantB.close();
    }
    // Saved as editors do: a new file renamed over the old one (the watch is on the directory).
    const next = path.join(dir, 'tenants.txt.tmp');
    writeFileSync(next, `tb=${b.url}\n`);
    renameSync(next, file);
    await eventually(
      () => /database gone\s+db=ta\b/.test(worker.stdout()),
      SEEN_WITHIN_MS,
      'tenant ta let go',
    );
    assert.doesNotMatch(worker.stdout(), /database gone\s+db=tb\b/);
  } finally {
    worker.child.kill('SIGTERM');
    const exited = await worker.exited;
    assert.equal(exited.code, 0, exited.stderr);
  }
});

test('refreshes of the database list never overlap: calls made during one share the next', async () => {
  const { url } = await createTestDatabase('dbfile_serial');
  let reading = 0;
  let most = 0;
  let reads = 0;
  const worker = createWorker({
    databases: {
      // A slow source: overlapping refreshes would be reading at the same time.
      list: async () => {
        reads++;
        most = Math.max(most, ++reading);
        await new Promise((r) => setTimeout(r, 50));
        reading--;
        return [{ id: 'serial', connectionString: url }];
      },
      refreshMs: 60_000,
    },
    steps: [defineStep('dbfile.noop', () => {})],
    maxConnections: 4,
  });
  await worker.start();
  try {
    const before = reads;
    const first = worker.refresh();
    await eventually(() => reading === 1, 5000, 'the first read under way');
    await Promise.all([first, ...Array.from({ length: 4 }, () => worker.refresh())]);
    assert.equal(most, 1, 'one read at a time');
    // The four calls made while the first read ran share one more read.
    assert.equal(reads - before, 2);
  } finally {
    await worker.stop();
  }
});
