/**
 * Requests to pages. With one database its pages are at `/`; with many, `/` is the picker
 * and each database's pages are under `/db/<id>/`:
 *
 *   GET  {base}/                      overview
 *   GET  {base}/jobs?status&queue&step&key&min_age&max_age&before|after&limit
 *   GET  {base}/jobs/<id>             one job
 *   POST {base}/jobs/<id>/retry       (--allow-actions, token)
 *   POST {base}/jobs/<id>/cancel      (--allow-actions, token; compensate=1)
 *   GET  {base}/events                server-sent events
 *   GET  /go?db=<id>                  (many) the switcher's target
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidJobStateError, JobNotFoundError, SchemaNotReadyError } from '../errors.js';
import { maskConnectionString } from '../redact.js';
import type { DashboardDatabase, DatabaseRegistry } from './databases.js';
import { DashboardRequestError } from './errors.js';
import { parseJobFilter, parseJobIdParam, parseJobPage } from './filters.js';
import { renderPage, type NavItem, type Shell } from './layout.js';
import { databasesContent, type DatabaseLine } from './pages/databases.js';
import { jobContent, jobHeading } from './pages/job.js';
import { jobsContent, jobsFilterForm } from './pages/jobs.js';
import { overviewContent, type OverviewData } from './pages/overview.js';
import { problemContent } from './pages/problem.js';
import type { PanelResult } from './pages/common.js';
import type { DashboardQueries } from './queries.js';
import {
  checkActionRequest,
  checkHost,
  randomToken,
  setSecurityHeaders,
  type ListenAddress,
} from './security.js';

/** Rows the overview's panels show at most. */
const PANEL_ROWS = { workers: 200, unrunnable: 100, failingSteps: 20, recentFailures: 10 } as const;
/** Databases per page of the picker (each is connected to when its page is shown). */
export const PICKER_PAGE_SIZE = 50;
/** Databases the picker reads at once. */
const PICKER_CONCURRENCY = 8;
/** Event streams the whole process holds at most (each is an open connection). */
export const MAX_EVENT_STREAMS = 200;
/** Largest action form accepted (a token and a checkbox). */
const MAX_FORM_BYTES = 4096;

/** What the routes work with. */
export interface RouteContext {
  registry: DatabaseRegistry;
  queries: DashboardQueries;
  address: ListenAddress;
  /** The per-process form token. */
  token: string;
  allowActions: boolean;
  log: (line: string) => void;
}

/** Fixed confirmations after an action (the URL names one; its text never comes from the URL). */
const NOTICES: Readonly<Record<string, string>> = {
  retried: 'Retried: the job runs again from its failed step.',
  cancelled: 'Cancelled.',
  'cancel-requested': 'Cancel requested: the running step is being aborted; the job stops after it.',
};

/** Answers one request; never throws (errors become error pages). */
export async function handleRequest(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    checkHost(req, ctx.address);
    await route(ctx, req, res);
  } catch (error) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = statusOf(error);
    const message = maskConnectionString(
      error instanceof Error ? error.message || error.name : String(error),
    );
    if (status >= 500) ctx.log(`dashboard: ${req.method} ${req.url}: ${message}`);
    const shell = { ...baseShell(ctx, 'none', null), title: `Error ${status}` };
    sendHtml(req, res, status, shell, {
      live: problemContent(status, message, req.method === 'POST' ? null : '/'),
    });
  }
}

function statusOf(error: unknown): number {
  if (error instanceof DashboardRequestError) return error.status;
  if (error instanceof JobNotFoundError) return 404;
  if (error instanceof InvalidJobStateError) return 409;
  if (error instanceof SchemaNotReadyError) return 503;
  const code = (error as { code?: unknown } | null)?.code;
  // Connection problems (refused, timed out, server shutting down): the database is unavailable.
  if (typeof code === 'string' && (code.startsWith('E') || code.startsWith('08') || code === '57P01'))
    return 503;
  if (
    error instanceof Error &&
    /timeout exceeded when trying to connect|Connection terminated/i.test(error.message)
  )
    return 503;
  return 500;
}

function notFound(what = 'no such page'): DashboardRequestError {
  return new DashboardRequestError(404, what);
}

function segments(pathname: string): string[] {
  try {
    return pathname
      .split('/')
      .slice(1)
      .map((s) => decodeURIComponent(s));
  } catch {
    throw new DashboardRequestError(400, 'malformed URL');
  }
}

async function route(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
  const parts = segments(url.pathname);
  if (url.pathname === '/favicon.ico') {
    setSecurityHeaders(res, null);
    res.writeHead(204).end();
    return;
  }
  if (!ctx.registry.many) {
    const only = ctx.registry.list()[0]!;
    await databaseRoute(ctx, only, parts, url, req, res);
    return;
  }
  if (parts.length === 1 && parts[0] === '') {
    allow(req, ['GET', 'HEAD']);
    await pickerPage(ctx, url, req, res);
    return;
  }
  if (parts.length === 1 && parts[0] === 'go') {
    allow(req, ['GET', 'HEAD']);
    const db = ctx.registry.get(url.searchParams.get('db') ?? '');
    if (!db) throw notFound('no such database');
    redirect(res, `${db.base}/`);
    return;
  }
  if (parts[0] === 'db' && parts.length >= 2) {
    const db = ctx.registry.get(parts[1]!);
    if (!db) throw notFound('no such database');
    await databaseRoute(ctx, db, parts.slice(2), url, req, res);
    return;
  }
  throw notFound();
}

