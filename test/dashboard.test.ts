/**
 * The dashboard over HTTP: its pages, security (Host check, actions only with
 * --allow-actions, form token and origin), escaping of untrusted values, the job list's
 * filters and paging, the worker panels against views with the ops contract's columns,
 * the operator role being enough, live events, shutdown, many databases, and the
 * `stepping dashboard` bin. The browser test is test/dashboard-browser.test.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';

import { runOperatorCli } from '../src/cli/operator.js';
import { defineStep } from '../src/index.js';
import { start, trackChildren } from './fixtures/processes.js';
import {
  type Answer,
  completeStep,
  dashboard,
  dropWorkerViews,
  failJob,
  fixtureWorkerViews,
  formToken,
  request,
} from './support/dashboard.js';
import { createTestDatabase } from './support/db.js';
import { eventually, setup } from './support/harness.js';
import { loginRole } from './support/login-role.js';

const h = await setup(import.meta.url);
trackChildren();

/** A job of its own step name, failed at its first step with `message`. */
async function failedJob(label: string, message = 'card declined', queue = 'dash'): Promise<string> {
  const name = `dash.${label}`;
  const jobId = await h.stepping.enqueue([{ name, args: {} }], { queue });
  await failJob(h.pool, jobId, name, {
    message,
    name: 'Error',
    stack: `Error: ${message}\n    at charge (pay.js:1:1)`,
  });
  return jobId;
}

async function statusOf(jobId: string): Promise<string> {
  return (await h.stepping.getJob(jobId))!.status;
}

/** POSTs an action form the way the page's button does; `headers` override its headers ('' leaves one out). */
async function postAction(
  base: string,
  jobId: string,
  verb: 'retry' | 'cancel',
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const url = new URL(`jobs/${jobId}/${verb}`, base);
  const all: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    origin: url.origin,
    'sec-fetch-site': 'same-origin',
    ...headers,
  };
  for (const [name, value] of Object.entries(all)) if (value === '') delete all[name];
  return await request(url.href, {
    method: 'POST',
    headers: all,
    body: new URLSearchParams(fields).toString(),
  });
}

