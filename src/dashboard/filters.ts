/**
 * The job list's query string: filters (status, queue, step, key prefix, age) and keyset
 * paging, checked into typed values (a bad value is a 400 naming the field), and written
 * back into links so every page keeps the filters it was reached with.
 */
import { MAX_KEY_LENGTH, MAX_NAME_LENGTH, MAX_QUEUE_LENGTH } from '../limits.js';
import { MAX_DELAY_MS } from '../limits.js';
import { DashboardRequestError } from './errors.js';
import { DASHBOARD_STATUSES, type DashboardStatus, type JobFilter, type JobPageRequest } from './queries.js';

/** Jobs per page of the job list unless `limit` says otherwise. */
export const DEFAULT_PAGE_SIZE = 50;
/** Most jobs one page may show. */
export const MAX_PAGE_SIZE = 500;

const BIGINT_MAX = 2n ** 63n - 1n;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A job id from a URL: a positive bigint in decimal, else null. */
export function parseJobIdParam(text: string): string | null {
  return /^[1-9]\d{0,18}$/.test(text) && BigInt(text) <= BIGINT_MAX ? text : null;
}

function badRequest(message: string): DashboardRequestError {
  return new DashboardRequestError(400, message);
}

/**
 * A name filter (queue, step, key prefix) exactly as given: never trimmed, since the engine
 * takes any 1 to max characters as a name, spaces included (a queue " padded " or " ",
 * a key " lead-key"), and the overview links to them. Only an empty value (a form field
 * left blank) is no filter.
 */
function textParam(params: URLSearchParams, name: string, max: number): string | null {
  const value = params.get(name) ?? '';
  if (value === '') return null;
  // PostgreSQL text cannot hold NUL; no stored name can contain it.
  if (value.includes('\u0000')) throw badRequest(`${name} must not contain the NUL character`);
  if (value.length > max)
    throw badRequest(`${name} is longer than ${max} characters, so nothing can match it`);
  return value;
}

/** `30s`, `15m`, `12h`, `7d` (or `500ms`) in milliseconds. */
export function parseAge(name: string, text: string): number {
  const match = /^(\d{1,12})\s*(ms|s|m|h|d)$/.exec(text.trim());
  if (!match)
    throw badRequest(`${name} must be a duration like 30s, 15m, 12h or 7d, got ${JSON.stringify(text)}`);
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  // No job is older than the limits allow anything to be scheduled; beyond that the date
  // it stands for is out of PostgreSQL's range (a 500, and a log line per request).
  if (ms > MAX_DELAY_MS) throw badRequest(`${name} must be at most 100 years, got ${JSON.stringify(text)}`);
  return ms;
}

function ageParam(params: URLSearchParams, name: string): number | null {
  const value = params.get(name)?.trim() ?? '';
  return value === '' ? null : parseAge(name, value);
}

function idParam(params: URLSearchParams, name: string): string | null {
  const value = params.get(name)?.trim() ?? '';
  if (value === '') return null;
  const id = parseJobIdParam(value);
  if (id === null)
    throw badRequest(`${name} must be a job id (a positive integer), got ${JSON.stringify(value)}`);
  return id;
}

/** Reads the filters of the job list from its query string. */
export function parseJobFilter(params: URLSearchParams): JobFilter {
  const status = params.get('status')?.trim() ?? '';
  if (status !== '' && !(DASHBOARD_STATUSES as readonly string[]).includes(status)) {
    throw badRequest(`status must be one of ${DASHBOARD_STATUSES.join(', ')}, got ${JSON.stringify(status)}`);
  }
  const minAgeMs = ageParam(params, 'min_age');
  const maxAgeMs = ageParam(params, 'max_age');
  if (minAgeMs !== null && maxAgeMs !== null && minAgeMs > maxAgeMs) {
    throw badRequest('min_age is larger than max_age, so no job can match');
  }
  return {
    status: status === '' ? null : (status as DashboardStatus),
    queue: textParam(params, 'queue', MAX_QUEUE_LENGTH),
    step: textParam(params, 'step', MAX_NAME_LENGTH),
    keyPrefix: textParam(params, 'key', MAX_KEY_LENGTH),
    minAgeMs,
    maxAgeMs,
  };
}

/** Reads the paging of the job list from its query string. */
export function parseJobPage(params: URLSearchParams): JobPageRequest {
  const limitText = params.get('limit')?.trim() ?? '';
  let limit = DEFAULT_PAGE_SIZE;
  if (limitText !== '') {
    limit = /^\d{1,6}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 1 && limit <= MAX_PAGE_SIZE)) {
      throw badRequest(
        `limit must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${JSON.stringify(limitText)}`,
      );
    }
  }
  const before = idParam(params, 'before');
  const after = idParam(params, 'after');
  if (before !== null && after !== null) throw badRequest('give before or after, not both');
  return { before, after, limit };
}

/** Age in milliseconds as the filter form shows it (`90m` stays `90m`, whole days as `2d`). */
function ageText(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

/** The query-string form of a filter (only the fields set), for links. */
export function filterParams(filter: Partial<JobFilter>): Record<string, string> {
  const out: Record<string, string> = {};
  if (filter.status) out.status = filter.status;
  if (filter.queue) out.queue = filter.queue;
  if (filter.step) out.step = filter.step;
  if (filter.keyPrefix) out.key = filter.keyPrefix;
  if (filter.minAgeMs !== null && filter.minAgeMs !== undefined) out.min_age = ageText(filter.minAgeMs);
  if (filter.maxAgeMs !== null && filter.maxAgeMs !== undefined) out.max_age = ageText(filter.maxAgeMs);
  return out;
}

/** `?a=1&b=2` for the given parameters (empty when there are none). */
export function queryString(params: Record<string, string | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== null && v !== undefined && v !== '') search.set(k, v);
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}
