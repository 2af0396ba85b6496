/**
 * The page shell: head with the inline style, the top bar (navigation, the database
 * switcher in many-databases mode, the live indicator), the page's own content, and the
 * inline script. Only the `#live` part is swapped by live updates; forms the operator is
 * typing into (filters) sit outside it.
 */
import { SCRIPT, STYLE } from './assets.js';
import { type Html, html, trustedHtml } from './html.js';

/** A database as the pages link to it. */
export interface DatabaseLink {
  id: string;
  /** Path prefix of its pages: '' with one database, `/db/<id>` with many. */
  base: string;
}

/** Which part of the navigation is current. */
export type NavItem = 'overview' | 'jobs' | 'job' | 'databases' | 'none';

/** Everything the shell needs besides the content. */
export interface Shell {
  /** This response's CSP nonce. */
  nonce: string;
  title: string;
  nav: NavItem;
  /** The database the page is about (null: the many-databases picker or an error before one was chosen). */
  database: DatabaseLink | null;
  /** Many-databases mode: every database, for the switcher; null with one database. */
  databases: readonly DatabaseLink[] | null;
  /** URL of the page's server-sent events, or null for a page that does not update. */
  eventsUrl: string | null;
  /** A one-line confirmation shown above the content (after an action). */
  notice?: string | null;
}

function navLink(href: string, label: string, current: boolean): Html {
  return html`<a href="${href}" class="${current ? 'current' : ''}">${label}</a>`;
}

function switcher(shell: Shell): Html | null {
  if (!shell.databases) return null;
  const current = shell.database?.id;
  return html`<form method="get" action="/go" class="switch">
      <select name="db" aria-label="database" data-autosubmit>
        ${current === undefined ? html`<option value="" selected>choose a database…</option>` : null}
        ${shell.databases.map(
          (d) =>
            html`<option value="${d.id}" ${d.id === current ? trustedHtml(' selected') : null}>
              ${d.id}
            </option>`,
        )}
      </select>
      <noscript><button type="submit">Open</button></noscript>
    </form>
    ${navLink('/', 'All databases', shell.nav === 'databases')}`;
}

/** A whole HTML document: `before` is static content, `live` the part live updates replace. */
export function renderPage(shell: Shell, content: { before?: Html | null; live: Html }): string {
  const db = shell.database;
  const nav = db
    ? html`${navLink(`${db.base}/`, 'Overview', shell.nav === 'overview')}
      ${navLink(`${db.base}/jobs`, 'Jobs', shell.nav === 'jobs' || shell.nav === 'job')}`
    : null;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${shell.title} · Stepping</title>
<style nonce="${shell.nonce}">${trustedHtml(STYLE)}</style>
</head>
<body${shell.eventsUrl ? html` data-events="${shell.eventsUrl}"` : null}>
<header class="top">
  <span class="brand">Stepping</span>
  ${switcher(shell)}
  ${db && !shell.databases ? html`<span class="db">${db.id}</span>` : null}
  ${nav}
  <span class="spacer"></span>
  ${shell.eventsUrl ? html`<span id="live-state" class="off">connecting</span>` : null}
</header>
<main>
${shell.notice ? html`<div class="notice" role="status">${shell.notice}</div>` : null}
${content.before ?? null}
<div id="live">${content.live}</div>
</main>
<script nonce="${shell.nonce}">${trustedHtml(SCRIPT)}</script>
</body>
</html>
`.text;
}
