/**
 * Step definitions: a name, a handler, options. Calling a definition with arguments makes
 * a StepCall, the serialisable thing that enqueue takes. Producers that do not import
 * handler code pass plain `{ name, args }` objects instead: the worker's definition decides
 * how a step runs (transactional, timeout, compensation, maxAttempts, backoff); options
 * given explicitly at enqueue (StepCallOptions, or the job's maxAttempts) override it.
 */
import type pg from 'pg';

import { checkBackoff, checkInteger, checkText, fail, unknownKey } from './enqueue/checks.js';
import { describeValue, printable } from './enqueue/describe.js';
import { ConfigError, EnqueueValidationError, InvalidArgumentError } from './errors.js';
import { MAX_INT, MAX_LEASE_MS, MAX_NAME_LENGTH, MAX_RETRY_LATER_MS } from './limits.js';

/** Returned by `ctx.retryLater(ms)`: run this step again later without counting a failed attempt. */
export interface RetryLater {
  readonly kind: 'stepping.retryLater';
  readonly delayMs: number;
}

/**
 * The markers ctx.retryLater made. Only these mean "not yet": a returned object of the same
 * shape (a remote API's JSON answer, say) is a result like any other, so no producer or
 * remote server can make a step wait without end and without counting attempts.
 */
const retryLaterMarkers = new WeakSet<object>();

/** A "not yet" marker for `delayMs` (checked and clamped by retryLaterDelay). */
export function retryLaterMarker(delayMs: unknown): RetryLater {
  const marker: RetryLater = Object.freeze({
    kind: 'stepping.retryLater',
    delayMs: retryLaterDelay(delayMs),
  });
  retryLaterMarkers.add(marker);
  return marker;
}

/** True only for a marker made by retryLaterMarker (never throws, whatever the value). */
export function isRetryLater(value: unknown): value is RetryLater {
  return typeof value === 'object' && value !== null && retryLaterMarkers.has(value);
}

/**
 * A "not yet" delay, checked and clamped: a non-finite or non-number delay is a caller's
 * mistake (thrown at the call); the rest is clamped to [0, MAX_RETRY_LATER_MS].
 */
export function retryLaterDelay(delayMs: unknown): number {
  if (typeof delayMs !== 'number' || !Number.isFinite(delayMs)) {
    throw new InvalidArgumentError(
      `retryLater(ms) needs a finite number of milliseconds, got ${typeof delayMs === 'number' ? delayMs : typeof delayMs}`,
    );
  }
  return Math.min(MAX_RETRY_LATER_MS, Math.max(0, Math.round(delayMs)));
}

/** What a handler gets besides its arguments. */
export interface StepContext {
  /** The job's id (a bigint, as a string). */
  readonly jobId: string;
  /** 0-based index of this step in its job. */
  readonly stepIndex: number;
  /** Number of steps in the job. */
  readonly stepCount: number;
  /** 1 on the first attempt; counts attempts of this step (or of this compensation). */
  readonly attempt: number;
  /** `forward` for a step, `compensate` when this handler runs as a compensation. */
  readonly phase: 'forward' | 'compensate';
  /** Stable across retries of this step (and different for its compensation): pass it to remote APIs. */
  readonly idempotencyKey: string;
  /** The job's queue. */
  readonly queue: string;
  /** Aborted when the job is cancelled, the lease is lost, the step times out or the worker stops hard. */
  readonly signal: AbortSignal;
  /** Identifier of the database the job lives in (`host:port/dbname` or its configured id; never credentials). */
  readonly database: string;
  /**
   * Results of the job's steps that returned a value, by step index (`results[0]` is the
   * first step's). A step sees the results of the steps before it; a compensation sees all.
   */
  readonly results: readonly unknown[];
  /**
   * Only for transactional steps: a client inside the transaction that also records this
   * step as done. It refuses queries once the attempt has ended (timeout, abort, return).
   */
  readonly tx: pg.ClientBase | undefined;
  /** Returns a marker: "not yet" — run again after `delayMs` (clamped to 0..7 days) without counting a failure. */
  retryLater(delayMs: number): RetryLater;
}

