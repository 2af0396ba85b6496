/** The pages and actions: read what a page shows through the queries, then render it. */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { maskConnectionString } from '../redact.js';
import type { DashboardDatabase } from './databases.js';
import { DashboardRequestError } from './errors.js';
import { parseJobFilter, parseJobPage } from './filters.js';
import type { PanelResult } from './pages/common.js';
import { type DatabaseLine, databasesContent } from './pages/databases.js';
import { jobContent, jobHeading } from './pages/job.js';
import { jobsContent, jobsFilterForm } from './pages/jobs.js';
import { overviewContent, type OverviewData } from './pages/overview.js';
import { baseShell, redirect, type RouteContext, sendHtml } from './respond.js';
import { checkActionRequest } from './security.js';

/** Rows the overview's panels show at most. */
const PANEL_ROWS = {
  queues: 200,
  workers: 200,
  unrunnable: 100,
  failingSteps: 20,
  recentFailures: 10,
  latest: 10,
} as const;
/** Databases per page of the picker (each is connected to when its page is shown). */
export const PICKER_PAGE_SIZE = 50;
/** Databases the picker reads at once. */
const PICKER_CONCURRENCY = 8;
/** Largest action form accepted (a token and a checkbox). */
const MAX_FORM_BYTES = 4096;

/** Fixed confirmations after an action (the URL names one; its text never comes from the URL). */
const NOTICES: ReadonlyMap<string, string> = new Map([
  ['retried', 'Retried: the job runs again from its failed step.'],
  ['cancelled', 'Cancelled.'],
  ['cancel-requested', 'Cancel requested: the running step is being aborted; the job stops after it.'],
]);

/** A panel's rows, or why there are none: a view this version lacks, or a query that failed. */
async function panel<T>(exists: boolean, read: () => Promise<T>): Promise<PanelResult<T>> {
  if (!exists) return { missing: true };
  try {
    return { rows: await read() };
  } catch (error) {
    return { error: maskConnectionString((error as Error).message) };
  }
}

/** The overview: queues, failing steps, workers, unrunnable steps, latest jobs. */
export async function overviewPage(
  ctx: RouteContext,
  db: DashboardDatabase,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const q = ctx.queries;
  const pool = db.pool();
  const [now, views] = await Promise.all([q.now(pool), q.optionalViews(pool)]);
  const [queues, failing, recentFailures, workers, unrunnable, latest] = await Promise.all([
    q.queues(pool, now, PANEL_ROWS.queues),
    q.failingSteps(pool, PANEL_ROWS.failingSteps),
    q.recentFailures(pool, PANEL_ROWS.recentFailures),
    panel(views.workerOverview, () => q.workers(pool, PANEL_ROWS.workers)),
    panel(views.unrunnableSteps, () => q.unrunnable(pool, PANEL_ROWS.unrunnable)),
    q.latestJobs(pool, PANEL_ROWS.latest),
  ]);
  const data: OverviewData = {
    base: db.base,
    now,
    queues: queues.queues,
    queueCount: queues.total,
    failing,
    recentFailures,
    workers,
    unrunnable,
    latest,
  };
  sendHtml(
    req,
    res,
    200,
    { ...baseShell(ctx, 'overview', db), title: `Overview · ${db.id}` },
    {
      live: overviewContent(data),
    },
  );
}

/** The job list with its filters. */
export async function jobsPage(
  ctx: RouteContext,
  db: DashboardDatabase,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const filter = parseJobFilter(url.searchParams);
  const page = parseJobPage(url.searchParams);
  const pool = db.pool();
  const now = await ctx.queries.now(pool);
  const result = await ctx.queries.jobs(pool, filter, page, now);
  sendHtml(
    req,
    res,
    200,
    { ...baseShell(ctx, 'jobs', db), title: `Jobs · ${db.id}` },
    {
      before: jobsFilterForm(db.base, filter, page),
      live: jobsContent({ base: db.base, now, filter, page, result }),
    },
  );
}

