import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';

import { DEFAULT_MAX_RETRY_AFTER_MS, ERROR_BODY_READ_BYTES, parseRetryAfter } from '../src/http-step.js';
import { EnqueueValidationError, httpStep, type WorkerEventMap } from '../src/index.js';
import { MAX_RETRY_LATER_MS } from '../src/limits.js';
import { deferred, setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** A local server whose answers are scripted per path: a list of statuses, the last one repeats. */
const scripts = new Map<string, (number | 'hang')[]>();
const seen = new Map<string, { method: string; body: string; idempotencyKey: string | undefined }[]>();
/** Paths answered by their own handler instead of a status script. */
const routes = new Map<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>();
const server = http.createServer((req, res) => {
  const route = routes.get(req.url ?? '/');
  if (route) return route(req, res);
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

const worker = await h.worker({ steps: [httpStep], concurrency: 4, pollIntervalMs: 200 });

/**
 * Starts recording the worker's `event`s (before the job exists, so none is missed);
 * `of(jobId)` resolves with the job's first one and stops recording.
 */
function recordEvents<K extends 'step:failed' | 'step:retry-scheduled'>(event: K) {
  const seen: WorkerEventMap[K][] = [];
  const waiters: [string, (e: WorkerEventMap[K]) => void][] = [];
  const listener = (e: WorkerEventMap[K]) => {
    seen.push(e);
    for (const [jobId, resolve] of waiters) if (e.jobId === jobId) resolve(e);
  };
  worker.on(event, listener);
  return {
    async of(jobId: string): Promise<WorkerEventMap[K]> {
      try {
        return (
          seen.find((e) => e.jobId === jobId) ??
          (await new Promise<WorkerEventMap[K]>((resolve) => waiters.push([jobId, resolve])))
        );
      } finally {
        worker.off(event, listener);
      }
    },
  };
}

async function run(
  path: string,
  script: (number | 'hang')[],
  extra: { timeoutMs?: number; maxAttempts?: number; notYetMs?: number } = {},
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
          ...(extra.notYetMs !== undefined ? { notYetMs: extra.notYetMs } : {}),
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
  // notYetMs 0: this server's `Retry-After: 0` is taken as it is (the default would wait 1 s each time).
  const { final, requests, steps } = await run('/too-early', [425, 425, 425, 200], {
    maxAttempts: 1,
    notYetMs: 0,
  });
  assert.equal(final.status, 'succeeded');
  assert.equal(requests.length, 4);
  assert.equal(steps[0]!.attempts, 1);
});

test('other statuses, timeouts and refused connections retry; the key stays the same', async () => {
  const { id, final, requests } = await run('/flaky', [500, 503, 429, 200]);
  assert.equal(final.status, 'succeeded');
  assert.equal(requests.length, 4);
  assert.ok(requests.every((r) => r.idempotencyKey === `${id}:0`));

  // The timeout must end the hung request, never the answered one: on a loaded machine a
  // prompt answer took over 200 ms to arrive (a third request was made).
  const slow = await run('/slow', ['hang', 200], { timeoutMs: 3000 });
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

/** Enqueues one HTTP step from plain args (not through httpStep(), which checks them first). */
async function enqueueRaw(args: Record<string, unknown>, options: Record<string, unknown> = {}) {
  return await h.stepping.enqueue([
    { name: 'stepping.http', args, options: { backoff: { baseMs: 10, maxMs: 20 }, ...options } },
  ]);
}

test('an error body is read only up to a cap: the rest is never downloaded', async () => {
  // 64 MiB of error page, written only as fast as the client reads it. The old step read
  // it whole (a 300 MB body took the worker's RSS from 97 to 406 MB).
  const total = 64 * 1024 * 1024;
  const sent = deferred<{ written: number; finished: boolean }>();
  routes.set('/huge-error', (_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let written = 0;
    const pump = () => {
      while (written < total) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => sent.resolve({ written, finished: res.writableFinished }));
    pump();
  });
  const id = await enqueueRaw({ url: `${base}/huge-error`, timeoutMs: 120_000 }, { maxAttempts: 1 });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 60_000 });
  assert.equal(final.status, 'failed');
  const [step] = await h.stepping.steps(id);
  assert.match(step!.lastError ?? '', /HTTP 500 from http:\/\/127\.0\.0\.1:\d+\/…: x{500}(?!x)/);
  const { written, finished } = await sent.promise;
  assert.equal(finished, false, 'the client closed the connection before the body ended');
  // What the client had not read yet sits in socket buffers: a few MiB at most.
  assert.ok(written < total / 2, `${written} bytes written of ${total} (cap ${ERROR_BODY_READ_BYTES})`);
});

test("reading the answer's body counts against timeoutMs", async () => {
  let calls = 0;
  routes.set('/stalled-body', (_req, res) => {
    calls += 1;
    if (calls > 1) return void res.end('ok');
    // Headers and a few bytes, then nothing: only the timeout can end this attempt.
    res.writeHead(500);
    res.write('partial');
  });
  const failures = recordEvents('step:failed');
  // Attempts are not limited: on a slow machine a later attempt may time out too.
  const id = await enqueueRaw({ url: `${base}/stalled-body`, timeoutMs: 1000 });
  const final = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
  assert.equal(final.status, 'succeeded');
  assert.match((await failures.of(id)).error.message, /HTTP step timed out after 1000 ms/);
  assert.ok(calls >= 2, `${calls} requests`);
});

test("a cancel aborts the reading of the answer's body", async () => {
  routes.set('/stalled-cancel', (_req, res) => {
    res.writeHead(500);
    res.write('partial');
  });
  // The handler's fetch has its answer (headers) and reads the body when the job is
  // cancelled: observed by wrapping fetch, since nothing else shows that moment.
  const answered = deferred();
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (...args: Parameters<typeof fetch>) => {
    const response = await realFetch(...args);
    if (response.url.endsWith('/stalled-cancel')) answered.resolve();
    return response;
  };
  try {
    const id = await enqueueRaw({ url: `${base}/stalled-cancel`, timeoutMs: 120_000 });
    await answered.promise;
    await h.stepping.cancel(id);
    const final = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
    assert.equal(final.status, 'cancelled');
  } finally {
    globalThis.fetch = realFetch;
  }
});

test('redirects are not followed: a 3xx fails the attempt and names the Location', async () => {
  // Another origin that would receive the POST body and the API key.
  const stolen: { method: string; apiKey: string | undefined }[] = [];
  const other = http.createServer((req, res) => {
    stolen.push({ method: req.method ?? '', apiKey: req.headers['x-api-key'] as string | undefined });
    res.end('ok');
  });
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  const otherBase = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  const landed: string[] = [];
  routes.set('/moved-307', (_req, res) => {
    res.writeHead(307, { location: `${otherBase}/steal` });
    res.end();
  });
  routes.set('/moved-302', (_req, res) => {
    res.writeHead(302, { location: '/landing' });
    res.end();
  });
  routes.set('/landing', (req, res) => {
    landed.push(req.method ?? '');
    res.end('ok');
  });
  try {
    const temporary = await enqueueRaw(
      { url: `${base}/moved-307`, headers: { 'x-api-key': 'secret-key' }, body: { amount: 1 } },
      { maxAttempts: 1 },
    );
    const found = await enqueueRaw({ url: `${base}/moved-302`, body: { amount: 1 } }, { maxAttempts: 1 });
    assert.equal((await h.stepping.waitForJob(temporary, { timeoutMs: 15_000 })).status, 'failed');
    assert.equal((await h.stepping.waitForJob(found, { timeoutMs: 15_000 })).status, 'failed');
    const [a] = await h.stepping.steps(temporary);
    assert.match(
      a!.lastError ?? '',
      new RegExp(`HTTP 307 from ${base}/…: redirect to ${otherBase}/steal not followed`),
    );
    const [b] = await h.stepping.steps(found);
    assert.match(b!.lastError ?? '', new RegExp(`HTTP 302 from ${base}/…: redirect to ${base}/landing`));
    assert.deepEqual(stolen, [], 'nothing was sent to the other origin');
    assert.deepEqual(landed, [], 'the POST was not turned into a GET');
  } finally {
    other.closeAllConnections();
    other.close();
  }
});

test('a header with a line break or an invalid URL fails permanently, without echoing the header', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ url: `${base}/ok`, headers: { 'x-api-key': 'secret\r\nx-injected: 1' } }, /header x-api-key holds a/],
    [{ url: 'not a url?token=secret' }, /url is not an absolute URL/],
    [{ url: 'ftp://127.0.0.1/file?token=secret' }, /url must be http: or https:, got "ftp:"/],
    [{ url: 'https://user:secret@127.0.0.1/x' }, /url must not carry credentials .*https:\/\/127\.0\.0\.1/],
    [{ url: `${base}/ok`, method: 'GET', body: 'x' }, /a GET request cannot have a body/],
  ];
  // No maxAttempts: the old step retried these forever.
  const ids = await Promise.all(cases.map(([args]) => enqueueRaw(args)));
  for (const [i, id] of ids.entries()) {
    const final = await h.stepping.waitForJob(id, { timeoutMs: 15_000 });
    assert.equal(final.status, 'failed', JSON.stringify(cases[i]![0]));
    const [step] = await h.stepping.steps(id);
    assert.equal(step!.attempts, 1);
    assert.match(step!.lastError ?? '', cases[i]![1]);
    assert.doesNotMatch(step!.lastError ?? '', /secret/);
  }
});

