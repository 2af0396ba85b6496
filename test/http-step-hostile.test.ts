/**
 * The HTTP step against a careless user and a server that answers in awkward ways: ports
 * fetch never connects to, connection errors that must say why (and not where a host
 * resolved to), echoes of the request's secrets placed where the error excerpt is cut,
 * and redirects whose Location carries the server's own credentials.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';

import { DEFAULT_NOT_YET_MS } from '../src/http-step.js';
import { EnqueueValidationError, httpStep } from '../src/index.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** Paths answered by their own handler. */
const routes = new Map<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>();
const server = http.createServer((req, res) => {
  const route = routes.get(req.url ?? '/');
  if (route) return route(req, res);
  res.statusCode = 404;
  res.end();
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
after(() => {
  server.closeAllConnections();
  server.close();
});

await h.worker({ steps: [httpStep], concurrency: 4, pollIntervalMs: 200 });

/** Enqueues one HTTP step from plain args (not through httpStep(), which checks them first). */
async function enqueueRaw(args: Record<string, unknown>, options: Record<string, unknown> = {}) {
  return await h.stepping.enqueue([
    { name: 'stepping.http', args, options: { backoff: { baseMs: 10, maxMs: 20 }, ...options } },
  ]);
}

/** Each job failed, its error matches the pattern at its index and shows no `SECRET`. */
async function failedShowingNoSecret(ids: string[], expected: RegExp[]): Promise<void> {
  for (const [i, id] of ids.entries()) {
    const { status, lastError } = await outcome(id);
    assert.equal(status, 'failed');
    assert.doesNotMatch(lastError, /SECRET/, lastError);
    assert.match(lastError, expected[i]!);
  }
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
    assert.match(lastError, new RegExp(`^HTTP step: request to ${origin}/… failed: connect ECONNREFUSED$`));
    assert.doesNotMatch(lastError, /SECRET/);
    // The cause is named by its code, not by the addresses a host name resolved to: those
    // are not in the args, and producers read errors.
    const named = `http://localhost:${new URL(origin).port}`;
    const id2 = await enqueueRaw({ url: `${named}/x` }, { maxAttempts: 1 });
    const second = await outcome(id2);
    assert.match(
      second.lastError,
      new RegExp(`^HTTP step: request to ${named}/… failed: (connect )?ECONNREFUSED$`),
    );
    assert.doesNotMatch(second.lastError, /127\.0\.0\.1|::1/);
  },
);

test(
  "undici's connect timeout is named without the addresses its message lists",
  { timeout: 60_000 },
  async () => {
    // undici's ConnectTimeoutError (its own 10 s connect timeout, reached before a longer
    // timeoutMs) lists the addresses the host resolved to in its message. It cannot be
    // made on demand against a local server, so fetch is wrapped to fail as undici does
    // for this one URL.
    const url = `${base}/connect-timeout`;
    const realFetch = globalThis.fetch;
    globalThis.fetch = async (...args: Parameters<typeof fetch>) => {
      if (args[0] instanceof Request && args[0].url === url) {
        const cause = Object.assign(
          new Error(
            'Connect Timeout Error (attempted addresses: 10.1.2.3:443, 10.1.2.4:443, timeout: 10000ms)',
          ),
          { name: 'ConnectTimeoutError', code: 'UND_ERR_CONNECT_TIMEOUT' },
        );
        throw new TypeError('fetch failed', { cause });
      }
      return await realFetch(...args);
    };
    try {
      const id = await enqueueRaw({ url, timeoutMs: 60_000 }, { maxAttempts: 1 });
      const { status, lastError } = await outcome(id);
      assert.equal(status, 'failed');
      assert.equal(
        lastError,
        `HTTP step: request to ${base}/… failed: Connect Timeout Error (UND_ERR_CONNECT_TIMEOUT)`,
      );
    } finally {
      globalThis.fetch = realFetch;
    }
  },
);

test(
  'a secret the server echoes where the excerpt is cut is masked, not shown in part',
  { timeout: 60_000 },
  async () => {
    // The excerpt is the first 500 characters of the error body (README "HTTP step"); the
    // old step cut first and masked after, so an echoed token that straddled the cut kept
    // its first characters.
    const token = 'Bearer TOKSECRETHEAD-0123456789abcdef';
    routes.set('/echo-cut', (req, res) => {
      res.statusCode = 500;
      res.end(`${'x'.repeat(470)} you sent ${req.headers.authorization} and more`);
    });
    // A redirect's Location is cut at 500 characters as well.
    const query = 'LOCSECRETHEAD-0123456789abcdef';
    const pad = 'a'.repeat(490 - base.length - '//'.length);
    routes.set(`/moved-cut?t=${query}`, (_req, res) => {
      res.writeHead(307, { location: `/${pad}/${query}` });
      res.end();
    });
    // A query value sent with a raw '+' or '/' (a base64 signature): neither its decoded
    // form ("Ab SIG...") nor encodeURIComponent's ("Ab%20SIG...") is what a server echoes.
    const signed = '/echo?sig=Ab+SIGSECRET/x=';
    routes.set(signed, (req, res) => {
      res.statusCode = 500;
      res.end(`no route for ${req.url}`);
    });
    // A value longer than what is read of the body (2 KiB): echoed inside the excerpt, it
    // runs past the read cap, so only its beginning was read.
    const long = `LONGSECRET${'k'.repeat(3000)}`;
    routes.set('/echo-long', (req, res) => {
      res.statusCode = 500;
      res.end(`${'x'.repeat(400)}${String(req.headers['x-api-key'])}`);
    });
    const ids = await Promise.all([
      enqueueRaw({ url: `${base}/echo-cut`, headers: { authorization: token } }, { maxAttempts: 1 }),
      enqueueRaw({ url: `${base}/moved-cut?t=${query}` }, { maxAttempts: 1 }),
      enqueueRaw({ url: `${base}${signed}` }, { maxAttempts: 1 }),
      enqueueRaw({ url: `${base}/echo-long`, headers: { 'x-api-key': long } }, { maxAttempts: 1 }),
    ]);
    const expected = [
      /^HTTP 500 from .*: x{470} you sent \*\*\*/,
      /^HTTP 307 from .*: redirect to http:\/\/127\.0\.0\.1:\d+\/a+\/\*\*\*/,
      /^HTTP 500 from .*: no route for \/echo\?sig=\*\*\*/,
      /^HTTP 500 from .*: x{400}\*\*\*$/,
    ];
    await failedShowingNoSecret(ids, expected);
  },
);

test(
  "a redirect's Location is shown without its query or fragment, where a server puts its own credentials",
  { timeout: 60_000 },
  async () => {
    // An API that answers 303 See Other with a presigned download URL: the signature in
    // its query is a credential of the server's, not in the args, and stored errors are
    // read by producers, operators and the dashboard.
    routes.set('/moved-presigned', (_req, res) => {
      res.writeHead(303, {
        location:
          'https://bucket.s3.example/results/42.json?X-Amz-Credential=AKIASECRET&X-Amz-Signature=SIGSECRET#part=SECRETFRAG',
      });
      res.end();
    });
    routes.set('/moved-fragment', (_req, res) => {
      res.writeHead(302, { location: '/callback#access_token=TOKENSECRET' });
      res.end();
    });
    const ids = await Promise.all([
      enqueueRaw({ url: `${base}/moved-presigned` }, { maxAttempts: 1 }),
      enqueueRaw({ url: `${base}/moved-fragment` }, { maxAttempts: 1 }),
    ]);
    const expected = [
      /^HTTP 303 from .*: redirect to https:\/\/bucket\.s3\.example\/results\/42\.json\?… not followed/,
      new RegExp(`^HTTP 302 from .*: redirect to ${base}/callback#… not followed`),
    ];
    await failedShowingNoSecret(ids, expected);
  },
);

test(
  'a server answering 425 with Retry-After: 0 for ever is asked once per notYetMs, not as fast as a round trip allows',
  { timeout: 60_000 },
  async () => {
    const asked: number[] = [];
    routes.set('/too-early-forever', (_req, res) => {
      asked.push(Date.now());
      res.writeHead(425, { 'retry-after': '0' });
      res.end();
    });
    const id = await enqueueRaw({ url: `${base}/too-early-forever` });
    await eventually(() => asked.length >= 3, 20_000, 'three requests to the 425 server');
    await h.stepping.cancel(id);
    // Both times are this process's clock: the gap cannot be shorter than the delay asked.
    for (let i = 1; i < 3; i += 1) {
      const gap = asked[i]! - asked[i - 1]!;
      assert.ok(gap >= DEFAULT_NOT_YET_MS - 50, `request ${i} came ${gap} ms after the one before`);
    }
  },
);

test(
  'headers or a url of the wrong type are named by their kind, never shown, at enqueue and in the worker',
  { timeout: 60_000 },
  async () => {
    // fetch takes headers as [name, value] pairs too, and a URL object: easy mistakes whose
    // values are the credentials (an API key, a webhook's path and token).
    const secretUrl = 'https://hooks.slack.com/services/T0/B0/SECRETPATH?token=SECRETQ';
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { url: `${base}/x`, headers: [['Authorization', 'Bearer sk_live_SECRET_TOKEN_123']] },
        /headers must be an object of name: value strings, got an array of 1 item$/,
      ],
      [
        { url: `${base}/x`, headers: 'Authorization: Bearer sk_live_SECRET_TOKEN_123' },
        /headers must be an object of name: value strings, got a string of 46 characters$/,
      ],
      [{ url: { href: secretUrl } }, /url must be a string, got an object$/],
      [{ url: `${base}/x`, headers: null }, /headers must be an object of name: value strings, got null$/],
      [{ url: [secretUrl] }, /url must be a string, got an array of 1 item$/],
    ];
    for (const [args, expected] of cases) {
      assert.throws(
        () => httpStep(args as unknown as Parameters<typeof httpStep>[0]),
        (error: unknown) =>
          error instanceof EnqueueValidationError &&
          expected.test(error.message) &&
          !/SECRET/.test(error.message),
        JSON.stringify(args),
      );
    }
    assert.throws(
      () => httpStep({ url: new URL(secretUrl) as unknown as string }),
      (error: unknown) =>
        error instanceof EnqueueValidationError &&
        /url must be a string, got a URL object/.test(error.message) &&
        !/SECRET/.test(error.message),
    );
    // A Headers object would have been taken, and its headers silently dropped.
    assert.throws(
      () =>
        httpStep({
          url: `${base}/x`,
          headers: new Headers({ authorization: 'Bearer sk_live_SECRET' }) as unknown as Record<
            string,
            string
          >,
        }),
      /headers must be an object of name: value strings, got a Headers object$/,
    );
    // Args that reach a worker another way are checked there, and the stored error is as bare.
    const ids = await Promise.all(cases.map(([args]) => enqueueRaw(args)));
    await failedShowingNoSecret(
      ids,
      cases.map(([, expected]) => new RegExp(`^HTTP step: ${expected.source}`)),
    );
  },
);