/** One job and its timeline. */
export async function jobPage(
  ctx: RouteContext,
  db: DashboardDatabase,
  jobId: string,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const pool = db.pool();
  const now = await ctx.queries.now(pool);
  const [job, steps] = await Promise.all([ctx.queries.job(pool, jobId), ctx.queries.steps(pool, jobId)]);
  if (!job) throw new DashboardRequestError(404, `no job ${jobId}`);
  // A Map, not an object literal: `?notice=constructor` must not find Object's own members.
  const notice = NOTICES.get(url.searchParams.get('notice') ?? '') ?? null;
  sendHtml(
    req,
    res,
    200,
    { ...baseShell(ctx, 'job', db), title: `Job ${jobId} · ${db.id}`, notice },
    {
      before: jobHeading(jobId),
      live: jobContent({
        base: db.base,
        now,
        job,
        steps,
        actionToken: ctx.allowActions ? ctx.token : null,
      }),
    },
  );
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new DashboardRequestError(415, 'expected a form (application/x-www-form-urlencoded)');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) throw new DashboardRequestError(413, 'form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Retry or cancel, when allowed and asked for by the dashboard's own page. */
export async function action(
  ctx: RouteContext,
  db: DashboardDatabase,
  jobId: string,
  verb: 'retry' | 'cancel',
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (!ctx.allowActions) {
    throw new DashboardRequestError(
      403,
      'actions are disabled: start the dashboard with --allow-actions to retry and cancel jobs',
    );
  }
  const form = await readForm(req);
  checkActionRequest(req, ctx.token, form.get('_csrf'));
  const engine = ctx.queries.engine;
  let notice: string;
  if (verb === 'retry') {
    await engine.retry(db.pool(), jobId, null);
    notice = 'retried';
  } else {
    const status = await engine.cancel(db.pool(), jobId, form.get('compensate') === '1');
    notice = status === 'cancelled' ? 'cancelled' : 'cancel-requested';
  }
  ctx.log(`dashboard: ${verb} job ${jobId} in ${db.id}: ${notice}`);
  redirect(res, `${db.base}/jobs/${jobId}?notice=${notice}`);
}

/** The many-databases picker. */
export async function pickerPage(ctx: RouteContext, url: URL, req: IncomingMessage, res: ServerResponse) {
  const all = ctx.registry.list();
  const pageText = url.searchParams.get('page') ?? '1';
  const pages = Math.max(1, Math.ceil(all.length / PICKER_PAGE_SIZE));
  const page = /^\d{1,6}$/.test(pageText) ? Number(pageText) : NaN;
  if (!(page >= 1 && page <= pages)) {
    throw new DashboardRequestError(400, `page must be an integer from 1 to ${pages}`);
  }
  const shown = all.slice((page - 1) * PICKER_PAGE_SIZE, page * PICKER_PAGE_SIZE);
  const lines = new Array<DatabaseLine>(shown.length);
  let next = 0;
  const worker = async () => {
    while (next < shown.length) {
      const i = next++;
      const db = shown[i]!;
      const link = { id: db.id, base: db.base };
      try {
        lines[i] = { database: link, summary: await ctx.queries.summary(db.pool()), error: null };
      } catch (error) {
        lines[i] = { database: link, summary: null, error: maskConnectionString(describe(error)) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PICKER_CONCURRENCY, shown.length) }, worker));
  const shell = { ...baseShell(ctx, 'databases', null), title: 'Databases' };
  sendHtml(req, res, 200, shell, {
    live: databasesContent({ lines, total: all.length, page, pageSize: PICKER_PAGE_SIZE }),
  });
}

/** An error's message; connection failures arrive as AggregateErrors with an empty one. */
function describe(error: unknown): string {
  if (error instanceof AggregateError && !error.message) return error.errors.map(describe).join('; ');
  return error instanceof Error ? error.message || error.name : String(error);
}
