/**
 * The built-in HTTP step (remote invoker). Status mapping follows DTM's conventions:
 * 2xx succeeds; 409 Conflict is a permanent failure (the forward path ends, compensations
 * run); 425 Too Early is "not yet" (run again later without counting a failed attempt,
 * after Retry-After when the server sends it); every other status (3xx included: redirects
 * are not followed), a timeout or a connection error fails the attempt and is retried
 * with backoff. Arguments that can never make a request (a bad URL, a header with a line
 * break) fail permanently.
 *
 * The remote server is not trusted: its answer is read within the attempt's timeout and
 * the step's abort signal, at most ERROR_BODY_READ_BYTES of it, and its Retry-After is
 * clamped.
 */
import type { Request as UndiciRequest } from 'undici';

import { EnqueueValidationError, PermanentError } from './errors.js';
import {
  HttpDestinationError,
  type HttpDestinationOptions,
  HttpDestinationPolicy,
} from './http-destinations.js';
import { undici } from './lazy-undici.js';
import { MAX_INT, MAX_RETRY_LATER_MS } from './limits.js';
import { MASK, maskConnectionString } from './redact.js';
import { defineStep, type StepCallOptions, type StepContext, type StepDefinition } from './steps.js';

/** Arguments of an HTTP step (stored as the step's JSON args). */
export interface HttpStepArgs {
  /** Absolute http: or https: URL, without credentials (send those in a header). */
  url: string;
  /** Default POST. Sent upper-cased. CONNECT, TRACE and TRACK are refused. */
  method?: string;
  /** Header values are strings without line breaks. `Idempotency-Key` may be overridden. */
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON (content-type application/json). */
  body?: unknown;
  /** Per-attempt timeout, covering connecting, sending, the answer and reading its body. Default 10,000 ms. */
  timeoutMs?: number;
  /** "Not yet" delay when a 425 carries no (or an unreadable) Retry-After, and the shortest one a Retry-After can ask for. Default 1,000 ms. */
  notYetMs?: number;
  /** Longest "not yet" delay a 425's Retry-After can ask for; longer ones are cut to it. Default 1 hour. */
  maxRetryAfterMs?: number;
}

/** Default of HttpStepArgs.timeoutMs. */
export const DEFAULT_HTTP_TIMEOUT_MS = 10_000;
/** Default of HttpStepArgs.notYetMs. */
export const DEFAULT_NOT_YET_MS = 1000;
/** Default of HttpStepArgs.maxRetryAfterMs: as long as the default backoff's cap. */
export const DEFAULT_MAX_RETRY_AFTER_MS = 3_600_000;
/** Bytes of an error answer's body read for its excerpt; the rest is never read (the connection is closed). */
export const ERROR_BODY_READ_BYTES = 2048;
/** Characters of that body kept in the error message. */
const EXCERPT_LENGTH = 500;

/** Error of an attempt that got a non-2xx answer. */
export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    readonly status: number,
    /** The URL as the message shows it: its origin only (its path and query are the step's args). */
    readonly url: string,
    readonly bodyExcerpt: string,
    message = `HTTP ${status} from ${url}${bodyExcerpt ? `: ${bodyExcerpt}` : ''}`,
  ) {
    super(message);
  }
}

/**
 * Error of an attempt answered with a redirect (3xx). Redirects are not followed: one
 * would send the body and headers (API keys) to wherever the server points, or turn a
 * POST into a GET that "succeeds". Retried like other statuses; fix the step's URL.
 */
export class HttpRedirectError extends HttpStatusError {
  override name = 'HttpRedirectError';
  constructor(
    status: number,
    url: string,
    /**
     * The Location header as shown (resolved against the URL, its query and fragment cut,
     * secrets masked), or null when the server sent none.
     */
    readonly location: string | null,
  ) {
    super(
      status,
      url,
      '',
      `HTTP ${status} from ${url}: redirect to ${location ?? '(no Location header)'} not followed ` +
        `(the HTTP step does not follow redirects; give the step the final URL)`,
    );
  }
}

