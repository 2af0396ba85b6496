/**
 * One job: its facts (job_overview), the retry and cancel buttons when actions are
 * allowed, and its steps as a timeline (step_overview): status, attempts, the last error
 * with its stack, the stored result, and each compensation's state.
 */
import { isFinalStatus } from '../../job-status.js';
import { jsonText, MAX_JSON_SHOWN, utc } from '../format.js';
import { type Html, html, trustedHtml } from '../html.js';
import type { ErrorDetail, JobDetail, StepDetail } from '../queries.js';
import { ERROR_CELL_CHARS, jobHref, statusBadge, timeCell } from './common.js';

/** Results up to this many characters (as shown) are open on the page; longer ones are one click away. */
const OPEN_RESULT_CHARS = 400;

/**
 * Characters of results, outputs, error messages and stacks one job page shows in all.
 * A job may have 1,000 steps, each with a result, a message and a stack: 16 MB of results
 * (the per-job limit) and 10 MB of errors, and HTML escaping can make a character six
 * (a quote is `&quot;`). Past the budget, results and stacks are left out with a note
 * and messages are cut to a line; the CLI's `--json` has everything.
 */
export const PAGE_TEXT_BUDGET = 400_000;

/** What is left of PAGE_TEXT_BUDGET while one page is written, in the page's order. */
interface TextBudget {
  left: number;
}

/** An error message: whole while the budget lasts, then its first line's worth. */
function messageShown(budget: TextBudget, message: string): string {
  const text =
    budget.left <= 0 && message.length > ERROR_CELL_CHARS
      ? `${message.slice(0, ERROR_CELL_CHARS - 1)}…`
      : message;
  budget.left -= text.length;
  return text;
}

const NOT_SHOWN = `not shown: this page shows ${PAGE_TEXT_BUDGET.toLocaleString('en-US')} characters of results and errors in all`;

function notShown(): Html {
  return html`<p class="dim" data-not-shown>${NOT_SHOWN} (<code>stepping job ID --json</code> shows all)</p>`;
}

/** A stored JSON value as the page shows it, or null when the page's budget is spent. */
function jsonShown(budget: TextBudget, value: unknown): string | null {
  if (budget.left <= 0) return null;
  const text = jsonText(value, Math.min(MAX_JSON_SHOWN, budget.left));
  budget.left -= text.length;
  return text;
}

/** What the job page shows. */
export interface JobData {
  base: string;
  now: Date;
  job: JobDetail;
  steps: StepDetail[];
  /** The form token when actions are allowed; null hides the buttons. */
  actionToken: string | null;
}

function errorBlock(
  budget: TextBudget,
  summary: string,
  message: string | null,
  detail: ErrorDetail | null,
  key: string,
): Html | null {
  if (message === null && detail === null) return null;
  const text = messageShown(budget, message ?? detail?.message ?? '');
  const stack = detail?.stack ? (budget.left > 0 ? detail.stack.slice(0, budget.left) : null) : undefined;
  if (stack) budget.left -= stack.length;
  const meta = [
    detail?.name ? detail.name : null,
    detail?.attempt !== null && detail?.attempt !== undefined ? `attempt ${detail.attempt}` : null,
    detail?.at ? detail.at : null,
  ].filter((x): x is string => x !== null);
  return html`<div class="error-block">
    <div>
      <span class="dim">${summary}${meta.length > 0 ? ` (${meta.join(', ')})` : ''}:</span>
      <span class="err" data-error>${text}</span>
    </div>
    ${
      stack
        ? html`<details data-key="${key}">
            <summary>stack</summary>
            <pre>${stack}</pre>
          </details>`
        : stack === null
          ? notShown()
          : null
    }
  </div>`;
}

function actions(d: JobData): Html | null {
  if (d.actionToken === null) return null;
  const path = jobHref(d.base, d.job.jobId);
  const retry =
    d.job.status === 'failed'
      ? html`<form method="post" action="${path}/retry">
          <input type="hidden" name="_csrf" value="${d.actionToken}" />
          <button type="submit" id="retry">Retry from step #${d.job.failedStep ?? d.job.currentStep}</button>
        </form>`
      : null;
  const cancel = !isFinalStatus(d.job.status)
    ? html`<form method="post" action="${path}/cancel" data-confirm="Cancel job ${d.job.jobId}?">
        <input type="hidden" name="_csrf" value="${d.actionToken}" />
        <label
          ><input type="checkbox" name="compensate" value="1" data-key="compensate" /> compensate steps
          already done</label
        >
        <button type="submit" class="danger" id="cancel">Cancel</button>
      </form>`
    : null;
  if (retry === null && cancel === null) return null;
  return html`<div class="actions">${retry}${cancel}</div>`;
}

