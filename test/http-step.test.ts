import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { httpStep } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** A local server whose answers are scripted per path: a list of statuses, the last one repeats. */
const scripts = new Map<string, (number | 'hang')[]>();
const seen = new Map<string, { method: string; body: string; idempotencyKey: string | undefined }[]>();
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const path = req.url ?? '/';
    const list = seen.get(path) ?? [];
    list.push({
      method: req.method ?? '',
      body,
      idempotencyKey: req.headers['idempotency-key'] as string | undefined,
    });
    seen.set(path, list);
    const script = scripts.get(path) ?? [200];
    const answer = script.length > 1 ? script.shift()! : script[0]!;
    if (answer === 'hang') return; // never answers: the step's timeout must fire
    res.statusCode = answer;
    if (answer === 425) res.setHeader('retry-after', '0');
    res.end(answer >= 400 ? `status ${answer}` : 'ok');
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
after(() => {
  server.closeAllConnections();
  server.close();
});

await h.worker({ steps: [httpStep], concurrency: 4, pollIntervalMs: 200 });

async function run(
  path: string,
  script: (number | 'hang')[],
  extra: { timeoutMs?: number; maxAttempts?: number } = {},
) {
  scripts.set(path, script);
  const id = await h.stepping.enqueue(
    [
      httpStep(
        {
          url: `${base}${path}`,
          method: 'PUT',
          body: { hello: 'world' },
          timeoutMs: extra.timeoutMs ?? 2000,
        },
        {
          backoff: { baseMs: 10, maxMs: 20 },
          ...(extra.maxAttempts ? { maxAttempts: extra.maxAttempts } : {}),
        },
      ),
    ],
    { queue: 'default' },
  );
  const final = await h.stepping.waitForJob(id, { timeoutMs: 15_000 });
  return { id, final, steps: await h.stepping.steps(id), requests: seen.get(path) ?? [] };
}

test('2xx succeeds; the body is sent as JSON with a stable Idempotency-Key', async () => {
  const { id, final, requests } = await run('/ok', [204]);
  assert.equal(final.status, 'succeeded');
  assert.equal(requests.length, 1);
  assert.equal(requests[0]!.method, 'PUT');
  assert.deepEqual(JSON.parse(requests[0]!.body), { hello: 'world' });
  assert.equal(requests[0]!.idempotencyKey, `${id}:0`);
});

test('409 is a permanent failure: no retry, the job fails', async () => {
  const { final, requests, steps } = await run('/conflict', [409, 200]);
  assert.equal(final.status, 'failed');
  assert.equal(requests.length, 1);
  assert.match(steps[0]!.lastError ?? '', /HTTP 409/);
});

test('425 is "not yet": asked again later without counting an attempt', async () => {
  const { final, requests, steps } = await run('/too-early', [425, 425, 425, 200], { maxAttempts: 1 });
  assert.equal(final.status, 'succeeded');
  assert.equal(requests.length, 4);
  assert.equal(steps[0]!.attempts, 1);
});

test('other statuses, timeouts and refused connections retry; the key stays the same', async () => {
  const { id, final, requests } = await run('/flaky', [500, 503, 429, 200]);
  assert.equal(final.status, 'succeeded');
  assert.equal(requests.length, 4);
  assert.ok(requests.every((r) => r.idempotencyKey === `${id}:0`));

  const slow = await run('/slow', ['hang', 200], { timeoutMs: 200 });
  assert.equal(slow.final.status, 'succeeded');
  assert.equal(slow.requests.length, 2);

  // Nothing listens on this port: every attempt fails, up to maxAttempts.
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const id2 = await h.stepping.enqueue([
    httpStep({ url: `http://127.0.0.1:${port}/x` }, { maxAttempts: 3, backoff: { baseMs: 10, maxMs: 20 } }),
  ]);
  const refused = await h.stepping.waitForJob(id2, { timeoutMs: 15_000 });
  assert.equal(refused.status, 'failed');
  const steps = await h.stepping.steps(id2);
  assert.equal(steps[0]!.attempts, 3);
  assert.match(steps[0]!.lastError ?? '', /fetch failed|ECONNREFUSED/);
});