/** An HTTP step's arguments, checked and ready to send. */
interface PreparedRequest {
  url: string;
  /** The URL for messages: its origin, then `/…` when it has a path or query (see shownUrl). */
  shownUrl: string;
  /** Values of the args that must not reach a stored error (see secretsOf), longest first. */
  secrets: readonly string[];
  method: string;
  headers: Headers;
  body: string | undefined;
  timeoutMs: number;
  notYetMs: number;
  maxRetryAfterMs: number;
}

const ARG_KEYS: readonly string[] = [
  'url',
  'method',
  'headers',
  'body',
  'timeoutMs',
  'notYetMs',
  'maxRetryAfterMs',
] satisfies (keyof HttpStepArgs)[];
/** RFC 9110 token: method and header names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A header value fetch accepts: tab, visible ASCII, space, obs-text; never CR, LF or NUL. */
const HEADER_VALUE = /^[\t\u0020-\u007e\u0080-\u00ff]*$/;
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
/** Headers fetch (undici) computes itself or refuses: a request carrying one can never be sent. */
const FETCH_MANAGED_HEADERS = new Set([
  'connection',
  'content-length',
  'expect',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
]);
/**
 * The Fetch standard's "bad ports" (https://fetch.spec.whatwg.org/#port-blocking): fetch
 * never connects to them (SMTP, IRC, X11, SIP, ...) and fails with a bare "fetch failed",
 * so a URL naming one can never make a request.
 */
const FETCH_BAD_PORTS = new Set(
  [
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104,
    109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515,
    526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049,
    3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
  ].map(String),
);
/** Shortest arg value masked in a remote answer: shorter ones are too common to be secrets. */
const MIN_SECRET_LENGTH = 6;

/**
 * The URL as stored errors show it. Errors are read by producers, operators and the
 * dashboard, which never see args; a webhook's path (`/services/T0/B0/XXXX`) or a query
 * (`?token=`) is often the credential itself, so only the origin is shown.
 */
function shownUrl(url: URL): string {
  return url.pathname === '/' && url.search === '' ? `${url.origin}/` : `${url.origin}/…`;
}

/**
 * The request's values a server may echo into its error answer, to be masked there: every
 * header value (and each of its words), every path segment and query value, as sent and
 * decoded, of MIN_SECRET_LENGTH characters or more; longest first, so a value is
 * masked whole before any part of it.
 */
function secretsOf(url: URL, headers: Record<string, string>): string[] {
  const found = new Set<string>();
  const add = (value: string) => {
    if (value.length >= MIN_SECRET_LENGTH) found.add(value);
  };
  const decoded = (value: string) => {
    try {
      return decodeURIComponent(value);
    } catch {
      return value;
    }
  };
  for (const value of Object.values(headers)) {
    add(value);
    for (const word of value.split(/\s+/)) add(word);
  }
  for (const segment of url.pathname.split('/')) {
    add(segment);
    add(decoded(segment));
  }
  for (const [, value] of url.searchParams) {
    add(value);
    add(encodeURIComponent(value));
  }
  // And as sent: a raw `+` or `/` (a base64 signature) is in neither form above. A part
  // without `=` (`?TOKEN`) is all value.
  for (const part of url.search.slice(1).split('&')) {
    const raw = part.slice(part.indexOf('=') + 1);
    add(raw);
    add(decoded(raw));
  }
  return [...found].sort((a, b) => b.length - a.length);
}

/**
 * A string for an error message: quoted, cut, with any credentials masked. Only for
 * strings that name a thing (an argument's or a header's name, a method); a value of the
 * wrong type is named by its kind (kindOf).
 */
function shown(text: string): string {
  const cut = text.length > 200 ? `${text.slice(0, 200)}…` : text;
  return JSON.stringify(maskConnectionString(cut));
}

