/** Small pieces the pages share: status badges, times, links, cut-off error text. */
import { queryString } from '../filters.js';
import { relative, utc } from '../format.js';
import { type Html, html } from '../html.js';

/** A status as a coloured badge (the class is chosen from a fixed list, never from data). */
export function statusBadge(status: string): Html {
  const known = [
    'pending',
    'running',
    'retrying',
    'compensating',
    'succeeded',
    'failed',
    'compensated',
    'cancelled',
    'skipped',
  ];
  const cls = known.includes(status) ? `s-${status}` : '';
  return html`<span class="badge ${cls}" data-status="${status}">${status}</span>`;
}

/** A time as its age from the engine's clock, the exact UTC time on hover; `–` for none. */
export function timeCell(now: Date, at: Date | null): Html {
  if (at === null) return html`<span class="dim">–</span>`;
  return html`<time datetime="${at.toISOString()}" title="${utc(at)}">${relative(now, at)}</time>`;
}

/** A link to a page of this database with query parameters. */
export function href(
  base: string,
  path: string,
  params: Record<string, string | null | undefined> = {},
): string {
  return `${base}${path}${queryString(params)}`;
}

/** The link to one job's page. */
export function jobHref(base: string, jobId: string): string {
  return `${base}/jobs/${jobId}`;
}

/** Characters of an error message shown in a table cell (the whole one is on the job page). */
export const ERROR_CELL_CHARS = 160;

/**
 * An error message in a table cell: one line, cut with an ellipsis, the whole message on
 * hover; `past` (a job that succeeded after it) shows it dimmed rather than red.
 */
export function errorCell(message: string | null, past = false): Html {
  if (message === null || message === '') return html`<span class="dim">–</span>`;
  const line = message.replace(/\s*\n\s*/g, ' ');
  const cut = line.length > ERROR_CELL_CHARS ? `${line.slice(0, ERROR_CELL_CHARS - 1)}…` : line;
  return html`<span class="${past ? 'dim' : 'err'}" title="${message}">${cut}</span>`;
}

/** A panel the installed version cannot fill, or whose query failed. */
export type PanelResult<T> = { rows: T } | { missing: true } | { error: string };

/** The text shown instead of a panel's rows when its view is missing or unreadable. */
export function panelProblem<T>(result: PanelResult<T>): Html | null {
  if ('missing' in result) {
    return html`<p class="na" data-unavailable>not available (migrate to a newer version)</p>`;
  }
  if ('error' in result) return html`<p class="err">could not read this: ${result.error}</p>`;
  return null;
}