test('pages carry a strict CSP with their own nonce and load nothing from elsewhere', async () => {
  const d = await dashboard({ connectionString: h.url });
  await h.stepping.enqueue([{ name: 'dash.csp', args: {} }], { queue: 'csp' });
  for (const path of ['', 'jobs', 'jobs?queue=csp']) {
    const page = await request(new URL(path, d.url).href);
    assert.equal(page.status, 200, page.body);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    const csp = String(page.headers['content-security-policy']);
    const nonce = /script-src 'nonce-([A-Za-z0-9_-]+)'/.exec(csp)?.[1];
    assert.ok(nonce, csp);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    // The page's only script and style are its own, carrying this response's nonce.
    assert.deepEqual(page.body.match(/<script[^>]*>/g), [`<script nonce="${nonce}">`]);
    assert.deepEqual(page.body.match(/<style[^>]*>/g), [`<style nonce="${nonce}">`]);
    assert.doesNotMatch(page.body, /(src|href|action)="(https?:)?\/\//);
    assert.doesNotMatch(page.body, /style="/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['cache-control'], 'no-store');
    assert.equal(page.headers['access-control-allow-origin'], undefined);
    // What the page's script fetches on a live update: the live part alone, no style or script.
    const fragment = await request(new URL(path, d.url).href, { headers: { 'x-stepping-live': '1' } });
    assert.equal(fragment.status, 200);
    assert.doesNotMatch(fragment.body, /<html|<style|<script|<header/);
    assert.match(fragment.body, /^<section class="card"/);
    assert.match(page.body, /<div id="live"><section class="card"/);
  }
});

test('a request naming another host is refused, so a DNS-rebinding page cannot read the dashboard', async () => {
  const d = await dashboard({ connectionString: h.url });
  const port = new URL(d.url).port;
  const asHost = (host: string) => request(d.url, { headers: { host } });
  assert.equal((await asHost(`127.0.0.1:${port}`)).status, 200);
  assert.equal((await asHost(`localhost:${port}`)).status, 200);
  const rebound = await asHost(`evil.example:${port}`);
  assert.equal(rebound.status, 403);
  assert.match(rebound.body, /unexpected Host header/);
  assert.equal(formToken(rebound.body), null);
  assert.equal((await asHost(`127.0.0.1:${Number(port) + 1}`)).status, 403);
  assert.equal((await asHost('127.0.0.1')).status, 403);
});

test('hostile queue names, keys, step names, errors and results are shown as text, never as markup', async () => {
  const hostile = `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'&`;
  const bidi = 'evil\u202Etxt.exe';
  const resultStep = 'dash.hostile-result';
  const failStep = `dash.<b>bold</b>`;
  const jobId = await h.stepping.enqueue(
    [
      { name: resultStep, args: {} },
      { name: failStep, args: {} },
    ],
    { queue: hostile, key: `"><svg onload=window.__pwned=3>${bidi}` },
  );
  await completeStep(h.pool, jobId, resultStep, { html: '</pre><script>window.__pwned=4</script>' });
  await failJob(h.pool, jobId, failStep, { message: `${hostile}\nsecond line`, stack: `${hostile} at x` });
  const d = await dashboard({ connectionString: h.url, allowActions: true });
  const pages = [
    d.url,
    new URL('jobs', d.url).href,
    new URL(`jobs?queue=${encodeURIComponent(hostile)}`, d.url).href,
    new URL(`jobs/${jobId}`, d.url).href,
  ];
  for (const url of pages) {
    const page = await request(url);
    assert.equal(page.status, 200, `${url}: ${page.body}`);
    assert.equal(page.body.match(/<script/g)?.length, 1, url);
    assert.doesNotMatch(page.body, /<img|<svg|<b>|onerror="/, url);
    assert.ok(page.body.includes('&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x'), url);
    assert.ok(page.body.includes('onerror=&quot;window.__pwned=2&quot;&gt;&#39;&amp;'), url);
  }
  const job = await request(new URL(`jobs/${jobId}`, d.url).href);
  assert.ok(job.body.includes('&quot;&gt;&lt;svg onload=window.__pwned=3&gt;evil\\u202etxt.exe'), 'key');
  assert.ok(job.body.includes('dash.&lt;b&gt;bold&lt;/b&gt;'), 'step name');
  assert.ok(job.body.includes('&lt;/pre&gt;&lt;script&gt;window.__pwned=4&lt;/script&gt;'), 'result');
  assert.ok(!job.body.includes('\u202E'), 'bidi override shown as an escape');
});

test('the failing-steps panel counts each step name and names its newest failed job and error', async () => {
  const name = 'dash.panel-newest';
  const ids: string[] = [];
  for (const message of ['first failure', 'second failure', 'newest failure']) {
    const jobId = await h.stepping.enqueue([{ name, args: {} }], { queue: 'dash-panel' });
    await failJob(h.pool, jobId, name, { message, name: 'Error' });
    ids.push(jobId);
  }
  const d = await dashboard({ connectionString: h.url });
  const page = await request(d.url);
  assert.equal(page.status, 200);
  const row = page.body.match(
    new RegExp(`<tr data-step="${name.replace('.', '\\.')}">([\\s\\S]*?)</tr>`),
  )?.[1];
  assert.ok(row, 'a row for the step name');
  assert.match(row, /<td class="n"><a [^>]*>3<\/a><\/td>\s*<td class="n">0<\/td>/, row);
  assert.match(row, /newest failure/, row);
  assert.doesNotMatch(row, /first failure|second failure/, row);
  assert.ok(row.includes(`job ${ids[2]}`), row);
});

test('without --allow-actions there are no buttons and action POSTs are refused with 403', async () => {
  const jobId = await failedJob('readonly');
  const withActions = await dashboard({ connectionString: h.url, allowActions: true });
  const token = formToken((await request(new URL(`jobs/${jobId}`, withActions.url).href)).body);
  assert.ok(token);
  const d = await dashboard({ connectionString: h.url });
  const page = await request(new URL(`jobs/${jobId}`, d.url).href);
  assert.equal(page.status, 200);
  assert.equal(formToken(page.body), null);
  assert.doesNotMatch(page.body, /id="retry"|id="cancel"|method="post"/);
  for (const verb of ['retry', 'cancel'] as const) {
    // Even a valid-looking token does not help: this process has actions off.
    const refused = await postAction(d.url, jobId, verb, { _csrf: token });
    assert.equal(refused.status, 403);
    assert.match(refused.body, /actions are disabled: start the dashboard with --allow-actions/);
  }
  assert.equal(await statusOf(jobId), 'failed');
});

test('actions need the page token, the same origin and a form; then retry and cancel run', async () => {
  const jobId = await failedJob('actions');
  const d = await dashboard({ connectionString: h.url, allowActions: true });
  const page = await request(new URL(`jobs/${jobId}`, d.url).href);
  const token = formToken(page.body);
  assert.ok(token);
  assert.match(page.body, /id="retry"/);
  const refusals: [Record<string, string>, Record<string, string>, number, RegExp][] = [
    [{}, {}, 403, /missing or wrong form token/],
    [{ _csrf: `${token.slice(0, -1)}x` }, {}, 403, /missing or wrong form token/],
    [{ _csrf: token }, { origin: 'http://evil.example' }, 403, /another origin/],
    [{ _csrf: token }, { origin: 'null' }, 403, /another origin/],
    [{ _csrf: token }, { 'sec-fetch-site': 'cross-site' }, 403, /another site/],
    [{ _csrf: token }, { 'content-type': 'text/plain' }, 415, /expected a form/],
    [{ _csrf: token }, { host: `evil.example:${new URL(d.url).port}` }, 403, /unexpected Host header/],
  ];
  for (const [fields, headers, status, message] of refusals) {
    const answer = await postAction(d.url, jobId, 'retry', fields, headers);
    assert.equal(answer.status, status, `${JSON.stringify(headers)}: ${answer.body}`);
    assert.match(answer.body, message);
  }
  assert.equal(await statusOf(jobId), 'failed');
  const big = await postAction(d.url, jobId, 'retry', { _csrf: token, pad: 'x'.repeat(10_000) });
  assert.equal(big.status, 413);
  const viaGet = await request(new URL(`jobs/${jobId}/retry`, d.url).href);
  assert.equal(viaGet.status, 405);
  assert.equal(await statusOf(jobId), 'failed');

  // A client that sends neither Origin nor Sec-Fetch-Site (curl) still needs the token.
  const retried = await postAction(
    d.url,
    jobId,
    'retry',
    { _csrf: token },
    { origin: '', 'sec-fetch-site': '' },
  );
  assert.equal(retried.status, 303, retried.body);
  assert.equal(retried.headers.location, `/jobs/${jobId}?notice=retried`);
  assert.equal(await statusOf(jobId), 'pending');
  const after = await request(new URL(retried.headers.location!, d.url).href);
  assert.match(after.body, /Retried: the job runs again from its failed step\./);

  const again = await postAction(d.url, jobId, 'retry', { _csrf: token });
  assert.equal(again.status, 409);
  assert.match(again.body, /pending/);

  const cancelled = await postAction(d.url, jobId, 'cancel', { _csrf: token, compensate: '1' });
  assert.equal(cancelled.status, 303, cancelled.body);
  assert.equal(cancelled.headers.location, `/jobs/${jobId}?notice=cancelled`);
  assert.equal(await statusOf(jobId), 'cancelled');
  const missing = await postAction(d.url, '999999999', 'cancel', { _csrf: token });
  assert.equal(missing.status, 404);
});

test('the job list filters by status, queue, step, key prefix and age, and pages by job id', async () => {
  const queue = 'dash-list';
  const old: string[] = [];
  for (let i = 1; i <= 5; i++) {
    old.push(
      await h.stepping.enqueue(
        [
          { name: 'dash.list.a', args: {} },
          { name: i % 2 === 0 ? 'dash.list.even' : 'dash.list.odd', args: {} },
        ],
        { queue, key: `order:${i}` },
      ),
    );
  }
  await h.shiftClock('2 hours');
  const fresh = [
    await h.stepping.enqueue([{ name: 'dash.list.a', args: {} }], { queue, key: 'order:10' }),
    await h.stepping.enqueue([{ name: 'dash.list.a', args: {} }], { queue, key: 'invoice:1' }),
  ];
  const d = await dashboard({ connectionString: h.url });
  const ids = async (query: string): Promise<{ ids: string[]; body: string }> => {
    const page = await request(new URL(`jobs?${query}`, d.url).href);
    assert.equal(page.status, 200, `${query}: ${page.body}`);
    return { ids: [...page.body.matchAll(/<tr data-job="(\d+)"/g)].map((m) => m[1]!), body: page.body };
  };
  const all = [...old, ...fresh].reverse();
  assert.deepEqual((await ids(`queue=${queue}`)).ids, all);
  assert.deepEqual((await ids(`queue=${queue}&step=dash.list.even`)).ids, [old[3], old[1]]);
  assert.deepEqual((await ids(`queue=${queue}&key=order:1`)).ids, [fresh[0], old[0]]);
  assert.deepEqual((await ids(`queue=${queue}&min_age=1h`)).ids, [...old].reverse());
  assert.deepEqual((await ids(`queue=${queue}&max_age=1h`)).ids, [...fresh].reverse());
  assert.deepEqual((await ids(`queue=${queue}&status=failed`)).ids, []);
  assert.deepEqual((await ids(`queue=${queue}&status=pending&step=dash.list.odd&min_age=90m`)).ids, [
    old[4],
    old[2],
    old[0],
  ]);

  // Pages of 3, newest first: older →, then ← newer back again, filters kept in the links.
  const first = await ids(`queue=${queue}&limit=3`);
  assert.deepEqual(first.ids, all.slice(0, 3));
  const older = /href="([^"]+)" rel="next"/.exec(first.body)?.[1]?.replace(/&amp;/g, '&');
  assert.equal(older, `/jobs?queue=${queue}&limit=3&before=${all[2]}`);
  const second = await ids(older!.slice('/jobs?'.length));
  assert.deepEqual(second.ids, all.slice(3, 6));
  const third = await ids(/href="([^"]+)" rel="next"/.exec(second.body)![1]!.replace(/&amp;/g, '&').slice(6));
  assert.deepEqual(third.ids, all.slice(6));
  assert.doesNotMatch(third.body, /rel="next"/);
  const back = /href="([^"]+)" rel="prev"/.exec(third.body)![1]!.replace(/&amp;/g, '&');
  assert.equal(back, `/jobs?queue=${queue}&limit=3&after=${all[6]}`);
  assert.deepEqual((await ids(back.slice(6))).ids, all.slice(3, 6));
  // The filter form shows the filter it was reached with.
  assert.match(first.body, new RegExp(`<input\\s+name="queue"\\s+value="${queue}"`));

  // The overview's latest jobs too, newest first by number (ids here run past 9 and 10).
  const overview = await request(d.url);
  const latest = /<table id="latest">([\s\S]*?)<\/table>/.exec(overview.body)?.[1] ?? '';
  const latestIds = [...latest.matchAll(/<tr data-job="(\d+)"/g)].map((m) => Number(m[1]));
  assert.ok(latestIds.some((id) => id >= 10) && latestIds.some((id) => id < 10), latestIds.join());
  assert.deepEqual(
    latestIds,
    [...latestIds].sort((a, b) => b - a),
  );

  for (const [query, message] of [
    ['status=done', /status must be one of pending, running/],
    ['min_age=7', /min_age must be a duration like 30s/],
    ['min_age=2h&max_age=1h', /min_age is larger than max_age/],
    ['limit=0', /limit must be an integer from 1 to 500/],
    ['before=abc', /before must be a job id/],
    ['before=5&after=3', /give before or after, not both/],
    [`queue=${'q'.repeat(101)}`, /queue is longer than 100 characters/],
  ] as const) {
    const page = await request(new URL(`jobs?${query}`, d.url).href);
    assert.equal(page.status, 400, query);
    assert.match(page.body, message, query);
  }
});