test('Retry-After is parsed and clamped: a month-long "not yet" waits maxRetryAfterMs at most', async () => {
  routes.set('/too-early-month', (_req, res) => {
    res.writeHead(425, { 'retry-after': '2592000' });
    res.end();
  });
  for (const [maxRetryAfterMs, expected] of [
    [undefined, DEFAULT_MAX_RETRY_AFTER_MS],
    [5000, 5000],
  ] as const) {
    const scheduled = recordEvents('step:retry-scheduled');
    const before = Date.now();
    const id = await enqueueRaw({
      url: `${base}/too-early-month`,
      ...(maxRetryAfterMs !== undefined ? { maxRetryAfterMs } : {}),
    });
    const { nextRunAt, notYet } = await scheduled.of(id);
    assert.equal(notYet, true);
    const delay = nextRunAt!.getTime() - before;
    // The engine's clock and this one may differ a little; a month is far outside.
    assert.ok(
      delay >= expected - 5000 && delay <= expected + 30_000,
      `delay ${delay} ms, expected ${expected}`,
    );
    await h.stepping.cancel(id);
  }
  // The worker is not wedged: the next job runs.
  const { final } = await run('/after-retry-after', [200]);
  assert.equal(final.status, 'succeeded');
});

test('parseRetryAfter reads delta-seconds and HTTP dates; garbage is null', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  const cases: [string | null, number | null][] = [
    [null, null],
    ['0', 0],
    ['120', 120_000],
    [' 7 ', 7000],
    ['2592000', 2_592_000_000],
    ['99999999999999999999', 1e23],
    ['-1', null],
    ['1.5', null],
    ['soon', null],
    ['', null],
    ['Wed, 01 Jan 2025 00:01:00 GMT', 60_000],
    ['Tue, 31 Dec 2024 23:00:00 GMT', 0],
    ['Wednesday, 01-Jan-25 00:00:30 GMT', 30_000],
    ['Wed Jan  1 00:00:10 2025', 10_000],
    ['2025-01-01T00:01:00Z', null],
    ['1 2', null],
    ['Wed, 01 Jan 2025 00:01:00 PST', null],
  ];
  for (const [header, expected] of cases)
    assert.equal(parseRetryAfter(header, now), expected, String(header));
});

