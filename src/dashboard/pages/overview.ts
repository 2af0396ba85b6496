/** The overview: queues, failing steps and recent failures, live workers, step names nobody can run. */
import { duration, perMinute, utc } from '../format.js';
import { type Html, html, joinHtml } from '../html.js';
import {
  DASHBOARD_STATUSES,
  type FailingStep,
  type JobListRow,
  type QueueSummary,
  RATE_WINDOW_MS,
  type UnrunnableRow,
  type WorkerRow,
} from '../queries.js';
import { errorCell, href, jobHref, panelProblem, type PanelResult, statusBadge, timeCell } from './common.js';
import { jobTable } from './jobs.js';

/** What the overview shows. */
export interface OverviewData {
  base: string;
  now: Date;
  /** The queues with the most runnable jobs (a bounded number). */
  queues: QueueSummary[];
  /** How many queues there are in all. */
  queueCount: number;
  failing: FailingStep[];
  recentFailures: JobListRow[];
  workers: PanelResult<WorkerRow[]>;
  unrunnable: PanelResult<UnrunnableRow[]>;
  /** The newest jobs. */
  latest: JobListRow[];
}

/** Step names of a worker shown before "and N more". */
const NAMES_SHOWN = 6;

function count(base: string, n: number, params: Record<string, string>): Html {
  if (n === 0) return html`<span class="dim">0</span>`;
  return html`<a href="${href(base, '/jobs', params)}">${n}</a>`;
}

function queuesPanel(d: OverviewData): Html {
  const window = duration(RATE_WINDOW_MS);
  if (d.queues.length === 0) {
    return html`<section class="card" id="queues">
      <h2>Queues</h2>
      <p class="empty">no jobs yet</p>
    </section>`;
  }
  const rows = d.queues.map((q) => {
    const rateTitle = `${q.finished} finished in the last ${window}: ${q.succeeded} succeeded, ${q.unsuccessful} failed or compensated; ${q.lastMinute} in the last minute`;
    return html`<tr data-queue="${q.queue}">
      <td><a href="${href(d.base, '/jobs', { queue: q.queue })}">${q.queue}</a></td>
      ${DASHBOARD_STATUSES.map(
        (s) => html`<td class="n">${count(d.base, q.counts[s], { queue: q.queue, status: s })}</td>`,
      )}
      <td class="n">${q.runnable}</td>
      <td class="n">${q.scheduled}</td>
      <td class="n">
        ${q.oldestWaitMs === null ? html`<span class="dim">–</span>` : duration(q.oldestWaitMs)}
      </td>
      <td class="n" title="${rateTitle}">${perMinute(q.finished, RATE_WINDOW_MS)}</td>
      <td class="n" title="${rateTitle}">${q.unsuccessful}</td>
    </tr>`;
  });
  return html`<section class="card" id="queues">
    <h2>Queues</h2>
    <table>
      <thead>
        <tr>
          <th>queue</th>
          ${DASHBOARD_STATUSES.map((s) => html`<th class="n">${s}</th>`)}
          <th class="n" title="pending or with an expired lease, due now">runnable</th>
          <th class="n" title="pending, due later">scheduled</th>
          <th class="n" title="how long the oldest runnable job has waited">oldest wait</th>
          <th class="n" title="jobs finished per minute, averaged over the last ${window}">done/min</th>
          <th class="n" title="failed or compensated in the last ${window}">failed ${window}</th>
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
    ${
      d.queueCount > d.queues.length
        ? html`<p class="dim">
            and ${d.queueCount - d.queues.length} more queues (those with the most runnable jobs are shown;
            <a href="${href(d.base, '/jobs', {})}">the job list</a> filters by any queue)
          </p>`
        : ''
    }
  </section>`;
}

