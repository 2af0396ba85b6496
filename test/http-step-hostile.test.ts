/**
 * The HTTP step against a careless user and a server that answers in awkward ways: ports
 * fetch never connects to, and connection errors that must say why.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';

import { EnqueueValidationError, httpStep } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

await h.worker({ steps: [httpStep], concurrency: 4, pollIntervalMs: 200 });

/** Enqueues one HTTP step from plain args (not through httpStep(), which checks them first). */
async function enqueueRaw(args: Record<string, unknown>, options: Record<string, unknown> = {}) {
  return await h.stepping.enqueue([
    { name: 'stepping.http', args, options: { backoff: { baseMs: 10, maxMs: 20 }, ...options } },
  ]);
}

/** Waits for the job to end and returns its status and its one step's error and attempts. */
async function outcome(id: string) {
  const final = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
  const [step] = await h.stepping.steps(id);
  return { status: final.status, attempts: step!.attempts, lastError: step!.lastError ?? '' };
}

test(
  'a port fetch never connects to (6000, 10080, ...) fails permanently at once, naming the port',
  { timeout: 60_000 },
  async () => {
    // fetch refuses the Fetch standard's "bad ports" before connecting, with a bare
    // "fetch failed": the old step retried such a job forever without saying why.
    const ids = await Promise.all(
      ['http://127.0.0.1:6000/hook?token=PORTSECRET1', 'https://127.0.0.1:10080/x'].map((url) =>
        enqueueRaw({ url }),
      ),
    );
    for (const [i, id] of ids.entries()) {
      const { status, attempts, lastError } = await outcome(id);
      assert.equal(status, 'failed', lastError);
      assert.equal(attempts, 1, lastError);
      assert.match(lastError, new RegExp(`port ${i === 0 ? 6000 : 10080}`));
      assert.doesNotMatch(lastError, /SECRET/);
    }
    assert.throws(
      () => httpStep({ url: 'https://svc.example:6667/charge' }),
      (error: unknown) => error instanceof EnqueueValidationError && /port 6667/.test(error.message),
    );
    // Ports outside the list, and default ports, are accepted.
    httpStep({ url: 'https://svc.example:6001/charge' });
    httpStep({ url: 'http://svc.example/charge' });
  },
);

test(
  "a connection error names its cause and the URL's origin only (not a bare 'fetch failed')",
  { timeout: 60_000 },
  async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((r) => closed.close(() => r()));
    const id = await enqueueRaw({ url: `${origin}/hooks/PATHSECRET1?token=QUERYSECRET` }, { maxAttempts: 1 });
    const { status, lastError } = await outcome(id);
    assert.equal(status, 'failed');
    assert.match(lastError, new RegExp(`^HTTP step: request to ${origin}/… failed: .*ECONNREFUSED`));
    assert.doesNotMatch(lastError, /SECRET/);
  },
);
