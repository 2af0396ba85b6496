/**
 * What keeps a local dashboard from being driven by other web pages. The dashboard has no
 * login: whoever can reach its port can read it (bind it to 127.0.0.1, the default). So:
 *
 * - **Host check** on every request: the Host header must name an IP address, `localhost`
 *   or the configured host, at the listening port. A DNS-rebinding page (evil.example
 *   resolving to 127.0.0.1) sends `Host: evil.example` and is refused, so it can neither
 *   read pages nor the token in them.
 * - **Other sites' pages** (Fetch Metadata, sent by current browsers): a request that a
 *   page of another origin makes as a subresource (an EventSource, a fetch, an image, a
 *   frame) is refused before any database work, so such a page cannot hold event streams
 *   (each opens a LISTEN connection), make the dashboard query the database in a loop, or
 *   learn from statuses whether a job or a key exists. A link from another site (a
 *   top-level navigation) still opens any page.
 * - **Actions** (retry, cancel) exist only with --allow-actions, are POSTs, and need the
 *   per-process random token that the pages embed (another origin cannot read it), an
 *   `Origin` equal to the dashboard's own when the browser sends one, and
 *   `Sec-Fetch-Site: same-origin` when the browser sends that.
 * - **Headers**: a Content-Security-Policy allowing only this response's own inline
 *   script and style (by nonce) and connections to itself, no framing, no caching, and
 *   no referrer sent to other sites.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';

import { DashboardRequestError } from './errors.js';

/** Where the server listens, as the Host check needs it. */
export interface ListenAddress {
  /** The --host value (a name or an address). */
  host: string;
  /** The port actually bound (after `--port 0`). */
  port: number;
}

/** A random value for a header or a form: 32 bytes, base64url. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** Splits a Host header into a lower-cased hostname (IPv6 without brackets) and its port text. */
function parseHost(header: string): { hostname: string; port: string } | null {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/.exec(header.trim());
  if (!match) return null;
  const hostname = match[1]!.replace(/^\[|\]$/g, '').toLowerCase();
  return { hostname, port: match[2] ?? '80' };
}

/**
 * Throws a 403 unless the Host header names this server: an IP address (no DNS name can
 * be rebound to it), `localhost`, or the configured --host, with the bound port.
 */
export function checkHost(req: IncomingMessage, address: ListenAddress): void {
  const header = req.headers.host;
  const parsed = header === undefined ? null : parseHost(header);
  const allowed =
    parsed !== null &&
    parsed.port === String(address.port) &&
    (isIP(parsed.hostname) !== 0 ||
      parsed.hostname === 'localhost' ||
      parsed.hostname === address.host.replace(/^\[|\]$/g, '').toLowerCase());
  if (!allowed) {
    throw new DashboardRequestError(
      403,
      'unexpected Host header: open the dashboard by IP address, localhost or its --host name, at its port',
    );
  }
}

/**
 * Throws a 403 for a request a page of another origin (another site, or another port of
 * this host) makes as a subresource, by the Fetch Metadata headers browsers send. Allowed:
 * no `Sec-Fetch-Site` (curl, older browsers), `same-origin` (the dashboard's own script),
 * `none` (a typed address, a bookmark), and a top-level GET navigation from anywhere (a
 * link). Actions have a stricter check of their own (checkActionRequest).
 */
export function checkFetchSite(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (site === undefined || site === 'same-origin' || site === 'none') return;
  const dest = req.headers['sec-fetch-dest'];
  const navigation =
    (req.method === 'GET' || req.method === 'HEAD') &&
    req.headers['sec-fetch-mode'] === 'navigate' &&
    (dest === undefined || dest === 'document');
  if (!navigation) {
    throw new DashboardRequestError(
      403,
      'refused: a page of another site asked for this (open the dashboard by its address or a link)',
    );
  }
}

/**
 * Throws a 403 unless a POST comes from the dashboard's own pages: same-origin by the
 * headers browsers send (when they send them), and carrying the process's token.
 */
export function checkActionRequest(req: IncomingMessage, token: string, submitted: string | null): void {
  const origin = req.headers.origin;
  if (origin !== undefined && origin.toLowerCase() !== `http://${(req.headers.host ?? '').toLowerCase()}`) {
    throw new DashboardRequestError(403, 'refused: the request comes from another origin');
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') {
    throw new DashboardRequestError(403, 'refused: the request comes from another site');
  }
  const expected = Buffer.from(token);
  const given = Buffer.from(submitted ?? '');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new DashboardRequestError(
      403,
      'refused: missing or wrong form token (reload the page: the token changes when the dashboard restarts)',
    );
  }
}

/** Headers every answer carries; `nonce` allows that page's own inline script and style. */
export function setSecurityHeaders(res: ServerResponse, nonce: string | null): void {
  const own = nonce === null ? "'none'" : `'nonce-${nonce}'`;
  res.setHeader(
    'Content-Security-Policy',
    [
      "default-src 'none'",
      `script-src ${own}`,
      `style-src ${own}`,
      "img-src 'self'",
      "connect-src 'self'",
      "form-action 'self'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  // Not no-referrer: with it, browsers send `Origin: null` on the action POSTs, which the origin check refuses.
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  // Pages hold job data and the form token: never cached.
  res.setHeader('Cache-Control', 'no-store');
}