function failingPanel(d: OverviewData): Html {
  const body =
    d.failing.length === 0
      ? html`<p class="empty">no failed or retrying jobs</p>`
      : html`<table>
          <thead>
            <tr>
              <th>step</th>
              <th class="n">failed</th>
              <th class="n">retrying</th>
              <th>last error</th>
              <th>last</th>
            </tr>
          </thead>
          <tbody>
            ${d.failing.map(
              (f) =>
                html`<tr data-step="${f.stepName}">
                  <td class="mono">${f.stepName}</td>
                  <td class="n">${count(d.base, f.failed, { step: f.stepName, status: 'failed' })}</td>
                  <td class="n">${f.retrying}</td>
                  <td>${errorCell(f.lastError)}</td>
                  <td>
                    <a href="${jobHref(d.base, f.lastJobId)}">job ${f.lastJobId}</a>
                    ${timeCell(d.now, f.lastAt)}
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>`;
  const recent =
    d.recentFailures.length === 0
      ? null
      : html`<h2 class="sub">Recent failures</h2>
          <table id="recent-failures">
            <thead>
              <tr>
                <th>job</th>
                <th>queue</th>
                <th>status</th>
                <th>step</th>
                <th class="n">attempt</th>
                <th>error</th>
                <th>when</th>
              </tr>
            </thead>
            <tbody>
              ${d.recentFailures.map(
                (j) =>
                  html`<tr data-job="${j.jobId}">
                    <td><a href="${jobHref(d.base, j.jobId)}">${j.jobId}</a></td>
                    <td>${j.queue}</td>
                    <td>${statusBadge(j.status === 'failed' ? 'failed' : 'retrying')}</td>
                    <td class="mono">#${j.currentStep} ${j.currentStepName}</td>
                    <td class="n">${j.currentAttempt}</td>
                    <td>${errorCell(j.lastError)}</td>
                    <td>
                      ${timeCell(d.now, j.updatedAt)}${
                        j.runAt && j.status !== 'failed'
                          ? html` <span class="dim">· next ${timeCell(d.now, j.runAt)}</span>`
                          : null
                      }
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`;
  return html`<section class="card" id="failing">
    <h2>Failing steps</h2>
    ${body}${recent}
  </section>`;
}

/** Names, the first NAMES_SHOWN inline, the rest fetched in a <details>, and a count of those not fetched. */
function names(list: readonly string[] | null, none: string, total: number): Html {
  if (list === null) return html`<span class="dim">${none}</span>`;
  if (list.length === 0) return html`<span class="dim">none</span>`;
  const shown = joinHtml(
    list.slice(0, NAMES_SHOWN).map((n) => html`<code>${n}</code>`),
    ', ',
  );
  if (total <= NAMES_SHOWN) return shown;
  const unfetched = total - list.length;
  return html`${shown}
    <details>
      <summary>and ${total - NAMES_SHOWN} more</summary>
      ${joinHtml(
        list.slice(NAMES_SHOWN).map((n) => html`<code>${n}</code>`),
        ', ',
      )}${unfetched > 0 ? html` <span class="dim">and ${unfetched} not shown (worker_overview lists them)</span>` : null}
    </details>`;
}

function workersPanel(d: OverviewData): Html {
  const problem = panelProblem(d.workers);
  let body: Html;
  if (problem !== null || !('rows' in d.workers)) body = problem ?? html``;
  else if (d.workers.rows.length === 0) body = html`<p class="empty">no registered workers</p>`;
  else {
    const alive = d.workers.rows.filter((w) => w.alive).length;
    body = html`<p class="dim">${alive} live, ${d.workers.rows.length - alive} gone</p>
      <table>
        <thead>
          <tr>
            <th>worker</th>
            <th>host</th>
            <th class="n">pid</th>
            <th>queues</th>
            <th>steps</th>
            <th class="n">running</th>
            <th class="n">concurrency</th>
            <th>started</th>
            <th>heartbeat</th>
            <th>state</th>
          </tr>
        </thead>
        <tbody>
          ${d.workers.rows.map(
            (w) =>
              html`<tr class="${w.alive ? '' : 'dead'}" data-worker="${w.workerId}">
                <td class="mono">${w.workerId}</td>
                <td>${w.host ?? '–'}</td>
                <td class="n">${w.pid ?? '–'}</td>
                <td>${names(w.queues, 'every queue', w.queueCount)}</td>
                <td>${names(w.stepNames, 'none', w.stepNameCount)}</td>
                <td class="n">${w.running}</td>
                <td class="n">${w.concurrency ?? '–'}</td>
                <td>${timeCell(d.now, w.startedAt)}</td>
                <td>${timeCell(d.now, w.heartbeatAt)}</td>
                <td>
                  ${w.alive ? html`<span class="badge s-succeeded">live</span>` : html`<span class="badge s-cancelled">gone</span>`}
                </td>
              </tr>`,
          )}
        </tbody>
      </table>`;
  }
  return html`<section class="card" id="workers">
    <h2>Live workers</h2>
    ${body}
  </section>`;
}

function unrunnablePanel(d: OverviewData): Html {
  const problem = panelProblem(d.unrunnable);
  let body: Html;
  if (problem !== null || !('rows' in d.unrunnable)) body = problem ?? html``;
  else if (d.unrunnable.rows.length === 0)
    body = html`<p class="empty">every waiting step has a live worker</p>`;
  else {
    body = html`<table>
      <thead>
        <tr>
          <th>step</th>
          <th>queue</th>
          <th class="n">jobs waiting</th>
          <th class="n">oldest</th>
        </tr>
      </thead>
      <tbody>
        ${d.unrunnable.rows.map(
          (u) =>
            html`<tr data-step="${u.stepName}">
              <td class="mono">${u.stepName}</td>
              <td>${u.queue}</td>
              <td class="n">
                <a href="${href(d.base, '/jobs', { step: u.stepName, queue: u.queue, status: 'pending' })}"
                  >${u.jobs}</a
                >
              </td>
              <td class="n">${u.oldestAgeMs === null ? '–' : duration(u.oldestAgeMs)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
  }
  return html`<section class="card" id="unrunnable">
    <h2>Step names no live worker can run</h2>
    ${body}
  </section>`;
}

function latestPanel(d: OverviewData): Html {
  const body =
    d.latest.length === 0
      ? html`<p class="empty">no jobs yet</p>`
      : html`${jobTable(d.base, d.now, d.latest, 'latest')}
          <nav class="pager"><a href="${href(d.base, '/jobs')}">all jobs →</a></nav>`;
  return html`<section class="card" id="latest-jobs">
    <h2>Latest jobs</h2>
    ${body}
  </section>`;
}

/** The overview's live part. */
export function overviewContent(d: OverviewData): Html {
  return html`${queuesPanel(d)}
    <div class="grid">${failingPanel(d)}${unrunnablePanel(d)}</div>
    ${workersPanel(d)} ${latestPanel(d)}
    <p class="dim">engine time ${utc(d.now)}</p>`;
}
