/**
 * The dashboard end to end in headless Chromium (Debian's package, driven by
 * playwright-core): a worker runs a job whose card charge fails on its first run; the
 * page lists the failed job, opens it, the retry button is pressed, and the page updates
 * by itself as the worker completes the job. The overview is saved as a screenshot: to
 * docs/dashboard.png (the README shows it) with STEPPING_SCREENSHOT=1, else to a temporary
 * file, so a test run leaves the checkout as it was. Then hostile values in another database, reached through the
 * many-databases picker, stay text and run no script. Every wait is on page content.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import pg from 'pg';

import { createStepping, defineStep } from '../src/index.js';
import { sourceRoot } from './fixtures/processes.js';
import { launchChromium, type WatchedPage, watchedPage } from './support/browser.js';
import { dashboard, failJob } from './support/dashboard.js';
import { createTestDatabase } from './support/db.js';
import { deferred, eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
const browser = await launchChromium();
after(async () => {
  await browser.close();
});

/** Nothing went wrong on the page: no script or CSP error, no request elsewhere, no dialog. */
function assertClean(w: WatchedPage): void {
  assert.deepEqual(w.errors, [], 'script or console errors');
  assert.deepEqual(w.outside, [], 'requests to other hosts');
  assert.deepEqual(w.dialogs, [], 'dialogs');
}