/**
 * What a value of the wrong type is, without showing it: `an array of 2 items`, `a string
 * of 46 characters`, `an object`. For args that may hold a credential: `headers` given as
 * fetch's [name, value] pairs or as a header line, `url` as a URL object.
 */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'string')
    return `a string of ${value.length} character${value.length === 1 ? '' : 's'}`;
  if (value instanceof URL) return 'a URL object (give its href)';
  if (typeof value === 'object') {
    // A class's name (Headers, Map) is no secret, and says what to change.
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor
      ?.name;
    return typeof name === 'string' && /^[A-Za-z_$][\w$]{0,39}$/.test(name) && name !== 'Object'
      ? `a ${name} object`
      : 'an object';
  }
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`;
}

function checkInteger(
  args: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
): number | undefined {
  const value = args[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const got = typeof value === 'number' ? String(value) : kindOf(value);
    throw new TypeError(`${key} must be an integer from ${min} to ${max}, got ${got}`);
  }
  return value;
}

/**
 * Checks an HTTP step's arguments and builds the request; throws a TypeError naming the
 * problem (never a header's value: it may be a secret).
 */
function prepare(input: unknown, idempotencyKey: string | undefined): PreparedRequest {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    // Only the kind: a URL given alone, or an array of them, may hold a token.
    const kind = Array.isArray(input) ? 'an array' : input === null ? 'null' : typeof input;
    throw new TypeError(`the arguments must be an object like { url }, got ${kind}`);
  }
  const args = input as Record<string, unknown>;
  const unknown = Object.keys(args).filter((key) => !ARG_KEYS.includes(key));
  if (unknown.length > 0) {
    throw new TypeError(`unknown argument ${shown(unknown[0]!)} (known: ${ARG_KEYS.join(', ')})`);
  }
  // Only the kind: a URL object or { href } holds the webhook path and token.
  if (typeof args.url !== 'string') throw new TypeError(`url must be a string, got ${kindOf(args.url)}`);
  let url: URL;
  try {
    url = new URL(args.url);
  } catch {
    // The value is not shown: a webhook URL's path or query is often its credential.
    throw new TypeError(
      `url is not an absolute URL such as https://host/path (${args.url.length} characters)`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`url must be http: or https:, got ${shown(url.protocol.slice(0, 40))}`);
  }
  if (url.username || url.password) {
    throw new TypeError(
      `url must not carry credentials (send them in a header such as Authorization): ${shownUrl(url)}`,
    );
  }
  // url.port is empty for the scheme's default port, which is never a bad one.
  if (FETCH_BAD_PORTS.has(url.port)) {
    throw new TypeError(
      `url's port ${url.port} is one fetch never connects to (a "bad port" of the Fetch standard): ${shownUrl(url)}`,
    );
  }
  const method = args.method === undefined ? 'POST' : args.method;
  if (typeof method !== 'string' || !TOKEN.test(method)) {
    const got = typeof method === 'string' ? shown(method) : kindOf(method);
    throw new TypeError(`method must be an HTTP method such as POST, got ${got}`);
  }
  const upper = method.toUpperCase();
  if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`method ${upper} cannot be sent by fetch`);
  const given = args.headers;
  // A plain object only: a Headers or a Map has no own entries, so its headers would be
  // dropped without a word (and it is stored as {}).
  const plain =
    typeof given === 'object' &&
    given !== null &&
    [Object.prototype, null].includes(Object.getPrototypeOf(given) as object | null);
  if (given !== undefined && !plain) {
    // Only the kind: [name, value] pairs or a header line hold the values (an API key).
    throw new TypeError(`headers must be an object of name: value strings, got ${kindOf(given)}`);
  }
  const headers = new Headers();
  if (idempotencyKey !== undefined) headers.set('idempotency-key', idempotencyKey);
  for (const [name, value] of Object.entries((given ?? {}) as Record<string, unknown>)) {
    if (!TOKEN.test(name)) throw new TypeError(`header name ${shown(name)} is not a valid HTTP header name`);
    if (FETCH_MANAGED_HEADERS.has(name.toLowerCase()))
      throw new TypeError(`header ${name} cannot be set: fetch sets it itself or refuses it`);
    if (typeof value !== 'string')
      throw new TypeError(`header ${name} must be a string, got a ${typeof value}`);
    if (!HEADER_VALUE.test(value)) {
      throw new TypeError(
        `header ${name} holds a character HTTP cannot carry (a line break, NUL or a character above U+00FF)`,
      );
    }
    headers.set(name, value);
  }
  let body: string | undefined;
  if (typeof args.body === 'string') {
    body = args.body;
  } else if (args.body !== undefined) {
    body = JSON.stringify(args.body);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  if (body !== undefined && (upper === 'GET' || upper === 'HEAD')) {
    throw new TypeError(`a ${upper} request cannot have a body`);
  }
  return {
    url: url.href,
    shownUrl: shownUrl(url),
    secrets: secretsOf(url, (given ?? {}) as Record<string, string>),
    method: upper,
    headers,
    body,
    timeoutMs: checkInteger(args, 'timeoutMs', 1, MAX_INT) ?? DEFAULT_HTTP_TIMEOUT_MS,
    notYetMs: checkInteger(args, 'notYetMs', 0, MAX_RETRY_LATER_MS) ?? DEFAULT_NOT_YET_MS,
    maxRetryAfterMs:
      checkInteger(args, 'maxRetryAfterMs', 0, MAX_RETRY_LATER_MS) ?? DEFAULT_MAX_RETRY_AFTER_MS,
  };
}

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
/** RFC 9110 §5.6.7 HTTP-date: IMF-fixdate, and the obsolete RFC 850 and asctime forms. */
const IMF_FIXDATE = new RegExp(`^${DAY}, \\d{2} ${MONTH} \\d{4} \\d{2}:\\d{2}:\\d{2} GMT$`);
const RFC850_DATE = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \\d{2}-${MONTH}-\\d{2} \\d{2}:\\d{2}:\\d{2} GMT$`,
);
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} (?: \\d|\\d{2}) \\d{2}:\\d{2}:\\d{2} \\d{4}$`);