/**
 * A step handler. Return a JSON value to store it as the step's result (seen by later
 * steps, by the compensation and by waitForJob); throw to fail the attempt; throw
 * PermanentError to end the forward path.
 */
export type StepHandler<A, R = unknown> = (
  args: A,
  ctx: StepContext,
) => Promise<R | RetryLater> | R | RetryLater;

/** Retry backoff: delay = min(maxMs, baseMs * 2^(attempt-1)), times a random factor in [0.5, 1). */
export interface BackoffOptions {
  /** First delay's upper bound. Default 1000 ms. */
  baseMs?: number;
  /** Cap. Default 3,600,000 ms (1 hour). */
  maxMs?: number;
}

/**
 * The compensating step of a step: a step name (its args are the step's own), or a
 * function of the step's args and result (`result` is undefined when the step itself
 * failed: its own compensation runs too and must tolerate "nothing to undo").
 */
export type CompensationSpec<A, R = unknown> =
  string | ((args: A, result: R | undefined) => { name: string; args?: unknown });

/** Options fixed where a step is defined; the worker applies them. */
export interface StepOptions<A = unknown, R = unknown> {
  /** Attempts before the forward path ends (permanent failure). Default: unlimited. */
  maxAttempts?: number;
  /** Retry delays. */
  backoff?: BackoffOptions;
  /** Compensating step run (in reverse order) when the job fails permanently or is cancelled with compensation. */
  compensate?: CompensationSpec<A, R>;
  /** Run the handler inside the transaction that records the step done; the handler gets `ctx.tx`. */
  transactional?: boolean;
  /**
   * A transactional step's isolation level; the worker opens its transaction in it. In
   * `repeatable read` and `serializable` (which need timeoutMs) the lease is extended once,
   * before the transaction, past timeoutMs, and not heart-beaten while it is open: a
   * heartbeat changes the job's row, which such a transaction could then not complete.
   * Default: `read committed`, whatever the database's default_transaction_isolation.
   */
  isolation?: IsolationLevel;
  /** Abort the handler's signal and fail the attempt after this long. Default: no timeout. */
  timeoutMs?: number;
}

/** A transaction isolation level as PostgreSQL spells it. */
export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

/** Longest timeoutMs of an isolated step: its lease covers it, and a lease is at most MAX_LEASE_MS. */
const MAX_ISOLATED_TIMEOUT_MS = MAX_LEASE_MS - 60_000;

/** The levels of StepOptions.isolation. */
export const ISOLATION_LEVELS: readonly IsolationLevel[] = [
  'read committed',
  'repeatable read',
  'serializable',
];

/** Per-call overrides at enqueue time: they take precedence over the worker's definition. */
export interface StepCallOptions {
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** Explicit compensation for this call, overriding the definition's. */
  compensate?: { name: string; args?: unknown };
}

/** A step as enqueued: a name and JSON-serialisable arguments. */
export interface StepCall<A = unknown> {
  readonly name: string;
  readonly args?: A;
  readonly options?: StepCallOptions;
}

/** A defined step: callable to build StepCalls, and carrying the handler for workers. */
export interface StepDefinition<A = unknown, R = unknown> {
  (args: A, options?: StepCallOptions): StepCall<A>;
  readonly stepName: string;
  readonly handler: StepHandler<A, R>;
  readonly options: Readonly<StepOptions<A, R>>;
  readonly kind: 'stepping.step';
}

/**
 * Any step definition, whatever its argument and result types (for worker step lists).
 * Handlers are contravariant in their args, so a list of mixed steps needs this erasure;
 * the result is erased to `never` in the compensation (it only ever receives undefined
 * or the handler's own result) and to `unknown` in the handler.
 */
export interface AnyStepDefinition {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (args: any, options?: StepCallOptions): StepCall;
  readonly stepName: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly handler: StepHandler<any, unknown>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly options: Readonly<StepOptions<any, never>>;
  readonly kind: 'stepping.step';
}

/** Options of a step definition (StepOptions). */
const STEP_OPTION_NAMES: readonly string[] = [
  'maxAttempts',
  'backoff',
  'compensate',
  'transactional',
  'isolation',
  'timeoutMs',
];

