/** The job list: a filter form (status, queue, step, key prefix, age) and keyset-paged rows. */
import { DEFAULT_PAGE_SIZE, filterParams } from '../filters.js';
import { type Html, html, trustedHtml } from '../html.js';
import {
  DASHBOARD_STATUSES,
  type JobFilter,
  type JobListRow,
  type JobPage,
  type JobPageRequest,
} from '../queries.js';
import { errorCell, href, jobHref, statusBadge, timeCell } from './common.js';

/** What the job list shows. */
export interface JobsData {
  base: string;
  now: Date;
  filter: JobFilter;
  page: JobPageRequest;
  result: JobPage;
}

/** The filter form (outside the live part, so a refresh never clears what is being typed). */
export function jobsFilterForm(base: string, filter: JobFilter, page: JobPageRequest): Html {
  const values = filterParams(filter);
  const field = (name: string, label: string, placeholder: string, title: string) =>
    html`<label>
      <span>${label}</span>
      <input name="${name}" value="${values[name] ?? ''}" placeholder="${placeholder}" title="${title}" />
    </label>`;
  return html`<h1>Jobs</h1>
    <section class="card">
      <form class="filters" method="get" action="${base}/jobs">
        <label>
          <span>status</span>
          <select name="status">
            <option value="">any</option>
            ${DASHBOARD_STATUSES.map(
              (s) =>
                html`<option value="${s}" ${filter.status === s ? trustedHtml('selected') : null}>
                  ${s}
                </option>`,
            )}
          </select>
        </label>
        ${field('queue', 'queue', 'any', 'exact queue name')}
        ${field('step', 'step', 'any', 'jobs with a step of this name')}
        ${field('key', 'key starts with', 'any', 'dedupe key prefix')}
        ${field('min_age', 'older than', 'e.g. 1h', 'created at least this long ago: 30s, 15m, 12h, 7d')}
        ${field('max_age', 'newer than', 'e.g. 1d', 'created at most this long ago: 30s, 15m, 12h, 7d')}
        ${page.limit !== DEFAULT_PAGE_SIZE ? html`<input type="hidden" name="limit" value="${page.limit}" />` : null}
        <button type="submit">Filter</button>
        <a href="${base}/jobs">clear</a>
      </form>
    </section>`;
}

/** Jobs as a table (the job list, the overview's latest jobs); `id` names the table. */
export function jobTable(base: string, now: Date, rows: readonly JobListRow[], id: string): Html {
  return html`<table id="${id}">
    <thead>
      <tr>
        <th class="n">job</th>
        <th>queue</th>
        <th>status</th>
        <th>at step</th>
        <th class="n">attempt</th>
        <th>key</th>
        <th>created</th>
        <th>finished</th>
        <th>last error</th>
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (j) =>
          html`<tr data-job="${j.jobId}" data-job-status="${j.status}">
            <td class="n"><a href="${jobHref(base, j.jobId)}">${j.jobId}</a></td>
            <td>${j.queue}</td>
            <td>${statusBadge(j.status)}</td>
            <td class="mono">#${j.currentStep} ${j.currentStepName}</td>
            <td class="n">${j.currentAttempt}</td>
            <td class="mono">${j.key ?? ''}</td>
            <td>${timeCell(now, j.createdAt)}</td>
            <td>${timeCell(now, j.finishedAt)}</td>
            <td>${errorCell(j.lastError, j.status === 'succeeded')}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** The job list's live part: rows and paging links. */
export function jobsContent(d: JobsData): Html {
  const keep = {
    ...filterParams(d.filter),
    limit: d.page.limit !== DEFAULT_PAGE_SIZE ? String(d.page.limit) : null,
  };
  const rows = d.result.rows;
  const first = rows[0];
  const last = rows[rows.length - 1];
  const pager = html`<nav class="pager">
    ${d.result.hasNewer ? html`<a href="${href(d.base, '/jobs', keep)}">newest</a>` : null}
    ${d.result.hasNewer && first ? html`<a href="${href(d.base, '/jobs', { ...keep, after: first.jobId })}" rel="prev">← newer</a>` : null}
    ${d.result.hasOlder && last ? html`<a href="${href(d.base, '/jobs', { ...keep, before: last.jobId })}" rel="next">older →</a>` : null}
  </nav>`;
  if (rows.length === 0) {
    return html`<section class="card">
      <p class="empty">no jobs match</p>
      ${pager}
    </section>`;
  }
  return html`<section class="card">${jobTable(d.base, d.now, rows, 'jobs')} ${pager}</section>`;
}