function facts(d: JobData): Html {
  const j = d.job;
  const row = (label: string, value: Html | string | number | null) =>
    value === null || value === ''
      ? null
      : html`<dt>${label}</dt>
          <dd>${value}</dd>`;
  return html`<dl class="facts">
    ${row('queue', j.queue)} ${row('key', j.key === null ? null : html`<code>${j.key}</code>`)}
    ${row('rate key', j.rateKey === null ? null : html`<code>${j.rateKey}</code>`)}
    ${row('priority', j.priority)}
    ${row('at step', html`<code>#${j.currentStep} ${j.currentStepName}</code> of ${j.stepCount}${j.phase === 'compensate' ? ' (compensating)' : ''}`)}
    ${row('attempt', j.currentAttempt)}
    ${row('created', html`${utc(j.createdAt)} <span class="dim">(${timeCell(d.now, j.createdAt)})</span>`)}
    ${row('updated', timeCell(d.now, j.updatedAt))}
    ${j.finishedAt ? row('finished', html`${utc(j.finishedAt)} <span class="dim">(${timeCell(d.now, j.finishedAt)})</span>`) : null}
    ${j.runAt ? row('runs', timeCell(d.now, j.runAt)) : null}
    ${j.leaseExpiresAt ? row('lease', html`${j.leaseExpired ? 'expired ' : 'until '}${timeCell(d.now, j.leaseExpiresAt)}`) : null}
    ${row('worker', j.lockedBy)} ${j.cancelRequested ? row('cancel', 'requested') : null}
    ${j.deadline ? row('deadline', html`${utc(j.deadline)} (${timeCell(d.now, j.deadline)})`) : null}
  </dl>`;
}

function stepItem(d: JobData, budget: TextBudget, s: StepDetail): Html {
  const forwardError =
    s.status === 'succeeded' || s.status === 'skipped'
      ? errorBlock(budget, 'error of an earlier attempt', s.lastError, s.lastErrorDetail, `e${s.stepIndex}`)
      : errorBlock(budget, 'last error', s.lastError, s.lastErrorDetail, `e${s.stepIndex}`);
  const compensation =
    s.compensateName === null
      ? null
      : html`<div class="comp" data-compensation="${s.stepIndex}">
          <div class="step-head">
            <span class="dim">compensation</span> <code>${s.compensateName}</code>
            ${s.compensationStatus ? statusBadge(s.compensationStatus) : html`<span class="dim">not needed</span>`}
            ${s.compensationAttempts > 0 ? html`<span class="dim">attempts ${s.compensationAttempts}</span>` : null}
            ${s.compensationFinishedAt ? html`<span class="dim">finished ${timeCell(d.now, s.compensationFinishedAt)}</span>` : null}
          </div>
          ${s.compensationLastError ? html`<div><span class="dim">last error:</span> <span class="err">${messageShown(budget, s.compensationLastError)}</span></div>` : null}
        </div>`;
  const resultText = s.result === null ? null : jsonShown(budget, s.result);
  const result =
    s.result === null
      ? null
      : resultText === null
        ? notShown()
        : html`<details
            data-key="r${s.stepIndex}"
            ${resultText.length <= OPEN_RESULT_CHARS ? trustedHtml('open') : null}
          >
            <summary>result</summary>
            <pre data-result>${resultText}</pre>
          </details>`;
  return html`<li
    class="t-${statusClass(s.status)}"
    data-step-index="${s.stepIndex}"
    data-step-status="${s.status}"
  >
    <div class="step-head">
      <span class="dim">#${s.stepIndex}</span>
      <span class="step-name mono">${s.name}</span> ${statusBadge(s.status)}
      <span class="dim">attempts ${s.attempts}${s.maxAttempts !== null ? ` of ${s.maxAttempts}` : ''}</span>
      ${s.finishedAt ? html`<span class="dim">finished ${timeCell(d.now, s.finishedAt)}</span>` : null}
    </div>
    ${forwardError} ${result} ${compensation}
  </li>`;
}

/** Timeline classes come from a fixed list, never from data. */
function statusClass(status: string): string {
  return ['succeeded', 'failed', 'running', 'retrying'].includes(status) ? status : 'other';
}

/** The job page's title line (outside the live part). */
export function jobHeading(jobId: string): Html {
  return html`<h1>Job ${jobId}</h1>`;
}

/** The job page's live part. */
export function jobContent(d: JobData): Html {
  const j = d.job;
  // Spent in the order the page is written: the job's error and output, then the steps.
  const budget: TextBudget = { left: PAGE_TEXT_BUDGET };
  const jobError =
    j.status !== 'succeeded'
      ? errorBlock(budget, 'last error', j.lastError, j.lastErrorDetail, 'job-error')
      : null;
  const output = j.output === null ? null : jsonShown(budget, j.output);
  return html`<section class="card" id="job" data-job="${j.jobId}" data-job-status="${j.status}">
      <h2>${statusBadge(j.status)}</h2>
      ${facts(d)} ${jobError}
      ${
        j.output === null
          ? null
          : output === null
            ? notShown()
            : html`<details data-key="output">
                <summary>output (the last step's result)</summary>
                <pre>${output}</pre>
              </details>`
      }
      ${actions(d)}
    </section>
    <section class="card" id="steps">
      <h2>Steps</h2>
      <ol class="timeline">
        <li class="t-other" data-event="enqueued">
          <div class="step-head"><span class="step-name">enqueued</span> ${timeCell(d.now, j.createdAt)}</div>
        </li>
        ${d.steps.map((s) => stepItem(d, budget, s))}
        ${
          j.finishedAt
            ? html`<li class="t-${statusClass(j.status)}" data-event="finished">
                <div class="step-head">
                  <span class="step-name">job ${j.status}</span> ${timeCell(d.now, j.finishedAt)}
                </div>
              </li>`
            : null
        }
      </ol>
    </section>`;
}