test('queue and key filters are exact: leading, trailing and all-blank names are names, not trimmed', async () => {
  // The engine takes any 1 to 100 characters as a queue name (" " included) and any key:
  // the overview's own link to queue " padded " showed "no jobs match" once trimmed.
  const padded = await h.stepping.enqueue([{ name: 'dash.pad', args: {} }], {
    queue: ' padded ',
    key: ' lead-key',
  });
  const bare = await h.stepping.enqueue([{ name: 'dash.pad', args: {} }], {
    queue: 'padded',
    key: 'lead-key',
  });
  const blank = await h.stepping.enqueue([{ name: 'dash.pad', args: {} }], { queue: ' ' });
  const d = await dashboard({ connectionString: h.url });
  const ids = async (path: string): Promise<{ ids: string[]; body: string }> => {
    const page = await request(new URL(path, d.url).href);
    assert.equal(page.status, 200, `${path}: ${page.body}`);
    return { ids: [...page.body.matchAll(/<tr data-job="(\d+)"/g)].map((m) => m[1]!), body: page.body };
  };
  // Follow the overview's links for the padded and the blank queue.
  const overview = await request(d.url);
  for (const [queue, jobId] of [
    [' padded ', padded],
    [' ', blank],
  ] as const) {
    const row = new RegExp(`<tr data-queue="${queue}">([\\s\\S]*?)</tr>`).exec(overview.body)?.[1] ?? '';
    const links = [...row.matchAll(/href="([^"]+)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&'));
    assert.ok(links.length >= 2, `links of queue ${JSON.stringify(queue)}: ${row}`);
    for (const link of links) assert.deepEqual((await ids(link.slice(1))).ids, [jobId], link);
  }
  assert.deepEqual((await ids('jobs?queue=padded')).ids, [bare]);
  // A key prefix with a leading space, kept in the pager's links and in the form.
  assert.deepEqual((await ids('jobs?key=%20lead')).ids, [padded]);
  assert.deepEqual((await ids('jobs?key=lead')).ids, [bare]);
  const paged = await ids('jobs?key=%20lead&limit=1&queue=%20padded%20');
  assert.deepEqual(paged.ids, [padded]);
  assert.match(paged.body, /<input\s+name="key"\s+value=" lead"/);
  // An empty field (a form submitted blank) is no filter.
  assert.ok((await ids('jobs?queue=&key=&step=')).ids.includes(bare));
});