test('in a browser: a failed job in the list, its page, retry, and the page updates as it succeeds', async () => {
  // The card charge fails on its first run; the rerun waits until the test lets it finish,
  // so the page is seen before the job succeeds and must update by itself.
  const chargeRuns = new Map<string, number>();
  const releaseCharge = deferred();
  const reserve = defineStep('orders.reserve-stock', async (args: { order: string }) => ({
    reservation: `r-${args.order}`,
  }));
  const charge = defineStep(
    'orders.charge-card',
    async (args: { order: string; cents: number }) => {
      const run = (chargeRuns.get(args.order) ?? 0) + 1;
      chargeRuns.set(args.order, run);
      if (run === 1) throw new Error('card network timeout (simulated)');
      await releaseCharge.promise;
      return { chargeId: `ch_${args.order}`, cents: args.cents };
    },
    { maxAttempts: 1 },
  );
  const receipt = defineStep('orders.send-receipt', async (args: { order: string }) => ({
    sentTo: `${args.order}@example.com`,
  }));
  const mail = defineStep('mail.send', async (args: { to: string }) => ({ to: args.to }));
  const report = defineStep(
    'reports.build',
    async () => {
      throw new Error('upstream answered 503');
    },
    { backoff: { baseMs: 3_600_000, maxMs: 3_600_000 } },
  );
  await h.worker({ steps: [reserve, charge, receipt, mail, report], concurrency: 4 });

  // Other work, so the overview has something to show: mails sent, a report retrying, an order scheduled.
  const mails = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 6 }, (_, i) => ({
      steps: [mail({ to: `user${i}@example.com` })],
      options: { queue: 'emails' },
    })),
  );
  const reportJob = await h.stepping.enqueue([report({})], { queue: 'reports' });
  const scheduled = await h.stepping.enqueue([reserve({ order: 'A-1002' })], {
    queue: 'orders',
    delayMs: 3_600_000,
  });
  const order = { order: 'A-1001', cents: 4999 };
  const jobId = await h.stepping.enqueue([reserve(order), charge(order), receipt(order)], {
    queue: 'orders',
    key: 'order:A-1001',
  });
  assert.equal((await h.stepping.waitForJob(jobId, { timeoutMs: 120_000 })).status, 'failed');
  for (const m of mails) await h.stepping.waitForJob(m.jobId, { timeoutMs: 120_000 });
  await eventually(
    async () => (await h.stepping.getJob(reportJob))?.currentAttempt === 1,
    120_000,
    'the report job to wait for its retry',
  );

  const d = await dashboard({ connectionString: h.url, allowActions: true });
  const w = await watchedPage(browser, new URL(d.url).host);
  const page = w.page;
  try {
    await page.goto(d.url);
    await page.locator(`#recent-failures tr[data-job="${jobId}"]`).waitFor();
    await page.locator('#live-state.on').waitFor();

    // The job list, filtered to failed jobs from the form, shows it; its link opens its page.
    await page.click('header a:text-is("Jobs")');
    await page.selectOption('select[name="status"]', 'failed');
    await page.click('form.filters button[type="submit"]');
    const row = page.locator(`#jobs tr[data-job="${jobId}"][data-job-status="failed"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /orders\s+failed\s+#1 orders\.charge-card/);
    assert.match(await row.innerText(), /card network timeout \(simulated\)/);
    await row.locator('a').first().click();

    const job = page.locator(`#job[data-job="${jobId}"]`);
    await page.locator(`#job[data-job="${jobId}"][data-job-status="failed"]`).waitFor();
    const step = (i: number) => page.locator(`#steps li[data-step-index="${i}"]`);
    assert.equal(await step(0).getAttribute('data-step-status'), 'succeeded');
    assert.equal(await step(1).getAttribute('data-step-status'), 'failed');
    assert.equal(await step(2).getAttribute('data-step-status'), 'skipped');
    assert.equal(await step(1).locator('[data-error]').innerText(), 'card network timeout (simulated)');
    assert.match(
      await step(0).locator('[data-result]').textContent().then(String),
      /"reservation": "r-A-1001"/,
    );

    await page.click('#retry');
    await page.locator('.notice:text("Retried")').waitFor();
    // Opened by the operator: stays open across live updates.
    await step(1).locator('details[data-key="e1"] summary').click();
    const retried = await job.getAttribute('data-job-status');
    assert.ok(retried === 'pending' || retried === 'running', `after retry: ${retried}`);
    const refreshes = Number((await page.locator('#live').getAttribute('data-refreshed')) ?? 0);

    // The worker finishes the job; the open page shows it without being reloaded.
    releaseCharge.resolve();
    await page.locator(`#job[data-job="${jobId}"][data-job-status="succeeded"]`).waitFor();
    assert.ok(Number(await page.locator('#live').getAttribute('data-refreshed')) > refreshes);
    assert.equal(await page.locator('.notice').count(), 1, 'the page was updated in place, not reloaded');
    assert.equal(await step(1).getAttribute('data-step-status'), 'succeeded');
    assert.equal(await step(2).getAttribute('data-step-status'), 'succeeded');
    assert.match(await step(1).innerText(), /error of an earlier attempt/);
    assert.match(
      await step(1).locator('[data-result]').textContent().then(String),
      /"chargeId": "ch_A-1001"/,
    );
    assert.equal(await page.locator('#retry').count(), 0);
    assert.equal(await page.locator('#steps li').first().getAttribute('data-event'), 'enqueued');
    assert.match(await page.locator('#steps li[data-event="finished"]').innerText(), /^job succeeded/);
    assert.equal(chargeRuns.get('A-1001'), 2);

    assert.equal(await step(1).locator('details[data-key="e1"]').getAttribute('open'), '');

    // A box ticked on a page stays ticked when the page updates itself.
    await page.goto(new URL(`jobs/${scheduled}`, d.url).href);
    await page.locator('#live-state.on').waitFor();
    await page.check('input[name="compensate"]');
    const before = Number((await page.locator('#live').getAttribute('data-refreshed')) ?? 0);
    await h.stepping.enqueue([mail({ to: 'late@example.com' })], { queue: 'emails' });
    // The NOTIFY of that job (or at the latest the slow poll) refreshes the page.
    // (refreshed only counts up; a selector, since the page's CSP rightly forbids eval.)
    await page
      .locator(before === 0 ? '#live[data-refreshed]' : `#live:not([data-refreshed="${before}"])`)
      .waitFor();
    assert.equal(await page.isChecked('input[name="compensate"]'), true);

    // The overview, as the README shows it.
    await page.click('header a:text-is("Overview")');
    await page.locator('#queues tr[data-queue="emails"]').waitFor();
    await page.locator(`#latest tr[data-job="${jobId}"][data-job-status="succeeded"]`).waitFor();
    await page.locator('#live-state.on').waitFor();
    assertClean(w);
    // caret: 'initial', or playwright injects a style of its own (which the CSP rightly blocks).
    await page.screenshot({
      path: process.env.STEPPING_SCREENSHOT
        ? path.join(sourceRoot, 'docs', 'dashboard.png')
        : path.join(os.tmpdir(), `stepping-dashboard-${process.pid}.png`),
      fullPage: true,
      caret: 'initial',
    });
    assertClean(w);
  } finally {
    await page.context().close();
  }
});

