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
    return this.#abort.signal;
  }

  get results(): readonly unknown[] {
    return (this.#results ??= resultsArray(this.#unit));
  }

  /** Uses no `this`: `const { retryLater } = ctx` works too. */
  retryLater(delayMs: number): RetryLater {
    return retryLaterMarker(delayMs);
  }
}