test('unknown pages and jobs are 404, wrong methods 405, a taken port or bad options are errors, an unmigrated schema says so', async () => {
  const d = await dashboard({ connectionString: h.url });
  for (const path of ['nope', 'jobs/0', 'jobs/abc', 'jobs/999999999', 'jobs/1/frob', 'db/x/']) {
    const page = await request(new URL(path, d.url).href);
    assert.equal(page.status, 404, path);
  }
  assert.equal((await request(d.url, { method: 'POST' })).status, 405);
  assert.equal((await request(d.url, { method: 'DELETE' })).status, 405);
  const head = await request(d.url, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  await assert.rejects(
    dashboard({ connectionString: h.url, port: Number(new URL(d.url).port) }),
    (error: Error) =>
      error.name === 'DashboardListenError' &&
      /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/.test(error.message),
  );
  await assert.rejects(
    dashboard({ connectionString: h.url, port: 70_000 }),
    /port must be an integer from 0 to 65535/,
  );
  await assert.rejects(
    dashboard({ connectionString: h.url, databases: [h.url] }),
    /either connectionString \(one database\) or databases \(many\)/,
  );
  const unmigrated = await dashboard({ connectionString: h.url, schema: 'dash_nowhere' });
  const page = await request(unmigrated.url);
  assert.equal(page.status, 503);
  assert.match(page.body, /stepping migrate/);
  // A database that refuses the login or does not exist is unavailable (503), not a bug (500).
  const elsewhere = (change: (u: URL) => void) => {
    const u = new URL(h.url);
    change(u);
    return u.href;
  };
  for (const [what, url] of [
    ['an unknown role (28000)', elsewhere((u) => (u.username = 'dash_no_such_role'))],
    ['an unknown database (3D000)', elsewhere((u) => (u.pathname = '/dash_no_such_database'))],
  ] as const) {
    const refused = await dashboard({ connectionString: url });
    const answer = await request(refused.url);
    assert.equal(answer.status, 503, `${what}: ${answer.body.slice(0, 300)}`);
  }
});

test('the front page shows live workers and the step names no live worker can run, from the real views', async (t) => {
  const step = defineStep('dash.live', async () => {});
  await h.worker({ steps: [step], queues: ['dash-live-q'], workerId: 'dash-live-w', concurrency: 4 }, t);
  await h.stepping.enqueue([{ name: 'dash.nobody', args: {} }], { queue: 'dash-live-q' });
  // The worker's step name, but in a queue it does not serve.
  await h.stepping.enqueue([{ name: 'dash.live', args: {} }], { queue: 'dash-other-q' });
  const d = await dashboard({ connectionString: h.url });
  const page = await request(d.url);
  assert.equal(page.status, 200, page.body);
  const workers = /<section class="card" id="workers">([\s\S]*?)<\/section>/.exec(page.body)?.[1] ?? '';
  assert.match(workers, /<h2>Live workers<\/h2>/);
  const row = /<tr class="" data-worker="dash-live-w">([\s\S]*?)<\/tr>/.exec(workers)?.[1] ?? '';
  assert.match(row, /<code>dash-live-q<\/code>/);
  assert.match(row, /<code>dash\.live<\/code>/);
  assert.match(row, /<td class="n">4<\/td>/);
  assert.match(row, /live/);
  const unrunnable = /<section class="card" id="unrunnable">([\s\S]*?)<\/section>/.exec(page.body)?.[1] ?? '';
  assert.match(unrunnable, /<h2>Step names no live worker can run<\/h2>/);
  assert.match(
    unrunnable,
    /<tr data-step="dash\.nobody">\s*<td class="mono">dash\.nobody<\/td>\s*<td>dash-live-q<\/td>/,
  );
  assert.match(
    unrunnable,
    /<tr data-step="dash\.live">\s*<td class="mono">dash\.live<\/td>\s*<td>dash-other-q<\/td>/,
  );
  assert.doesNotMatch(page.body, /not available/);
  await h.pool.query(
    `SELECT stepping.job_cancel(job_id) FROM stepping.job_overview WHERE queue IN ('dash-live-q', 'dash-other-q') AND status = 'pending'`,
  );
});

test('a worker registering 10,000 long step names cannot make the front page huge', async () => {
  // Five registrations at the limits (10,000 names of 200 characters each, 2 MB a row):
  // the page shows the first names and counts the rest.
  for (let i = 0; i < 5; i++) {
    await h.pool.query(
      `SELECT stepping.worker_register($1, 'rogue-host', 1, NULL,
         ARRAY(SELECT lpad(g::text, 200, 'n') FROM generate_series(1, 10000) g), 1, 10000)`,
      [`dash-rogue-${i}`],
    );
  }
  try {
    const d = await dashboard({ connectionString: h.url });
    const page = await request(d.url);
    assert.equal(page.status, 200);
    assert.ok(page.body.length < 1_000_000, `the page is ${page.body.length} characters`);
    const row = /<tr class="" data-worker="dash-rogue-0">([\s\S]*?)<\/tr>/.exec(page.body)?.[1] ?? '';
    assert.match(row, /<summary>and 9994 more<\/summary>/);
    assert.match(row, /and 9950 not shown \(worker_overview lists them\)/);
    assert.equal(row.match(/<code>/g)?.length, 50);
  } finally {
    await h.pool.query(`DELETE FROM stepping.workers WHERE id LIKE 'dash-rogue-%'`);
  }
});

test('a producer making thousands of queues cannot make the front page huge; absurd ages are a 400', async () => {
  // 2,000 queues of 100 characters, one job each: the page shows the 200 with the most
  // runnable jobs and counts the rest.
  await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 2000 }, (_, i) => ({
      steps: [{ name: 'dash.many.q' }],
      options: {
        queue: `dash-many-${String(i).padStart(4, '0')}-`.padEnd(100, 'q'),
        runAt: new Date(Date.now() + 3_600_000),
      },
    })),
  );
  const busy = await h.stepping.enqueue([{ name: 'dash.many.q' }], { queue: 'dash-many-busy' });
  try {
    const d = await dashboard({ connectionString: h.url });
    const page = await request(d.url);
    assert.equal(page.status, 200);
    const shown = page.body.match(/<tr data-queue="/g)?.length ?? 0;
    assert.equal(shown, 200);
    assert.match(page.body, /data-queue="dash-many-busy"/, 'a queue with runnable jobs is among those shown');
    assert.match(page.body, /and \d+ more queues/);
    for (const age of ['999999999999d', '3000000d']) {
      const list = await request(`${d.url}jobs?min_age=${age}`);
      assert.equal(list.status, 400, age);
      assert.match(list.body, /min_age/);
    }
  } finally {
    await h.pool.query(
      `SELECT stepping.job_cancel(job_id) FROM stepping.job_overview WHERE queue LIKE 'dash-many-%' AND status = 'pending'`,
    );
    await h.stepping.cancel(busy).catch(() => {});
  }
});

