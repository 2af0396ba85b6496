/**
 * The built-in HTTP step (remote invoker). Status mapping follows DTM's conventions:
 * 2xx succeeds; 409 Conflict is a permanent failure (the forward path ends, compensations
 * run); 425 Too Early is "not yet" (run again later without counting a failed attempt,
 * after Retry-After seconds when the server sends it); every other status, a timeout or a
 * connection error fails the attempt and is retried with backoff.
 */
import { PermanentError } from './errors.js';
import { defineStep, type StepContext } from './steps.js';

/** Arguments of an HTTP step (stored as the step's JSON args). */
export interface HttpStepArgs {
  url: string;
  /** Default POST. */
  method?: string;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON (content-type application/json). */
  body?: unknown;
  /** Per-attempt timeout. Default 10,000 ms. */
  timeoutMs?: number;
  /** "Not yet" delay when a 425 carries no Retry-After. Default 1,000 ms. */
  notYetMs?: number;
}

/** Error of an attempt that got a non-2xx answer. */
export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    readonly status: number,
    readonly url: string,
    readonly bodyExcerpt: string,
  ) {
    super(`HTTP ${status} from ${url}${bodyExcerpt ? `: ${bodyExcerpt}` : ''}`);
  }
}

async function excerpt(response: Response): Promise<string> {
  try {
    return (await response.text()).slice(0, 500);
  } catch {
    return '';
  }
}

function retryAfterMs(response: Response, fallback: number): number {
  const header = response.headers.get('retry-after');
  if (header === null) return fallback;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? fallback : Math.max(0, at - Date.now());
}

async function invoke(args: HttpStepArgs, ctx: StepContext): Promise<unknown> {
  const headers: Record<string, string> = { 'idempotency-key': ctx.idempotencyKey, ...args.headers };
  let body: string | undefined;
  if (typeof args.body === 'string') {
    body = args.body;
  } else if (args.body !== undefined) {
    body = JSON.stringify(args.body);
    headers['content-type'] ??= 'application/json';
  }
  // Aborted by a cancel, a lost lease or a stopping worker, or by the attempt's timeout.
  // Composed by hand and kept referenced until the request ends: on Node 20 a signal from
  // AbortSignal.any() can be garbage-collected before it fires, leaving fetch hanging.
  const timeoutMs = args.timeoutMs ?? 10_000;
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`HTTP step timed out after ${timeoutMs} ms: ${args.url}`)),
    timeoutMs,
  );
  const onAbort = () => controller.abort(ctx.signal.reason);
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener('abort', onAbort, { once: true });
  let response: Response;
  try {
    response = await fetch(args.url, {
      method: args.method ?? 'POST',
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: controller.signal,
    });
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
  }
  if (response.ok) {
    await response.body?.cancel();
    return undefined;
  }
  if (response.status === 425) {
    const ms = retryAfterMs(response, args.notYetMs ?? 1000);
    await response.body?.cancel();
    return ctx.retryLater(ms);
  }
  const error = new HttpStatusError(response.status, args.url, await excerpt(response));
  if (response.status === 409) throw new PermanentError(error.message, { cause: error });
  throw error;
}

/**
 * The HTTP step: `httpStep({ url, method, headers, body, timeoutMs })` makes a step call;
 * add `httpStep` to a worker's `steps` to run it. Sends `Idempotency-Key: <jobId>:<step>`.
 */
export const httpStep = defineStep<HttpStepArgs>('stepping.http', invoke);