test('in a browser: the many-databases picker switches databases; hostile values stay text and run nothing', async () => {
  const tenant = await createTestDatabase('dash_browser_tenant');
  const hostileQueue = `<img src=x onerror="window.__pwned=1">`;
  const hostileError = `<script>window.__pwned=2</script><b>bold</b>`;
  const hostileStep = `tenant.<svg onload=window.__pwned=3>`;
  const tenantId = 'tenant <i>2</i>';
  const client = createStepping({ connectionString: tenant.url });
  const pool = new pg.Pool({ connectionString: tenant.url });
  let jobId: string;
  try {
    jobId = await client.enqueue([{ name: hostileStep, args: {} }], {
      queue: hostileQueue,
      key: `"'><script>window.__pwned=4</script>`,
    });
    await failJob(pool, jobId, hostileStep, { message: hostileError, stack: `${hostileError}\n at x` });
  } finally {
    await client.close();
    await pool.end();
  }
  await h.stepping.enqueue([{ name: 'main.only', args: {} }], { queue: 'main-queue' });
  const d = await dashboard({
    databases: [
      { id: 'main', connectionString: h.url },
      { id: tenantId, connectionString: tenant.url },
    ],
  });
  const w = await watchedPage(browser, new URL(d.url).host);
  const page = w.page;
  try {
    await page.goto(d.url);
    await page.locator('#databases tr[data-database]').nth(1).waitFor();
    assert.equal(await page.locator('#databases tr[data-database]').count(), 2);
    assert.equal(await page.locator(`#databases tr[data-database="${tenantId}"] a`).innerText(), tenantId);

    // The switcher in the top bar opens the chosen database.
    await page.selectOption('select[name="db"]', tenantId);
    await page.waitForURL(`**/db/${encodeURIComponent(tenantId)}/`);
    const queueCell = page.locator('#queues tr[data-queue] td').first();
    await queueCell.waitFor();
    assert.equal(await queueCell.innerText(), hostileQueue);
    assert.equal(await page.locator('#failing td.mono').first().innerText(), hostileStep);
    assert.equal(await page.locator('#failing .err').first().innerText(), hostileError);
    await page.click(`#recent-failures a[href$="/jobs/${jobId}"]`);
    await page.locator(`#job[data-job="${jobId}"]`).waitFor();
    assert.equal(await page.locator('#steps [data-error]').innerText(), hostileError);
    assert.equal(await page.locator('#job code').first().innerText(), `"'><script>window.__pwned=4</script>`);
    assert.equal(await page.evaluate('typeof window.__pwned'), 'undefined');
    assert.equal(await page.locator('img, svg, b, i').count(), 0);
    await page.locator('#live-state.on').waitFor();

    // Back to the other database through the switcher.
    await page.selectOption('select[name="db"]', 'main');
    await page.waitForURL('**/db/main/');
    await page.locator('#queues tr[data-queue="main-queue"]').waitFor();
    assert.equal(await page.evaluate('typeof window.__pwned'), 'undefined');
    assertClean(w);
  } finally {
    await page.context().close();
  }
});

test(
  'in a browser: a page of another site cannot frame or drive the dashboard, a link from it opens it; a //host path is no page',
  { timeout: 180_000 },
  async () => {
    const jobId = await h.stepping.enqueue([{ name: 'cross.browser', args: {} }], { queue: 'cross' });
    const d = await dashboard({ connectionString: h.url });
    const own = new URL(d.url);
    // Another site: localhost is a different site from 127.0.0.1 to the browser.
    const hostile = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>elsewhere</title>
        <iframe id="frame" src="${own.origin}/"></iframe>
        <img src="${own.origin}/jobs/${jobId}">
        <a id="link" href="${own.origin}/jobs/${jobId}">the job</a>
        <script>
          var done = 0;
          function finished() { if (++done === 2) document.body.dataset.done = '1'; }
          var source = new EventSource('${own.origin}/events');
          source.onerror = function () { source.close(); finished(); };
          fetch('${own.origin}/jobs?key=order', { mode: 'no-cors' }).then(finished, finished);
        </script>`);
    });
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    const elsewhere = `http://localhost:${(hostile.address() as AddressInfo).port}`;
    const w = await watchedPage(browser, own.host);
    const page = w.page;
    try {
      const framed = page.waitForResponse(
        (r) => new URL(r.url()).host === own.host && r.request().resourceType() === 'document',
      );
      await page.goto(`${elsewhere}/`);
      await page.locator('body[data-done="1"]').waitFor();
      // The frame's request was answered with a refusal (the browser would not show it anyway).
      assert.equal((await framed).status(), 403);

      // A link from that site opens the dashboard, which works as usual. (What went wrong
      // so far went wrong on the other site's page: refused requests, a refused frame.)
      w.errors.length = 0;
      w.outside.length = 0;
      await page.click('#link');
      await page.locator(`#job[data-job="${jobId}"]`).waitFor();
      await page.locator('#live-state.on').waitFor();
      assertClean(w);

      // `//host/...` is a path to the server but another host to the page's script.
      const other = await page.goto(`${own.origin}//${new URL(elsewhere).host}/jobs`);
      assert.equal(other?.status(), 404);
      assert.equal(await page.locator('#live-state').count(), 0);
      assert.deepEqual(w.errors, [
        'console: Failed to load resource: the server responded with a status of 404 (Not Found)',
      ]);
      assert.deepEqual(w.outside, []);
    } finally {
      await page.context().close();
      hostile.close();
    }
  },
);