test('workers and unrunnable steps: "not available" without the views, rows from views with the contract columns', async () => {
  await dropWorkerViews(h.pool);
  const d = await dashboard({ connectionString: h.url });
  const before = await request(d.url);
  assert.equal(before.status, 200);
  assert.equal(before.body.match(/not available \(migrate to a newer version\)/g)?.length, 2);

  const drop = await fixtureWorkerViews(
    h.pool,
    [
      {
        workerId: 'host-a:101:abcd',
        host: 'host-a',
        pid: 101,
        queues: null,
        stepNames: ['dash.one', 'dash.two'],
        concurrency: 20,
        startedAgo: '2 hours',
        heartbeatAgo: '3 seconds',
        alive: true,
        running: 7,
      },
      {
        workerId: '<b>w2</b>',
        host: 'host-b',
        pid: 202,
        queues: ['emails'],
        stepNames: Array.from({ length: 9 }, (_, i) => `mail.step${i}`),
        concurrency: 5,
        startedAgo: '1 day',
        heartbeatAgo: '10 minutes',
        alive: false,
        running: 0,
      },
    ],
    [{ stepName: '<i>nobody</i>.step', queue: 'default', jobs: 3, oldestAge: '5 minutes' }],
  );
  try {
    // The fixture is the contract: same names and types, in order (columns are only ever added at the end).
    const { rows } = await h.pool.query(
      `SELECT c.relname, string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) AS columns
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.oid IN ('stepping.worker_overview'::regclass, 'stepping.unrunnable_steps'::regclass) AND a.attnum > 0
       GROUP BY c.relname ORDER BY c.relname`,
    );
    assert.deepEqual(rows, [
      {
        relname: 'unrunnable_steps',
        columns: 'step_name text, queue text, jobs bigint, oldest_age interval',
      },
      {
        relname: 'worker_overview',
        columns:
          'worker_id text, host text, pid integer, queues text[], step_names text[], concurrency integer, ' +
          'started_at timestamp with time zone, heartbeat_at timestamp with time zone, alive boolean, running integer',
      },
    ]);
    const page = await request(d.url);
    assert.equal(page.status, 200);
    assert.doesNotMatch(page.body, /not available/);
    assert.match(page.body, /1 live, 1 gone/);
    const live = /<tr class="" data-worker="host-a:101:abcd">([\s\S]*?)<\/tr>/.exec(page.body)?.[1] ?? '';
    assert.match(live, /every queue/);
    assert.match(live, /<code>dash\.one<\/code>, <code>dash\.two<\/code>/);
    assert.match(live, /<td class="n">7<\/td>/);
    // Ages count from the engine's clock read just before the view's: a few ms apart.
    assert.match(live, /(2\.\d|3)s ago/);
    assert.match(live, /live/);
    const gone =
      /<tr class="dead" data-worker="&lt;b&gt;w2&lt;\/b&gt;">([\s\S]*?)<\/tr>/.exec(page.body)?.[1] ?? '';
    assert.match(gone, /<code>emails<\/code>/);
    assert.match(gone, /and 3 more/);
    assert.match(gone, /(9m 59s|10m) ago/);
    assert.match(gone, /gone/);
    const unrunnable =
      /<section class="card" id="unrunnable">([\s\S]*?)<\/section>/.exec(page.body)?.[1] ?? '';
    assert.match(unrunnable, /&lt;i&gt;nobody&lt;\/i&gt;\.step/);
    assert.match(
      unrunnable,
      /step=%3Ci%3Enobody%3C%2Fi%3E.step&amp;queue=default&amp;status=pending"\s*>3<\/a/,
    );
    assert.match(unrunnable, /5m/);
  } finally {
    await drop();
  }
  const after = await request(d.url);
  assert.equal(after.body.match(/not available/g)?.length, 2);
});