test('httpStep() checks its arguments when the call is made, naming the problem', () => {
  const url = 'https://svc.example/charge';
  const cases: [unknown, RegExp][] = [
    [undefined, /the arguments must be an object/],
    [{}, /url must be a string/],
    [{ url: 'relative/path' }, /url is not an absolute URL/],
    [
      { url: 'https://user:pw@svc.example/x' },
      /url must not carry credentials.*https:\/\/svc\.example(?!.*pw)/,
    ],
    [{ url, method: 'PO ST' }, /method must be an HTTP method/],
    [{ url, method: 'TRACE' }, /method TRACE cannot be sent/],
    [{ url, headers: ['x'] }, /headers must be an object/],
    [{ url, headers: { 'bad name': 'x' } }, /header name "bad name" is not a valid HTTP header name/],
    [{ url, headers: { 'x-n': 5 } }, /header x-n must be a string/],
    [{ url, headers: { 'x-k': 'a\nb' } }, /header x-k holds a character HTTP cannot carry/],
    [{ url, headers: { 'x-k': 'café €' } }, /header x-k holds a character/],
    [{ url, timeoutMs: 0 }, /timeoutMs must be an integer from 1 to 2147483647/],
    [{ url, timeoutMs: 1.5 }, /timeoutMs must be an integer/],
    [{ url, timeoutMs: 2 ** 31 }, /timeoutMs must be an integer/],
    [{ url, notYetMs: -1 }, new RegExp(`notYetMs must be an integer from 0 to ${MAX_RETRY_LATER_MS}`)],
    [{ url, maxRetryAfterMs: MAX_RETRY_LATER_MS + 1 }, /maxRetryAfterMs must be an integer/],
    [{ url, timeout: 500 }, /unknown argument "timeout"/],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => httpStep(args as Parameters<typeof httpStep>[0]),
      (error: unknown) => error instanceof EnqueueValidationError && message.test(error.message),
      JSON.stringify(args),
    );
  }
  const call = httpStep({ url, method: 'patch', headers: { authorization: 'Bearer x' }, timeoutMs: 1 });
  assert.equal(call.name, 'stepping.http');
});

