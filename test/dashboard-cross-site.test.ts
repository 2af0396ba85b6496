/**
 * The dashboard against other web pages in the operator's browser and against odd request
 * targets, over HTTP with the headers Chromium sends (test/dashboard-browser.test.ts drives
 * a real one): a page of another site cannot make the dashboard do work or open database
 * connections through subresource requests (event streams, fetch, images, frames), while a
 * link from it still opens the dashboard; a request target that a browser's URL parser
 * reads as another host is not a page; a notice name from the URL never shows anything but
 * the fixed notices.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';

import { type Answer, dashboard, failJob, formToken, request } from './support/dashboard.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** A GET with this exact request target (node:http sends it as it is, `//` and `\` included). */
async function rawGet(base: string, target: string, headers: Record<string, string> = {}): Promise<Answer> {
  const u = new URL(base);
  return await new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: target, method: 'GET', headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        // An event stream never ends by itself: its headers are the answer.
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          req.destroy();
          return;
        }
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The Fetch Metadata headers Chromium sends for a request of this kind from a page at `origin`. */
function fromPage(
  site: 'cross-site' | 'same-site' | 'same-origin',
  mode: 'cors' | 'no-cors' | 'navigate',
  dest: string,
  origin = 'http://localhost:9',
): Record<string, string> {
  return {
    'sec-fetch-site': site,
    'sec-fetch-mode': mode,
    'sec-fetch-dest': dest,
    ...(mode === 'cors' ? { origin } : {}),
  };
}

test(
  'a page of another site cannot open event streams or load pages from the dashboard; a link from it still opens it',
  { timeout: 120_000 },
  async () => {
    const jobId = await h.stepping.enqueue([{ name: 'cross.site', args: {} }], { queue: 'cross' });
    const single = await dashboard({ connectionString: h.url });
    const many = await dashboard({ databases: [{ id: 'main', connectionString: h.url }] });
    const refused: [string, string, Record<string, string>][] = [
      // new EventSource(url): each would hold a stream (and open the database's LISTEN connection).
      [single.url, '/events', fromPage('cross-site', 'cors', 'empty')],
      [many.url, '/db/main/events', fromPage('cross-site', 'cors', 'empty')],
      // fetch(url, { mode: 'no-cors' }): a page read (queue_stats counts every job) per call.
      [single.url, '/', fromPage('cross-site', 'no-cors', 'empty')],
      [single.url, `/jobs?key=order%3A`, fromPage('cross-site', 'no-cors', 'empty')],
      [many.url, '/', fromPage('cross-site', 'no-cors', 'empty')],
      // <img src>, <script src>: the same, and a status that tells whether a job exists.
      [single.url, `/jobs/${jobId}`, fromPage('cross-site', 'no-cors', 'image')],
      [single.url, `/jobs/${jobId}`, fromPage('cross-site', 'no-cors', 'script')],
      // <iframe src>: never shown (frame-ancestors), but answered.
      [single.url, '/', fromPage('cross-site', 'navigate', 'iframe')],
      // Another port of the same host is another origin too.
      [single.url, '/events', fromPage('same-site', 'cors', 'empty', 'http://127.0.0.1:9')],
      [single.url, '/jobs', fromPage('same-site', 'no-cors', 'empty', 'http://127.0.0.1:9')],
    ];
    for (const [base, target, headers] of refused) {
      const answer = await rawGet(base, target, headers);
      const what = `${target} ${JSON.stringify(headers)}`;
      assert.equal(answer.status, 403, `${what}: ${answer.body.slice(0, 300)}`);
      assert.equal(answer.headers['content-type'], 'text/html; charset=utf-8', what);
      assert.match(answer.body, /another site/, what);
      assert.doesNotMatch(answer.body, /cross\.site/, what);
    }

    const allowed: [string, string, Record<string, string>][] = [
      // A link on another site (or a bookmark, or a typed address) opens any page.
      [
        single.url,
        `/jobs/${jobId}`,
        { ...fromPage('cross-site', 'navigate', 'document'), 'sec-fetch-user': '?1' },
      ],
      [many.url, '/db/main/jobs', fromPage('same-site', 'navigate', 'document')],
      [
        single.url,
        '/',
        { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
      ],
      // The dashboard's own page script: its event stream and its live refreshes.
      [single.url, '/events', fromPage('same-origin', 'cors', 'empty', new URL(single.url).origin)],
      [single.url, '/jobs', { ...fromPage('same-origin', 'cors', 'empty'), 'x-stepping-live': '1' }],
      // Clients that send no Fetch Metadata (curl, older browsers).
      [single.url, '/', {}],
    ];
    for (const [base, target, headers] of allowed) {
      const answer = await rawGet(base, target, headers);
      assert.equal(answer.status, 200, `${target} ${JSON.stringify(headers)}: ${answer.body.slice(0, 300)}`);
    }
  },
);

test(
  'a request target a browser reads as another host (//host/..., /\\host/...) is not a page',
  { timeout: 60_000 },
  async () => {
    await h.stepping.enqueue([{ name: 'cross.target', args: {} }], { queue: 'target' });
    const single = await dashboard({ connectionString: h.url });
    const many = await dashboard({ databases: [{ id: 'main', connectionString: h.url }] });
    // Served, such a page's script would fetch its live part from `location.pathname`, which
    // the browser resolves against the other host, and put that answer into the page.
    for (const [base, target] of [
      [single.url, '//evil.example/jobs'],
      [single.url, '//evil.example/'],
      [single.url, '/\\evil.example/jobs'],
      [single.url, `//127.0.0.1:${new URL(single.url).port}/jobs`],
      [many.url, '//evil.example/'],
      [many.url, '//evil.example/db/main/jobs'],
    ] as const) {
      const answer = await rawGet(base, target);
      assert.equal(answer.status, 404, `${target}: ${answer.body.slice(0, 300)}`);
      assert.doesNotMatch(answer.body, /data-events=/, target);
    }
    assert.equal((await rawGet(single.url, '/jobs?queue=target')).status, 200);
    assert.equal((await rawGet(many.url, '/db/main/jobs')).status, 200);
  },
);

test(
  'the notice on a job page is one of the fixed ones, whatever the URL names',
  { timeout: 60_000 },
  async () => {
    const name = 'cross.notice';
    const jobId = await h.stepping.enqueue([{ name, args: {} }], { queue: 'notice' });
    await failJob(h.pool, jobId, name, { message: 'declined', name: 'Error' });
    const d = await dashboard({ connectionString: h.url, allowActions: true });
    for (const notice of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'nope']) {
      const page = await request(new URL(`jobs/${jobId}?notice=${notice}`, d.url).href);
      assert.equal(page.status, 200, notice);
      assert.equal(/<div class="notice"[^<]*/.exec(page.body)?.[0], undefined, notice);
    }
    const page = await request(new URL(`jobs/${jobId}?notice=retried`, d.url).href);
    assert.match(
      page.body,
      /<div class="notice" role="status">Retried: the job runs again from its failed step\.<\/div>/,
    );
    assert.ok(formToken(page.body));
  },
);