test('the operator role is enough: pages, the worker views granted to it, retry', async () => {
  const jobId = await failedJob('operator');
  const url = await loginRole(h.url, ['stepping_operator'], 'dash');
  const d = await dashboard({ connectionString: url, allowActions: true });
  const drop = await fixtureWorkerViews(
    h.pool,
    [
      {
        workerId: 'w-op',
        host: 'h',
        pid: 1,
        queues: null,
        stepNames: ['dash.operator'],
        concurrency: 1,
        startedAgo: '1 minute',
        heartbeatAgo: '1 second',
        alive: true,
        running: 0,
      },
    ],
    [],
  );
  try {
    // Not granted yet: that panel says so, the page still works.
    const ungranted = await request(d.url);
    assert.equal(ungranted.status, 200, ungranted.body);
    assert.match(ungranted.body, /could not read this: permission denied for view worker_overview/);
    await h.pool.query(
      `GRANT SELECT ON stepping.worker_overview, stepping.unrunnable_steps TO stepping_operator`,
    );
    const overview = await request(d.url);
    assert.equal(overview.status, 200, overview.body);
    assert.match(overview.body, /data-worker="w-op"/);
    assert.match(overview.body, /every waiting step has a live worker/);
    assert.match(overview.body, new RegExp(`<tr data-job="${jobId}">`));
    const list = await request(new URL('jobs?status=failed', d.url).href);
    assert.equal(list.status, 200, list.body);
    assert.match(list.body, new RegExp(`data-job="${jobId}"`));
    const page = await request(new URL(`jobs/${jobId}`, d.url).href);
    assert.equal(page.status, 200, page.body);
    const retried = await postAction(d.url, jobId, 'retry', { _csrf: formToken(page.body)! });
    assert.equal(retried.status, 303, retried.body);
    assert.equal(await statusOf(jobId), 'pending');
  } finally {
    // Before the role is dropped: no session of it may remain.
    await d.close();
    await drop();
  }
});