test("the stored error shows the URL's origin only, and masks the request's secrets a server echoes back", async () => {
  // What producers and the dashboard read must not hold the args (README "Threat model"):
  // a webhook's path, a query token, an Authorization header.
  const path = '/hooks/T0PATHSECRET1/B0PATHSECRET2?token=QUERYSECRET&plain=1';
  routes.set(path, (req, res) => {
    res.statusCode = 500;
    res.end(`upstream says: you sent ${req.headers.authorization} to ${req.url}`);
  });
  routes.set('/slow?api_key=SLOWQUERYSECRET', () => {}); // never answers
  const echoed = await enqueueRaw(
    { url: `${base}${path}`, headers: { authorization: 'Bearer HEADERSECRET' } },
    { maxAttempts: 1 },
  );
  const slow = await enqueueRaw(
    { url: `${base}/slow?api_key=SLOWQUERYSECRET`, timeoutMs: 200 },
    { maxAttempts: 1 },
  );
  for (const [id, expected] of [
    [
      echoed,
      new RegExp(
        `^HTTP 500 from ${base}/…: upstream says: you sent \\*\\*\\* to /hooks/\\*\\*\\*/\\*\\*\\*\\?token=\\*\\*\\*&plain=1`,
      ),
    ],
    [slow, new RegExp(`HTTP step timed out after 200 ms: ${base}/…`)],
  ] as const) {
    assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 15_000 })).status, 'failed');
    const { rows } = await h.pool.query(`SELECT last_error FROM stepping.job_overview WHERE job_id = $1`, [
      id,
    ]);
    const [step] = await h.stepping.steps(id);
    for (const text of [JSON.stringify(rows[0].last_error), step!.lastError ?? '']) {
      assert.doesNotMatch(text, /SECRET/, text);
    }
    assert.match(step!.lastError ?? '', expected);
  }
});

test('headers fetch manages itself (connection, content-length, expect, ...) fail permanently at once, naming the header', async () => {
  const names = ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'content-length'];
  const ids = await Promise.all(
    names.map((name) => enqueueRaw({ url: `${base}/ok`, headers: { [name]: '100-continue' }, body: 'x' })),
  );
  for (const [i, id] of ids.entries()) {
    const final = await h.stepping.waitForJob(id, { timeoutMs: 15_000 });
    assert.equal(final.status, 'failed', names[i]);
    const [step] = await h.stepping.steps(id);
    assert.equal(step!.attempts, 1, names[i]);
    assert.match(step!.lastError ?? '', new RegExp(`header ${names[i]} cannot be set: fetch sets it`));
  }
});
