/**
 * The ctx a handler receives. A class, not an object literal: `signal` and `results` are
 * made only when a handler reads them (most never do), and getters written into an object
 * literal cost a closure per unit and raised a drain's peak worker RSS from about 122 to
 * 150 MB; getters on the prototype cost nothing per unit. (So `{ ...ctx }` does not copy
 * `signal`, `results` or `retryLater`: pass ctx itself.)
 */
import type pg from 'pg';

import type { LeasedUnit } from '../db/engine.js';
import { type RetryLater, retryLaterMarker, type StepContext } from '../steps.js';
import type { LazyAbort } from './lazy-abort.js';

/** The results array a handler sees: stored results by step index, undefined where none (no holes). */
function resultsArray(unit: LeasedUnit): unknown[] {
  return Array.from({ length: unit.stepCount }, (_, index) => unit.results[index]);
}

/** Signals already given to a handler (and guarded), so a signal is guarded once. */
const guarded = new WeakSet<AbortSignal>();

type Listener = ((event: Event) => void) | { handleEvent(event: Event): void };

/** `listener` made unable to throw: an abort listener that throws must not end the worker. */
function quiet(listener: Listener): (this: unknown, event: Event) => void {
  return function (this: unknown, event: Event) {
    try {
      const returned: unknown =
        typeof listener === 'function' ? listener.call(this, event) : listener.handleEvent(event);
      // An async listener's rejection would be reported the same way.
      if (returned instanceof Promise) returned.catch(() => {});
    } catch {
      // The handler's own mistake, and its attempt is ending anyway.
    }
  };
}

/**
 * `signal` with its listeners, `onabort` included, kept from throwing. Node reports what an
 * EventTarget listener throws as an uncaught exception, which ends the process: a handler
 * whose abort listener throws would take the worker and every other running step down when
 * its step is cancelled, times out or the worker stops.
 */
function guardSignal(signal: AbortSignal): AbortSignal {
  if (guarded.has(signal)) return signal;
  guarded.add(signal);
  const wrappers = new WeakMap<object, (this: unknown, event: Event) => void>();
  const wrapped = (listener: Listener | null): Listener | null => {
    if (listener === null || (typeof listener !== 'function' && typeof listener !== 'object'))
      return listener;
    let wrapper = wrappers.get(listener);
    if (!wrapper) wrappers.set(listener, (wrapper = quiet(listener)));
    return wrapper;
  };
  // A listener added before the signal was guarded (the worker's own) is removed as itself.
  const registered = (listener: Listener | null): Listener | null =>
    (listener !== null && wrappers.get(listener)) || listener;
  // Called with what the handler passed (null and non-listeners included), as it would be.
  type Method = (type: string, listener: unknown, options?: unknown) => void;
  const add = signal.addEventListener.bind(signal) as Method;
  const remove = signal.removeEventListener.bind(signal) as Method;
  const handler = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'onabort');
  let onabort: unknown = null;
  Object.defineProperties(signal, {
    addEventListener: {
      value: (
        type: string,
        listener: Listener | null,
        options?: Parameters<AbortSignal['addEventListener']>[2],
      ) => add(type, wrapped(listener), options),
    },
    removeEventListener: {
      value: (
        type: string,
        listener: Listener | null,
        options?: Parameters<AbortSignal['removeEventListener']>[2],
      ) => remove(type, registered(listener), options),
    },
    onabort: {
      get: () => onabort,
      set: (value: unknown) => {
        onabort = value;
        handler?.set?.call(signal, typeof value === 'function' ? quiet(value as Listener) : value);
      },
    },
  });
  return signal;
}

/** StepContext of one attempt. */
export class HandlerContext implements StepContext {
  readonly jobId: string;
  readonly stepIndex: number;
  readonly stepCount: number;
  readonly attempt: number;
  readonly phase: 'forward' | 'compensate';
  readonly idempotencyKey: string;
  readonly queue: string;
  readonly database: string;
  readonly tx: pg.ClientBase | undefined;
  readonly #unit: LeasedUnit;
  readonly #abort: LazyAbort;
  #results: unknown[] | undefined;

  constructor(unit: LeasedUnit, abort: LazyAbort, database: string, tx: pg.ClientBase | undefined) {
    this.jobId = unit.jobId;
    this.stepIndex = unit.stepIndex;
    this.stepCount = unit.stepCount;
    this.attempt = unit.attempt;
    this.phase = unit.phase;
    this.idempotencyKey = `${unit.jobId}:${unit.stepIndex}${unit.phase === 'compensate' ? ':compensate' : ''}`;
    this.queue = unit.queue;
    this.database = database;
    this.tx = tx;
    this.#unit = unit;
    this.#abort = abort;
  }

  get signal(): AbortSignal {
    return guardSignal(this.#abort.signal);
  }

  get results(): readonly unknown[] {
    return (this.#results ??= resultsArray(this.#unit));
  }

  /** Uses no `this`: `const { retryLater } = ctx` works too. */
  retryLater(delayMs: number): RetryLater {
    return retryLaterMarker(delayMs);
  }
}