/** Reads a server-sent event stream; `until` waits for text in it. */
function openStream(url: string): {
  until(pattern: RegExp): Promise<void>;
  ended: Promise<void>;
  close(): void;
} {
  let text = '';
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  let req!: http.ClientRequest;
  const ended = new Promise<void>((resolve, reject) => {
    req = http.get(url, { agent: false }, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        for (const w of [...waiters]) {
          if (w.pattern.test(text)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      });
      res.on('end', resolve);
      res.on('close', resolve);
    });
    req.on('error', reject);
  });
  return {
    until: (pattern) =>
      pattern.test(text) ? Promise.resolve() : new Promise((resolve) => waiters.push({ pattern, resolve })),
    ended,
    close: () => req.destroy(),
  };
}

test('live: a NOTIFY from the database becomes a change event; close() ends the streams and the server', async () => {
  // A poll too slow to matter: the event must come from the NOTIFY.
  const d = await dashboard({ connectionString: h.url, live: { pollMs: 3_600_000, minIntervalMs: 50 } });
  const stream = openStream(new URL('events', d.url).href);
  await stream.until(/: connected\n\n/);
  // The LISTEN is set up as the first stream opens; enqueue until one of its NOTIFYs arrives.
  await eventually(
    async () => {
      await h.stepping.enqueue([{ name: 'dash.live', args: {} }], { queue: 'live' });
      return await Promise.race([
        stream.until(/event: change\ndata: notify\n\n/).then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 500)),
      ]);
    },
    60_000,
    'a change event after a NOTIFY',
  );
  const idle = await request(d.url);
  assert.equal(idle.status, 200);
  await d.close();
  await stream.ended;
  await assert.rejects(request(d.url), /ECONNREFUSED/);
  await d.close();
});

test('many databases: a picker with each database state; pages under /db/<id>/; /go switches', async () => {
  const second = await createTestDatabase('dash_second');
  const empty = await createTestDatabase('dash_empty', { empty: true });
  const jobId = await failedJob('many');
  const d = await dashboard({
    databases: [
      { id: 'main', connectionString: h.url },
      { id: 'second <b>', connectionString: second.url },
      { id: 'empty', connectionString: empty.url },
      { id: 'down', connectionString: 'postgres://nobody@127.0.0.1:1/none' },
    ],
    allowActions: true,
  });
  const picker = await request(d.url);
  assert.equal(picker.status, 200, picker.body);
  const line = (id: string) =>
    new RegExp(`<tr data-database="${id}">([\\s\\S]*?)</tr>`).exec(picker.body)?.[1] ?? `no line ${id}`;
  assert.match(line('main'), /<a href="\/db\/main\/">main<\/a>[\s\S]*>ok</);
  assert.match(line('main'), /<td class="n">[1-9]\d*<\/td>\s*<td class="n">\d+<\/td>\s*<td class="n">[1-9]/);
  assert.match(line('second &lt;b&gt;'), /<a href="\/db\/second%20%3Cb%3E\/">second &lt;b&gt;<\/a>/);
  assert.match(line('empty'), /not migrated[\s\S]*run stepping migrate/);
  assert.match(line('down'), />down<[\s\S]*ECONNREFUSED/);
  // The switcher lists every database.
  assert.equal(picker.body.match(/<option value="(main|second &lt;b&gt;|empty|down)"/g)?.length, 4);

  const go = await request(new URL('go?db=second%20%3Cb%3E', d.url).href);
  assert.equal(go.status, 303);
  assert.equal(go.headers.location, '/db/second%20%3Cb%3E/');
  const secondPage = await request(new URL(go.headers.location!, d.url).href);
  assert.equal(secondPage.status, 200, secondPage.body);
  assert.match(secondPage.body, /<p class="empty">no jobs yet<\/p>/);
  assert.match(secondPage.body, /data-events="\/db\/second%20%3Cb%3E\/events"/);
  const mainJob = await request(new URL(`db/main/jobs/${jobId}`, d.url).href);
  assert.equal(mainJob.status, 200);
  assert.match(mainJob.body, /action="\/db\/main\/jobs\/\d+\/retry"/);
  const retried = await postAction(new URL('db/main/', d.url).href, jobId, 'retry', {
    _csrf: formToken(mainJob.body)!,
  });
  assert.equal(retried.status, 303, retried.body);
  assert.equal(retried.headers.location, `/db/main/jobs/${jobId}?notice=retried`);
  assert.equal(await statusOf(jobId), 'pending');
  assert.equal((await request(new URL(`db/second%20%3Cb%3E/jobs/${jobId}`, d.url).href)).status, 404);
  assert.equal((await request(new URL('db/nope/', d.url).href)).status, 404);
  assert.equal((await request(new URL('go?db=nope', d.url).href)).status, 404);
  assert.equal((await request(new URL('db/down/', d.url).href)).status, 503);
  assert.equal((await request(new URL('?page=2', d.url).href)).status, 400);
});

