/**
 * createHttpStep's destination policy: allowHosts and denyPrivateAddresses. A producer
 * names the URL, so without a policy a worker calls localhost, private networks and cloud
 * metadata addresses on its behalf; with one, those requests fail permanently and never
 * reach the server. Names are checked on the addresses they resolve to when connecting.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';

import { HttpDestinationError, HttpDestinationPolicy, isNonPublicAddress } from '../src/http-destinations.js';
import { createHttpStep, InvalidArgumentError } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

let received = 0;
const server = http.createServer((_req, res) => {
  received += 1;
  res.end('ok');
});
// Both loopback families where the machine has IPv6, so `localhost` answers whichever it
// resolves to first (without IPv6, fetch falls back to 127.0.0.1).
await new Promise<void>((resolve, reject) => {
  server.once('error', (error) =>
    (error as NodeJS.ErrnoException).code === 'EAFNOSUPPORT' ||
    (error as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL'
      ? server.listen(0, '127.0.0.1', resolve)
      : reject(error),
  );
  server.listen(0, '::', resolve);
});
const port = (server.address() as AddressInfo).port;
after(() => {
  server.closeAllConnections();
  server.close();
});

/** A worker of the step `definition` serving only `queue` (each test its own). */
async function workerOn(queue: string, options: Parameters<typeof createHttpStep>[0]) {
  const step = createHttpStep(options);
  await h.worker({ steps: [step], queues: [queue], concurrency: 4, pollIntervalMs: 200 });
  return step;
}

/** Runs one HTTP step to `url` in `queue`; its final status, attempts and error. */
async function run(queue: string, url: string) {
  const id = await h.stepping.enqueue(
    [
      {
        name: 'stepping.http',
        args: { url, timeoutMs: 5000 },
        options: { backoff: { baseMs: 10, maxMs: 20 } },
      },
    ],
    { queue },
  );
  const final = await h.stepping.waitForJob(id, { timeoutMs: 30_000 });
  const [step] = await h.stepping.steps(id);
  return { status: final.status, attempts: step!.attempts, lastError: step!.lastError ?? '' };
}

test('denyPrivateAddresses: loopback by address, by name and in every spelling fails permanently, unsent', async () => {
  await workerOn('deny-private', { denyPrivateAddresses: true });
  const before = received;
  const urls = [
    `http://127.0.0.1:${port}/`,
    `http://localhost:${port}/`,
    `http://[::1]:${port}/`,
    `http://[::ffff:127.0.0.1]:${port}/`,
    `http://2130706433:${port}/`, // 127.0.0.1 as one number
    `http://0x7f.1:${port}/`,
    `http://169.254.169.254/latest/meta-data/`,
  ];
  for (const url of urls) {
    const { status, attempts, lastError } = await run('deny-private', url);
    assert.equal(status, 'failed', url);
    assert.equal(attempts, 1, `${url}: refused once, not retried`);
    assert.match(
      lastError,
      /^HTTP step: request to http:\/\/.* refused: .*(not a public address|resolves to an address that is not public)/,
      `${url}: ${lastError}`,
    );
  }
  assert.equal(received, before, 'no request reached the server');
});

test('allowHosts: a listed name is called; any other host, its address included, fails permanently', async () => {
  await workerOn('allow-hosts', { allowHosts: ['localhost', '*.example.invalid'] });
  const before = received;
  const ok = await run('allow-hosts', `http://LOCALHOST:${port}/`);
  assert.equal(ok.status, 'succeeded', ok.lastError);
  assert.equal(received, before + 1);
  for (const url of [
    `http://127.0.0.1:${port}/`,
    'http://example.invalid/',
    'http://localhost.evil.invalid/',
  ]) {
    const { status, attempts, lastError } = await run('allow-hosts', url);
    assert.equal(status, 'failed', url);
    assert.equal(attempts, 1, url);
    assert.match(lastError, /refused: host \S+ is not in allowHosts/, lastError);
  }
  assert.equal(received, before + 1, 'nothing else reached the server');
});

