/**
 * Headless Chromium for the dashboard's browser test: Debian's `chromium` package
 * (`.ci/run` installs it), driven by playwright-core, which never downloads a browser.
 * Pages record what would show a broken page: script errors, console errors (a CSP
 * violation is one) and requests to any other host.
 */
import { existsSync } from 'node:fs';

import { type Browser, chromium, type Page } from 'playwright-core';

/** Where Debian installs Chromium. */
export const CHROMIUM = '/usr/bin/chromium';

/** How long a page may take to show what a test waits for (a loaded 2-core machine is slow, never stuck). */
export const PAGE_TIMEOUT_MS = 90_000;

/** Starts headless Chromium; a missing browser is an error that says how to install it. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
  }
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A page and what went wrong on it. */
export interface WatchedPage {
  page: Page;
  /** Uncaught script errors and console errors (CSP violations among them). */
  errors: string[];
  /** Requests to any host but `ownHost`. */
  outside: string[];
  /** Dialogs (alert, confirm) the page opened; each is dismissed. */
  dialogs: string[];
}

/** A new page in a fresh context, watched; requests to `ownHost` (host:port) are its own. */
export async function watchedPage(browser: Browser, ownHost: string): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const watched: WatchedPage = { page, errors: [], outside: [], dialogs: [] };
  page.on('pageerror', (error) => watched.errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') watched.errors.push(`console: ${message.text()}`);
  });
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.host !== ownHost) watched.outside.push(request.url());
  });
  page.on('dialog', (dialog) => {
    watched.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  return watched;
}
