/**
 * Writing answers: an HTML page (or, for a live refresh, only its `#live` part) with the
 * security headers and a fresh CSP nonce, and 303 redirects.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { DashboardDatabase, DatabaseRegistry } from './databases.js';
import { type NavItem, renderPage, type Shell } from './layout.js';
import type { DashboardQueries } from './queries.js';
import { type ListenAddress, randomToken, setSecurityHeaders } from './security.js';

/** Request header of the page script's live refreshes: answer with the `#live` part only. */
export const LIVE_FRAGMENT_HEADER = 'x-stepping-live';

/** What the routes and handlers work with. */
export interface RouteContext {
  registry: DatabaseRegistry;
  queries: DashboardQueries;
  address: ListenAddress;
  /** The per-process form token. */
  token: string;
  allowActions: boolean;
  log: (line: string) => void;
}

/** The shell of a page about `db` (null: the picker, or an error page). */
export function baseShell(
  ctx: RouteContext,
  nav: NavItem,
  db: DashboardDatabase | null,
): Omit<Shell, 'nonce'> {
  return {
    title: db?.id ?? 'Stepping',
    nav,
    database: db ? { id: db.id, base: db.base } : null,
    databases: ctx.registry.many ? ctx.registry.list().map((d) => ({ id: d.id, base: d.base })) : null,
    eventsUrl: db ? `${db.base}/events` : null,
  };
}

/** Sends a page; a live refresh gets only its live part. HEAD gets the headers. */
export function sendHtml(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  shell: Omit<Shell, 'nonce'>,
  content: Parameters<typeof renderPage>[1],
): void {
  const nonce = randomToken(16);
  // A live refresh asks for the live part alone: parsed whole, the page's style (with this
  // response's nonce, not the open page's) would break the open page's CSP.
  const fragment = req.headers[LIVE_FRAGMENT_HEADER] === '1';
  const body = Buffer.from(fragment ? content.live.text : renderPage({ ...shell, nonce }, content));
  setSecurityHeaders(res, nonce);
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': body.length,
    Vary: LIVE_FRAGMENT_HEADER,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Sends a 303 to `location` (after an action: the page shows the outcome, a reload does not repeat it). */
export function redirect(res: ServerResponse, location: string): void {
  setSecurityHeaders(res, null);
  res.writeHead(303, { Location: location, 'Content-Length': 0 }).end();
}
