/** The many-databases picker: every database, whether it is reachable and migrated, and its jobs in a few numbers. */
import { duration } from '../format.js';
import { type Html, html } from '../html.js';
import type { DatabaseLink } from '../layout.js';
import type { DatabaseSummary } from '../queries.js';
import { href } from './common.js';

/** One database's line: its summary, or why there is none. */
export interface DatabaseLine {
  database: DatabaseLink;
  summary: DatabaseSummary | null;
  /** Why it could not be read (connection refused, ...), masked; null when read. */
  error: string | null;
}

/** What the picker shows: one page of databases. */
export interface DatabasesData {
  lines: DatabaseLine[];
  total: number;
  page: number;
  pageSize: number;
}

function state(line: DatabaseLine): Html {
  if (line.error !== null) return html`<span class="badge s-failed">down</span>`;
  if (!line.summary?.migrated) return html`<span class="badge s-compensating">not migrated</span>`;
  return html`<span class="badge s-succeeded">ok</span>`;
}

/** The picker's live part. */
export function databasesContent(d: DatabasesData): Html {
  const pages = Math.max(1, Math.ceil(d.total / d.pageSize));
  const pager =
    pages <= 1
      ? null
      : html`<nav class="pager">
          ${d.page > 1 ? html`<a href="${href('', '/', { page: String(d.page - 1) })}">← previous</a>` : null}
          <span class="dim">page ${d.page} of ${pages}</span>
          ${d.page < pages ? html`<a href="${href('', '/', { page: String(d.page + 1) })}">next →</a>` : null}
        </nav>`;
  return html`<section class="card" id="databases">
    <table>
      <thead>
        <tr>
          <th>database</th>
          <th>state</th>
          <th class="n">pending</th>
          <th class="n">running</th>
          <th class="n">failed</th>
          <th class="n">oldest wait</th>
          <th>error</th>
        </tr>
      </thead>
      <tbody>
        ${d.lines.map((line) => {
          const s = line.summary;
          const usable = line.error === null && s?.migrated === true;
          return html`<tr data-database="${line.database.id}">
            <td>
              ${usable ? html`<a href="${line.database.base}/">${line.database.id}</a>` : line.database.id}
            </td>
            <td>${state(line)}</td>
            <td class="n">${usable ? s.pending : '–'}</td>
            <td class="n">${usable ? s.running : '–'}</td>
            <td class="n">${usable ? s.failed : '–'}</td>
            <td class="n">${usable && s.oldestWaitMs !== null ? duration(s.oldestWaitMs) : '–'}</td>
            <td>
              ${line.error === null ? (s?.migrated === false ? html`<span class="dim">run stepping migrate</span>` : null) : html`<span class="err">${line.error}</span>`}
            </td>
          </tr>`;
        })}
      </tbody>
    </table>
    ${pager}
  </section>`;
}