/**
 * Checks a definition's options against the ranges enqueue applies to the same options
 * (src/limits.ts), so a mistake fails at defineStep rather than in every attempt (a
 * `timeoutMs: 0` step would time out forever). Throws EnqueueValidationError; defineStep
 * turns it into ConfigError.
 */
function checkStepOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    fail(`options must be an object, got ${describeValue(options)}`);
  }
  const unknown = unknownKey(options, STEP_OPTION_NAMES);
  if (unknown !== undefined) fail(`unknown option ${unknown} (known: ${STEP_OPTION_NAMES.join(', ')})`);
  const { maxAttempts, backoff, compensate, transactional, isolation, timeoutMs } = options as Record<
    string,
    unknown
  >;
  if (maxAttempts !== undefined) checkInteger(maxAttempts, 'maxAttempts', 1, MAX_INT);
  if (backoff !== undefined) checkBackoff(backoff, 'backoff');
  if (compensate !== undefined) {
    if (typeof compensate === 'string') checkText(compensate, 'compensate (a step name)', MAX_NAME_LENGTH);
    else if (typeof compensate !== 'function') {
      fail(
        `compensate must be a step name or a function (args, result) => ({ name, args }), got ${describeValue(compensate)}`,
      );
    }
  }
  if (transactional !== undefined && typeof transactional !== 'boolean') {
    fail(`transactional must be true or false, got ${describeValue(transactional)}`);
  }
  if (isolation !== undefined) {
    const level = ISOLATION_LEVELS.find((l) => l === isolation);
    if (level === undefined)
      fail(
        `isolation must be 'read committed', 'repeatable read' or 'serializable', got ${describeValue(isolation)}`,
      );
    if (transactional !== true) fail('isolation is for transactional steps (transactional: true)');
    if (level !== 'read committed' && timeoutMs === undefined)
      fail(`isolation ${level} needs timeoutMs: its lease is held for that long without heartbeats`);
    if (level !== 'read committed' && typeof timeoutMs === 'number' && timeoutMs > MAX_ISOLATED_TIMEOUT_MS)
      fail(
        `isolation ${level} takes timeoutMs up to ${MAX_ISOLATED_TIMEOUT_MS} (the longest lease, less a minute)`,
      );
  }
  // MAX_INT is also setTimeout's limit: a longer delay would fire at once.
  if (
    timeoutMs !== undefined &&
    (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_INT)
  ) {
    fail(
      `timeoutMs must be a number of milliseconds from 1 to ${MAX_INT} (setTimeout's limit), got ${describeValue(timeoutMs)}`,
    );
  }
}

/**
 * Defines a step: `defineStep('mail.send', async (args: {to: string}, ctx) => {...}, { maxAttempts: 5 })`.
 * Calling the definition makes a step call carrying only the options given at that call;
 * the definition's own options are applied by the worker that runs the step.
 */
export function defineStep<A, R = unknown>(
  name: string,
  handler: StepHandler<A, R>,
  options: StepOptions<A, R> = {},
): StepDefinition<A, R> {
  try {
    checkText(name, 'defineStep: the step name', MAX_NAME_LENGTH);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  if (typeof handler !== 'function')
    throw new ConfigError(`defineStep(${name}): the handler must be a function`);
  try {
    checkStepOptions(options);
  } catch (error) {
    if (!(error instanceof EnqueueValidationError)) throw error;
    throw new ConfigError(`defineStep(${printable(name)}): ${error.message}`);
  }
  const frozen = Object.freeze({ ...options });
  const call = (args: A, callOptions?: StepCallOptions): StepCall<A> =>
    callOptions === undefined ? { name, args } : { name, args, options: callOptions };
  return Object.assign(call, { stepName: name, handler, options: frozen, kind: 'stepping.step' as const });
}

/** True for values made by defineStep. */
export function isStepDefinition(value: unknown): value is AnyStepDefinition {
  return typeof value === 'function' && (value as { kind?: unknown }).kind === 'stepping.step';
}
