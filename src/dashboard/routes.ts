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
import type { DashboardDatabase } from './databases.js';
import { DashboardRequestError } from './errors.js';
import { parseJobIdParam } from './filters.js';
import { action, jobPage, jobsPage, overviewPage, pickerPage } from './handlers.js';
import { problemContent } from './pages/problem.js';
import { baseShell, redirect, type RouteContext, sendHtml } from './respond.js';
import { checkFetchSite, checkHost, setSecurityHeaders } from './security.js';

/** The host request targets are resolved against: a target that changes it is not a plain path. */
const PLACEHOLDER_HOST = 'dashboard.invalid';

/** Event streams the whole process holds at most (each is an open connection). */
export const MAX_EVENT_STREAMS = 200;

/** Answers one request; never throws (errors become error pages). */
export async function handleRequest(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    checkHost(req, ctx.address);
    checkFetchSite(req);
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
  // Connection problems (refused, timed out, server shutting down or starting, login
  // refused, no such database, too many connections): the database is unavailable.
  if (
    typeof code === 'string' &&
    (code.startsWith('E') ||
      code.startsWith('08') ||
      code.startsWith('28') ||
      code.startsWith('53') ||
      code.startsWith('57P') ||
      code === '3D000')
  )
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
  const target = req.url ?? '/';
  const url = new URL(target, `http://${PLACEHOLDER_HOST}`);
  // `//evil.example/jobs` (or `/\evil.example/...`, or an absolute URL) names another host
  // to a URL parser: a browser showing such a page would resolve the page's own path
  // against that host. Only a plain path is a page.
  if (!target.startsWith('/') || url.host !== PLACEHOLDER_HOST) throw notFound();
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