test('many databases: all pages together hold at most maxConnections connections; a page waits for one', async () => {
  // Ten tenants: ids over one database of this test's own, so the server's view counts the
  // dashboard's connections together and no other test's.
  const own = await createTestDatabase('dash_budget');
  const databases = Array.from({ length: 10 }, (_, i) => ({ id: `t${i}`, connectionString: own.url }));
  const d = await dashboard({ databases, maxConnections: 2 });
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { rows } = await h.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity
         WHERE application_name = 'stepping-dashboard' AND datname = $1`,
        [own.name],
      );
      peak = Math.max(peak, rows[0]!.n);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    // The picker asks 8 databases at once; five tenant pages run several queries each.
    const pages = await Promise.all([
      request(d.url),
      ...databases.slice(0, 5).map((t) => request(new URL(`db/${t.id}/`, d.url).href)),
    ]);
    for (const page of pages) assert.equal(page.status, 200, page.body);
    assert.equal(pages[0]!.body.match(/<tr data-database="t\d">/g)?.length, 10);
  } finally {
    sampling = false;
    await sampler;
  }
  assert.ok(peak >= 1, 'the sampler saw the dashboard connected');
  assert.ok(peak <= 2, `the dashboard held ${peak} connections at once, over maxConnections 2`);
});

test('stepping dashboard: usage errors exit 2; the bin serves, refuses actions unless allowed, stops on SIGTERM', async () => {
  const io = { stdout: () => {}, stderr: (t: string) => (stderr += t) };
  let stderr = '';
  for (const [args, message] of [
    [['dashboard', '--port', '70000'], /--port must be an integer from 0 to 65535/],
    [['dashboard', '--host', ''], /--host must name a host or an address/],
    [['jobs', '--allow-actions'], /jobs does not take --allow-actions/],
    [['status', '--port', '1'], /status does not take --port/],
    [['dashboard', 'extra'], /usage: stepping dashboard/],
    [['dashboard', '--max-connections', '3'], /--max-connections works with --databases/],
    [
      ['dashboard', '--databases', `main=${h.url}`, '--max-connections', '0'],
      /--max-connections must be an integer from 1/,
    ],
    [
      ['jobs', '--databases', `main=${h.url}`, '--max-connections', '3'],
      /jobs does not take --max-connections/,
    ],
  ] as const) {
    stderr = '';
    assert.equal(await runOperatorCli([...args], io, { DATABASE_URL: h.url }), 2, args.join(' '));
    assert.match(stderr, message);
  }
  stderr = '';
  assert.equal(await runOperatorCli(['dashboard'], io, {}), 2);
  assert.match(stderr, /no database: pass --database-url or --databases/);

  const jobId = await failedJob('bin');
  const single = start('src/cli/stepping.ts', ['dashboard', '--port', '0'], { DATABASE_URL: h.url });
  const many = start(
    'src/cli/stepping.ts',
    ['dashboard', '--port', '0', '--allow-actions', '--databases', `main=${h.url}`, '--max-connections', '2'],
    { DATABASE_URL: undefined },
  );
  const urlOf = async (p: typeof single): Promise<string> =>
    (await eventually(
      () => /^stepping dashboard on (http:\/\/127\.0\.0\.1:\d+\/) /m.exec(p.stdout())?.[1],
      120_000,
      `the dashboard's address (stderr: ${p.stderr()})`,
    ))!;
  const [singleUrl, manyUrl] = await Promise.all([urlOf(single), urlOf(many)]);
  assert.match(single.stdout(), /\(read-only\)/);
  assert.match(many.stdout(), /\(retry and cancel allowed\)/);

  const page = await request(new URL(`jobs/${jobId}`, singleUrl).href);
  assert.equal(page.status, 200);
  assert.equal((await postAction(singleUrl, jobId, 'retry', { _csrf: 'x' })).status, 403);
  const manyPage = await request(new URL(`db/main/jobs/${jobId}`, manyUrl).href);
  assert.equal(manyPage.status, 200);
  const retried = await postAction(new URL('db/main/', manyUrl).href, jobId, 'retry', {
    _csrf: formToken(manyPage.body)!,
  });
  assert.equal(retried.status, 303, retried.body);
  assert.equal(await statusOf(jobId), 'pending');
  assert.match(many.stderr(), new RegExp(`retry job ${jobId} in main: retried`));

  // Graceful stop with a live page open: the stream ends and the process exits 0.
  const stream = openStream(new URL('events', singleUrl).href);
  await stream.until(/: connected/);
  single.child.kill('SIGTERM');
  many.child.kill('SIGINT');
  const [singleEnd, manyEnd] = await Promise.all([single.exited, many.exited]);
  await stream.ended;
  assert.equal(singleEnd.code, 0, singleEnd.stderr);
  assert.equal(manyEnd.code, 0, manyEnd.stderr);
  assert.match(singleEnd.stderr, /SIGTERM, stopping/);
});