function allow(req: IncomingMessage, methods: readonly string[]): void {
  if (!methods.includes(req.method ?? '')) {
    throw new DashboardRequestError(
      405,
      `method ${req.method ?? '?'} is not allowed here (${methods.join(', ')})`,
    );
  }
}

async function databaseRoute(
  ctx: RouteContext,
  db: DashboardDatabase,
  parts: string[],
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  // `/`, `` and a trailing slash all mean the same page.
  const path = parts.filter((p, i) => p !== '' || i < parts.length - 1);
  if (path.length === 0 || (path.length === 1 && path[0] === '')) {
    allow(req, ['GET', 'HEAD']);
    await overviewPage(ctx, db, req, res);
  } else if (path.length === 1 && path[0] === 'events') {
    allow(req, ['GET']);
    if (ctx.registry.streams() >= MAX_EVENT_STREAMS) {
      throw new DashboardRequestError(503, 'too many open pages; the page falls back to reloading by hand');
    }
    db.live.attach(req, res);
  } else if (path.length === 1 && path[0] === 'jobs') {
    allow(req, ['GET', 'HEAD']);
    await jobsPage(ctx, db, url, req, res);
  } else if (path.length === 2 && path[0] === 'jobs') {
    allow(req, ['GET', 'HEAD']);
    const jobId = parseJobIdParam(path[1]!);
    if (jobId === null) throw notFound('no such job');
    await jobPage(ctx, db, jobId, url, req, res);
  } else if (path.length === 3 && path[0] === 'jobs' && (path[2] === 'retry' || path[2] === 'cancel')) {
    allow(req, ['POST']);
    const jobId = parseJobIdParam(path[1]!);
    if (jobId === null) throw notFound('no such job');
    await action(ctx, db, jobId, path[2], req, res);
  } else {
    throw notFound();
  }
}

function baseShell(ctx: RouteContext, nav: NavItem, db: DashboardDatabase | null): Omit<Shell, 'nonce'> {
  return {
    title: db?.id ?? 'Stepping',
    nav,
    database: db ? { id: db.id, base: db.base } : null,
    databases: ctx.registry.many ? ctx.registry.list().map((d) => ({ id: d.id, base: d.base })) : null,
    eventsUrl: db ? `${db.base}/events` : null,
  };
}

function sendHtml(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  shell: Omit<Shell, 'nonce'>,
  content: Parameters<typeof renderPage>[1],
): void {
  const nonce = randomToken(16);
  const body = Buffer.from(renderPage({ ...shell, nonce }, content));
  setSecurityHeaders(res, nonce);
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function redirect(res: ServerResponse, location: string): void {
  setSecurityHeaders(res, null);
  res.writeHead(303, { Location: location, 'Content-Length': 0 }).end();
}

/** A panel's rows, or why there are none: a view this version lacks, or a query that failed. */
async function panel<T>(exists: boolean, read: () => Promise<T>): Promise<PanelResult<T>> {
  if (!exists) return { missing: true };
  try {
    return { rows: await read() };
  } catch (error) {
    return { error: maskConnectionString((error as Error).message) };
  }
}

async function overviewPage(
  ctx: RouteContext,
  db: DashboardDatabase,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const q = ctx.queries;
  const pool = db.pool();
  const now = await q.now(pool);
  const views = await q.optionalViews(pool);
  const [queues, failing, recentFailures, workers, unrunnable] = await Promise.all([
    q.queues(pool, now),
    q.failingSteps(pool, PANEL_ROWS.failingSteps),
    q.recentFailures(pool, PANEL_ROWS.recentFailures),
    panel(views.workerOverview, () => q.workers(pool, PANEL_ROWS.workers)),
    panel(views.unrunnableSteps, () => q.unrunnable(pool, PANEL_ROWS.unrunnable)),
  ]);
  const data: OverviewData = { base: db.base, now, queues, failing, recentFailures, workers, unrunnable };
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

async function jobsPage(
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

async function jobPage(
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
  if (!job) throw notFound(`no job ${jobId}`);
  const notice = NOTICES[url.searchParams.get('notice') ?? ''] ?? null;
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

async function action(
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

async function pickerPage(ctx: RouteContext, url: URL, req: IncomingMessage, res: ServerResponse) {
  const all = ctx.registry.list();
  const pageText = url.searchParams.get('page') ?? '1';
  const pages = Math.max(1, Math.ceil(all.length / PICKER_PAGE_SIZE));
  const page = /^\d{1,6}$/.test(pageText) ? Number(pageText) : NaN;
  if (!(page >= 1 && page <= pages)) {
    throw new DashboardRequestError(400, `page must be an integer from 1 to ${pages}`);
  }
  const shown = all.slice((page - 1) * PICKER_PAGE_SIZE, page * PICKER_PAGE_SIZE);
  const lines: DatabaseLine[] = new Array(shown.length);
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