/**
 * A Retry-After header in milliseconds from `now`: delta-seconds (`120`) or an HTTP-date
 * (a past date is 0). Null when absent or unreadable (`soon`, `-1`, `1.5`, a free-form
 * date). Not clamped: the caller bounds it.
 */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | null {
  if (header === null) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  let at = NaN;
  if (IMF_FIXDATE.test(text) || RFC850_DATE.test(text)) at = Date.parse(text);
  // asctime carries no zone; HTTP dates are always GMT.
  else if (ASCTIME_DATE.test(text)) at = Date.parse(`${text} GMT`);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * The "not yet" delay of a 425: its Retry-After clamped to [notYetMs, maxRetryAfterMs],
 * else notYetMs. The floor: a server answering 425 with `Retry-After: 0` would otherwise
 * have the step ask again as fast as a round trip allows, for as long as it likes.
 */
function notYetDelay(response: Response, request: PreparedRequest): number {
  const asked = parseRetryAfter(response.headers.get('retry-after'));
  if (asked === null) return request.notYetMs;
  return Math.max(
    Math.min(asked, request.maxRetryAfterMs),
    Math.min(request.notYetMs, request.maxRetryAfterMs),
  );
}

/** A promise that rejects with the signal's reason once it aborts (and never resolves). */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  const aborted = new Promise<never>((_, reject) => {
    // The reason is what abort() was given (an Error from our own timers and stop()).
    const fail = () => reject(signal.reason as Error);
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
  aborted.catch(() => {}); // only ever raced: an abort nobody awaits is not unhandled
  return aborted;
}

/**
 * Reads at most `maxBytes` of a body, racing every read against the abort; then cancels
 * the stream so nothing more is downloaded. Decoded as UTF-8 (a character cut at the cap
 * is dropped); `cut` is true when the body may go on past what was kept. A broken body
 * gives what arrived; an abort rejects with its reason.
 */
async function readCapped(
  response: Response,
  maxBytes: number,
  signal: AbortSignal,
  aborted: Promise<never>,
): Promise<{ text: string; cut: boolean }> {
  const reader = response.body?.getReader();
  if (!reader) return { text: '', cut: false };
  const chunks: Uint8Array[] = [];
  let size = 0;
  let ended = false;
  try {
    while (size < maxBytes) {
      const { done, value } = (await Promise.race([reader.read(), aborted])) as {
        done: boolean;
        value?: Uint8Array;
      };
      if (done || value === undefined) {
        ended = true;
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    if (signal.aborted) throw signal.reason;
    // Otherwise a connection broken mid-body: the status is what matters, keep what arrived.
  } finally {
    void reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(Math.min(size, maxBytes));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, bytes.length - offset);
    bytes.set(part, offset);
    offset += part.length;
    if (offset >= bytes.length) break;
  }
  return { text: new TextDecoder().decode(bytes, { stream: true }), cut: !ended };
}

/** How requests are sent: the global fetch, or undici's with a policy's dispatcher. */
interface Transport {
  Request: typeof Request;
  fetch: (request: Request) => Promise<Response>;
}

const GLOBAL_FETCH: Transport = { Request, fetch: (request) => fetch(request) };

/**
 * undici's own fetch with a policy's dispatcher: the global fetch is another copy of
 * undici (the one inside Node), whose dispatcher interface may differ from this one's.
 */
function policyTransport(policy: HttpDestinationPolicy): Transport {
  const dispatcher = policy.dispatcher;
  if (!dispatcher) return GLOBAL_FETCH;
  const { fetch: undiciFetch, Request: UndiciRequestClass } = undici();
  return {
    Request: UndiciRequestClass as unknown as typeof Request,
    fetch: (request) =>
      undiciFetch(request as unknown as UndiciRequest, { dispatcher }) as unknown as Promise<Response>,
  };
}

/** One request and its answer, all within `signal`. */
async function attempt(
  request: PreparedRequest,
  signal: AbortSignal,
  ctx: StepContext,
  transport: Transport,
): Promise<unknown> {
  let sent: Request;
  try {
    sent = new transport.Request(request.url, {
      method: request.method,
      headers: request.headers,
      ...(request.body !== undefined ? { body: request.body } : {}),
      // A 3xx is answered as is (its Location is in the error), never followed.
      redirect: 'manual',
      signal,
    });
  } catch (error) {
    // Whatever fetch refuses to send, it refuses every time: retrying cannot help.
    throw new PermanentError(`HTTP step: the request cannot be made: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const aborted = rejectOnAbort(signal);
  const response = await Promise.race([
    transport.fetch(sent).catch((error: unknown) => requestFailed(error, request, signal)),
    aborted,
  ]);
  // Bodies other than an error's are not read: the step's result is undefined. Cancelling
  // closes the connection, so nothing more is downloaded.
  const discard = () => Promise.race([response.body?.cancel().catch(() => {}), aborted]);
  if (response.ok) {
    await discard();
    return undefined;
  }
  if (response.status === 425) {
    const delayMs = notYetDelay(response, request);
    await discard();
    return ctx.retryLater(delayMs);
  }
  if (response.status >= 300 && response.status < 400) {
    const location = response.headers.get('location');
    await discard();
    throw new HttpRedirectError(
      response.status,
      request.shownUrl,
      location && shownLocation(location, request),
    );
  }
  const { text, cut } = await readCapped(response, ERROR_BODY_READ_BYTES, signal, aborted);
  const error = new HttpStatusError(
    response.status,
    request.shownUrl,
    bodyExcerpt(text, cut, request.secrets),
  );
  if (response.status === 409) throw new PermanentError(error.message, { cause: error });
  throw error;
}

/** `text` with every occurrence of the request's secrets masked. */
function masked(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join(MASK);
  return out;
}

/**
 * The length of the longest end of `text` that is a beginning of `secret` (shorter than
 * all of it): Knuth-Morris-Pratt, linear in both, whatever the strings.
 */
function overhang(text: string, secret: string): number {
  const fail = new Int32Array(secret.length);
  for (let i = 1, k = 0; i < secret.length; i++) {
    while (k > 0 && secret.charCodeAt(i) !== secret.charCodeAt(k)) k = fail[k - 1]!;
    if (secret.charCodeAt(i) === secret.charCodeAt(k)) k++;
    fail[i] = k;
  }
  let k = 0;
  for (let i = 0; i < text.length; i++) {
    if (k === secret.length) k = fail[k - 1]!;
    while (k > 0 && text.charCodeAt(i) !== secret.charCodeAt(k)) k = fail[k - 1]!;
    if (text.charCodeAt(i) === secret.charCodeAt(k)) k++;
  }
  return k === secret.length ? fail[k - 1]! : k;
}

/**
 * The excerpt of an error body: the request's secrets masked in all that was read, and
 * only then cut to EXCERPT_LENGTH, so a secret across the cut is masked whole, not shown
 * in part. When the body was cut at the read cap, an end of it that begins a secret and
 * starts inside the excerpt is masked too.
 */
function bodyExcerpt(text: string, cut: boolean, secrets: readonly string[]): string {
  let out = masked(text, secrets);
  if (cut) {
    let from = out.length;
    for (const secret of secrets) {
      // Shorter secrets cannot reach back into the excerpt from the end.
      if (secret.length <= out.length - EXCERPT_LENGTH) continue;
      from = Math.min(from, out.length - overhang(out, secret));
    }
    if (from < Math.min(out.length, EXCERPT_LENGTH)) out = `${out.slice(0, from)}${MASK}`;
  }
  return out.slice(0, EXCERPT_LENGTH);
}

/** Remote text for a message: credentials and the request's secrets masked, then cut. */
function shownText(text: string, secrets: readonly string[]): string {
  const out = masked(maskConnectionString(text), secrets);
  return out.length > EXCERPT_LENGTH ? `${out.slice(0, EXCERPT_LENGTH)}…` : out;
}

/**
 * A redirect's target as errors show it: resolved against the request's URL, with its
 * query and fragment cut (`?…`, `#…`), where a server puts credentials of its own (a
 * presigned URL's signature, an OAuth token) that producers must not read; credentials
 * and the request's secrets masked in the rest.
 */
function shownLocation(location: string, request: PreparedRequest): string {
  let href = location;
  try {
    href = new URL(location, request.url).href;
  } catch {
    // Shown as sent.
  }
  const at = href.search(/[?#]/);
  return shownText(at < 0 ? href : `${href.slice(0, at + 1)}…`, request.secrets);
}

/** undici's codes for a request it refuses to send as given: retrying cannot help. */
const REFUSED_CODES = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
]);

/**
 * What an error of fetch's says went wrong, without what the request's args do not hold
 * (errors are read by producers): a system error by its call and code (`connect
 * ECONNREFUSED`, `getaddrinfo ENOTFOUND`, `ERR_TLS_CERT_ALTNAME_INVALID`), never its
 * message, which names the addresses a host resolved to or a certificate's names;
 * undici's own errors by message and code, the message cut before any parenthesis (where
 * `Connect Timeout Error (attempted addresses: ...)` lists addresses); its HTTP parser's,
 * whose messages are fixed text, whole (`Response does not match the HTTP/1.1 protocol
 * (Invalid header value char) (HPE_INVALID_HEADER_TOKEN)`); an error without a code by its
 * message (`bad port`); an AggregateError without one (several addresses tried) by
 * theirs. Undefined when it says nothing.
 */
function reasonOf(value: unknown, depth = 0): string | undefined {
  if (typeof value !== 'object' || value === null || depth > 2) return undefined;
  const { message, code, syscall, errors } = value as Record<string, unknown>;
  const text = typeof message === 'string' ? message : '';
  if (typeof code === 'string' && code !== '') {
    if (code.startsWith('HPE_') || code.startsWith('UND_ERR')) {
      const fixed = (code.startsWith('UND_ERR') ? text.split(' (')[0]! : text).trim();
      return fixed ? `${fixed} (${code})` : code;
    }
    return typeof syscall === 'string' && syscall !== '' ? `${syscall} ${code}` : code;
  }
  if (!text && Array.isArray(errors)) {
    return [...new Set(errors.map((e) => reasonOf(e, depth + 1)).filter(Boolean))].join('; ') || undefined;
  }
  return text || undefined;
}

/**
 * Rethrows a failed fetch (no answer) as an error that says why: fetch's own message is a
 * bare "fetch failed", its cause the reason (see reasonOf). The URL is shown as its
 * origin only, the reason with the request's secrets masked. A request undici refuses to
 * send as given, or to a port fetch never connects to, fails permanently: retrying cannot
 * help. An abort is rethrown as its reason (a cancel, a lost lease, the timeout).
 */
function requestFailed(error: unknown, request: PreparedRequest, signal: AbortSignal): never {
  if (signal.aborted) throw signal.reason;
  const cause = (error as { cause?: unknown } | null)?.cause;
  // Refused by the destination policy while connecting: asking again cannot help.
  if (cause instanceof HttpDestinationError)
    throw new PermanentError(`HTTP step: request to ${request.shownUrl} refused: ${cause.message}`, {
      cause,
    });
  const code = (cause as { code?: unknown } | null)?.code;
  const reason = shownText(reasonOf(cause) ?? reasonOf(error) ?? 'no reason given', request.secrets);
  if ((typeof code === 'string' && REFUSED_CODES.has(code)) || reason === 'bad port') {
    throw new PermanentError(`HTTP step: the request cannot be made: ${reason}`, { cause: error });
  }
  throw new Error(`HTTP step: request to ${request.shownUrl} failed: ${reason}`, { cause: error });
}

async function invoke(
  args: HttpStepArgs,
  ctx: StepContext,
  policy: HttpDestinationPolicy | null,
  transport: Transport,
): Promise<unknown> {
  let request: PreparedRequest;
  try {
    request = prepare(args, ctx.idempotencyKey);
  } catch (error) {
    // Retrying cannot fix the arguments.
    throw new PermanentError(`HTTP step: ${(error as Error).message}`, { cause: error });
  }
  try {
    policy?.check(new URL(request.url));
  } catch (error) {
    throw new PermanentError(
      `HTTP step: request to ${request.shownUrl} refused: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  // Aborted by a cancel, a lost lease or a stopping worker, or by the attempt's timeout;
  // the timer runs until the body is read, not just until the headers arrive. Composed by
  // hand and kept referenced until the request ends: on Node 20 a signal from
  // AbortSignal.any() can be garbage-collected before it fires, leaving fetch hanging.
  const controller = new AbortController();
  const timer = setTimeout(
    () =>
      controller.abort(new Error(`HTTP step timed out after ${request.timeoutMs} ms: ${request.shownUrl}`)),
    request.timeoutMs,
  );
  const onAbort = () => controller.abort(ctx.signal.reason);
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await attempt(request, controller.signal, ctx, transport);
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
  }
}

/** The HTTP step's definition, checking its calls' arguments when they are made. */
function httpStepDefinition(policy: HttpDestinationPolicy | null): StepDefinition<HttpStepArgs> {
  const transport = policy ? policyTransport(policy) : GLOBAL_FETCH;
  const definition = defineStep<HttpStepArgs>('stepping.http', (args, ctx) =>
    invoke(args, ctx, policy, transport),
  );
  return Object.assign(
    (args: HttpStepArgs, options?: StepCallOptions) => {
      try {
        prepare(args, undefined);
      } catch (error) {
        throw new EnqueueValidationError(`httpStep: ${(error as Error).message}`, { cause: error });
      }
      return definition(args, options);
    },
    {
      stepName: definition.stepName,
      handler: definition.handler,
      options: definition.options,
      kind: definition.kind,
    },
  );
}

/**
 * The HTTP step: `httpStep({ url, method, headers, body, timeoutMs })` makes a step call
 * (its arguments checked at once: EnqueueValidationError); add `httpStep` to a worker's
 * `steps` to run it. Sends `Idempotency-Key: <jobId>:<step>`. It sends requests wherever
 * their URL says: a worker that can reach what producers must not call should run
 * `createHttpStep({ allowHosts, denyPrivateAddresses })` instead.
 */
export const httpStep: StepDefinition<HttpStepArgs> = httpStepDefinition(null);

/**
 * The HTTP step (same name, same calls as httpStep) whose requests may go only where
 * `options` allow; any other fails permanently, naming the host. Options are checked at
 * once (InvalidArgumentError).
 */
export function createHttpStep(options: HttpDestinationOptions): StepDefinition<HttpStepArgs> {
  return httpStepDefinition(new HttpDestinationPolicy(options));
}