test('createHttpStep checks its options at once', () => {
  assert.throws(() => createHttpStep({ allowHosts: ['not a host'] }), InvalidArgumentError);
  assert.throws(() => createHttpStep({ allowHosts: 'localhost' as unknown as string[] }), /array/);
  assert.throws(() => createHttpStep({ denyPrivateAddresses: 'yes' as unknown as boolean }), /boolean/);
  assert.throws(
    () => createHttpStep({ denyPrivate: true } as unknown as Parameters<typeof createHttpStep>[0]),
    /unknown createHttpStep option "denyPrivate"/,
  );
  const step = createHttpStep({ allowHosts: ['api.example.com', '10.0.0.7', '[::1]', '*.bücher.example'] });
  assert.equal(step.stepName, 'stepping.http');
  // Calls are checked as httpStep's are.
  assert.throws(() => step({ url: 'ftp://x/' }), /http: or https:/);
  // Names compare as URLs spell them: lower case, punycode, without a trailing dot.
  const policy = new HttpDestinationPolicy({ allowHosts: ['*.Bücher.example', 'API.Example.com.'] });
  policy.check(new URL('https://shop.bücher.example/x'));
  policy.check(new URL('https://a.b.xn--bcher-kva.example/'));
  policy.check(new URL('https://api.example.com./'));
  for (const url of [
    'https://bücher.example/',
    'https://evilbücher.example/',
    'https://example.com/',
    'https://api.example.com.evil/',
  ]) {
    assert.throws(() => policy.check(new URL(url)), HttpDestinationError, url);
  }
});

test('isNonPublicAddress: private, loopback, link-local, mapped and reserved ranges; public ones pass', () => {
  for (const a of [
    '127.0.0.1',
    '10.1.2.3',
    '172.31.255.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fd00::1',
    'fe80::1',
    '::ffff:7f00:1',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    'ff02::1',
  ]) {
    assert.equal(isNonPublicAddress(a), true, a);
  }
  for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '2a00:1450:4001:80b::200e']) {
    assert.equal(isNonPublicAddress(a), false, a);
  }
});

test('denyPrivateAddresses: IPv4-compatible IPv6 ([::127.0.0.1]) and the rest of the non-global IPv6 space fail permanently', async () => {
  // [::127.0.0.1] is ::7f00:1 (IPv4-compatible, deprecated): it was let through and the
  // connection error retried, when the address is not a public one.
  for (const a of [
    '::7f00:1', // ::127.0.0.1
    '::a00:1', // ::10.0.0.1
    '::808:808', // ::8.8.8.8: a form no host uses, refused whole
    '64:ff9b::a00:1', // NAT64 of 10.0.0.1
    '64:ff9b:1::1', // local-use NAT64
    '2002:7f00:1::1', // 6to4 of 127.0.0.1
    '2001::1', // Teredo
    '100::1', // discard-only
    '100:0:0:1::1', // dummy prefix (RFC 9780)
    '3fff::1', // documentation (RFC 9637)
    '5f00::1', // segment-routing SIDs (RFC 9602)
    '4000::1', // outside 2000::/3: not allocated
    'fec0::1', // site-local
  ]) {
    assert.equal(isNonPublicAddress(a), true, a);
  }
  for (const a of ['2001:4860:4860::8888', '2400:cb00::1', '2600::1', '2620:fe::fe']) {
    assert.equal(isNonPublicAddress(a), false, a);
  }
  await workerOn('deny-compatible', { denyPrivateAddresses: true });
  const before = received;
  for (const url of [`http://[::127.0.0.1]:${port}/`, `http://[::a9fe:a9fe]/latest/meta-data/`]) {
    const { status, attempts, lastError } = await run('deny-compatible', url);
    assert.equal(status, 'failed', url);
    assert.equal(attempts, 1, `${url}: refused once, not retried (${lastError})`);
    assert.match(lastError, /refused: .* is not a public address/, `${url}: ${lastError}`);
  }
  assert.equal(received, before, 'no request reached the server');
});
