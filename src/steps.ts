/**
 * Step definitions: a name, a handler, options. Calling a definition with arguments makes
 * a StepCall, the serialisable thing that enqueue takes. Producers that do not import
 * handler code pass plain `{ name, args }` objects instead.
 */
import type pg from 'pg';

/** Returned by `ctx.retryLater(ms)`: run this step again later without counting a failed attempt. */
export interface RetryLater {
  readonly kind: 'stepping.retryLater';
  readonly delayMs: number;
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
  /** Identifier of the database the job lives in (name, never credentials). */
  readonly database: string;
  /** Only for transactional steps: a client inside the transaction that also records this step as done. */
  readonly tx: pg.ClientBase | undefined;
  /** Returns a marker: "not yet" — run again after `delayMs` without counting a failure. */
  retryLater(delayMs: number): RetryLater;
}

/** A step handler. Throw to fail the attempt; throw PermanentError to end the forward path. */
export type StepHandler<A> = (args: A, ctx: StepContext) => Promise<unknown> | unknown;

/** Retry backoff: delay = min(maxMs, baseMs * 2^(attempt-1)), times a random factor in [0.5, 1). */
export interface BackoffOptions {
  /** First delay's upper bound. Default 1000 ms. */
  baseMs?: number;
  /** Cap. Default 3,600,000 ms (1 hour). */
  maxMs?: number;
}

/** The compensating step of a step: a name (args are the step's own) or a function of the step's args. */
export type CompensationSpec<A> = string | ((args: A) => { name: string; args?: unknown });

/** Options fixed where a step is defined. */
export interface StepOptions<A = unknown> {
  /** Attempts before the forward path ends (permanent failure). Default: unlimited. */
  maxAttempts?: number;
  /** Retry delays. */
  backoff?: BackoffOptions;
  /** Compensating step run (in reverse order) when the job fails permanently or is cancelled with compensation. */
  compensate?: CompensationSpec<A>;
  /** Run the handler inside the transaction that records the step done; the handler gets `ctx.tx`. */
  transactional?: boolean;
  /** Abort the handler's signal and fail the attempt after this long. Default: no timeout. */
  timeoutMs?: number;
}

/** Per-call overrides at enqueue time. */
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
  readonly transactional?: boolean;
}

/** A defined step: callable to build StepCalls, and carrying the handler for workers. */
export interface StepDefinition<A = unknown> {
  (args: A, options?: StepCallOptions): StepCall<A>;
  readonly stepName: string;
  readonly handler: StepHandler<A>;
  readonly options: Readonly<StepOptions<A>>;
  readonly kind: 'stepping.step';
}

/** Any step definition, whatever its argument type (for worker step lists). */
// Handlers are contravariant in their args, so a list of mixed steps needs this erasure.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyStepDefinition = StepDefinition<any>;

/** Defines a step: `defineStep('mail.send', async (args: {to: string}, ctx) => {...}, { maxAttempts: 5 })`. */
export function defineStep<A>(
  name: string,
  handler: StepHandler<A>,
  options: StepOptions<A> = {},
): StepDefinition<A> {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new TypeError(`defineStep: the name must be 1 to 200 characters, got ${JSON.stringify(name)}`);
  }
  if (typeof handler !== 'function')
    throw new TypeError(`defineStep(${name}): the handler must be a function`);
  const frozen = Object.freeze({ ...options });
  const call = (args: A, callOptions?: StepCallOptions): StepCall<A> => {
    const compensation =
      callOptions?.compensate ??
      (typeof frozen.compensate === 'string'
        ? { name: frozen.compensate, args }
        : typeof frozen.compensate === 'function'
          ? frozen.compensate(args)
          : undefined);
    const merged: StepCallOptions = {
      ...(frozen.maxAttempts !== undefined ? { maxAttempts: frozen.maxAttempts } : {}),
      ...(frozen.backoff !== undefined ? { backoff: frozen.backoff } : {}),
      ...callOptions,
      ...(compensation ? { compensate: compensation } : {}),
    };
    return { name, args, options: merged, ...(frozen.transactional ? { transactional: true } : {}) };
  };
  return Object.assign(call, { stepName: name, handler, options: frozen, kind: 'stepping.step' as const });
}

/** True for values made by defineStep. */
export function isStepDefinition(value: unknown): value is AnyStepDefinition {
  return typeof value === 'function' && (value as { kind?: unknown }).kind === 'stepping.step';
}
