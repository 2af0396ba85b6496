/**
 * Runs one leased unit's handler and classifies what happened. Knows nothing of batching
 * or leases. A transactional unit runs inside a transaction that stays open after a
 * success, so the report can commit in it (see settle.ts); its `ctx.tx` refuses queries
 * once the attempt has ended, and after a timeout or abort its connection is destroyed
 * (never returned to the pool) only once the handler has settled or a bounded wait passed.
 */
import type pg from 'pg';

import type { LeasedUnit } from '../db/engine.js';
import { PermanentError, SteppingError } from '../errors.js';
import { type AnyStepDefinition, type RetryLater, retryLaterDelay } from '../steps.js';
import { asError } from './error-record.js';
import { HandlerContext } from './handler-context.js';
import type { LazyAbort } from './lazy-abort.js';
import { encodeResult } from './result.js';

/** How long a transactional handler that outlived its attempt (timeout, abort) may take to return. */
export const TX_SETTLE_MS = 5000;

/** A transactional attempt's open transaction, handed to the report. */
export interface OpenTransaction {
  readonly client: pg.PoolClient;
  /** Commits or rolls back, then returns the connection (destroying it when broken). */
  finish(commit: boolean): Promise<void>;
}

/** What a handler's run amounts to. */
export type Outcome =
  | { kind: 'success'; resultJson: string | null; result: unknown; tx: OpenTransaction | null }
  | { kind: 'failure'; error: Error; permanent: boolean }
  | { kind: 'later'; delayMs: number };

function isRetryLater(value: unknown): value is RetryLater {
  return typeof value === 'object' && value !== null && (value as RetryLater).kind === 'stepping.retryLater';
}

/** Thrown by a handler to say "not yet": same as returning ctx.retryLater(ms). */
export class RetryLaterSignal extends Error {
  override name = 'RetryLaterSignal';
  readonly delayMs: number;
  constructor(delayMs: number) {
    const ms = retryLaterDelay(delayMs);
    super(`retry later in ${ms} ms`);
    this.delayMs = ms;
  }
}

/** A query on ctx.tx after its attempt ended. */
export class AttemptEndedError extends SteppingError {
  override name = 'AttemptEndedError';
}

/**
 * ctx.tx: the transaction's client, refusing queries (and release/end) once `ended()` says
 * the attempt is over, so a handler that outlives its timeout can never write outside the
 * transaction that was rolled back.
 */
function guardedClient(client: pg.PoolClient, ended: () => boolean, stepName: string): pg.PoolClient {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'query') {
        return (...args: unknown[]) => {
          if (ended()) {
            throw new AttemptEndedError(
              `step ${stepName}: ctx.tx was used after its attempt ended (timeout, abort or return); nothing was written`,
            );
          }
          return (target.query as (...a: unknown[]) => unknown)(...args);
        };
      }
      if (property === 'release' || property === 'end') {
        return () => {
          throw new AttemptEndedError(
            `step ${stepName}: ctx.tx belongs to the worker; do not release or end it`,
          );
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Everything runUnit needs besides the unit. */
export interface RunDeps {
  pool: pg.Pool;
  database: string;
  /**
   * Waits until a transactional handler may hold a pool connection for its whole run:
   * transactions may never take every connection, or heartbeats and reports would starve
   * and healthy leases lapse.
   */
  acquireTransaction(): Promise<() => void>;
}

/** "Not yet" delay when a transactional attempt could not even open its transaction. */
const TX_OPEN_RETRY_MS = 1000;

/** Runs the handler of `unit`; never throws. */
export async function runUnit(
  unit: LeasedUnit,
  definition: AnyStepDefinition,
  abort: LazyAbort,
  deps: RunDeps,
): Promise<Outcome> {
  const timeoutMs = definition.options.timeoutMs;
  const transactional = definition.options.transactional === true && unit.phase === 'forward';
  let ended = false;
  let client: pg.PoolClient | undefined;
  // pg-pool listens for errors only on idle clients: a checked-out connection killed by the
  // server (terminate, restart) would otherwise crash the process. Remember it instead.
  let broken: Error | undefined;
  const onClientError = (error: Error) => (broken = error);
  let releasePermit: (() => void) | undefined;
  /** Returns the connection to the pool, or destroys it (broken, or its transaction left open). */
  const releaseClient = (destroy: boolean) => {
    const c = client;
    client = undefined;
    if (c) {
      c.off('error', onClientError);
      c.release(destroy ? (broken ?? new Error('attempt ended with its transaction open')) : broken);
    }
    releasePermit?.();
  };

  if (transactional) {
    // Opening the transaction is the worker's part, not the handler's: when it fails
    // (database away, connection killed) the attempt is "not yet", never counted.
    try {
      releasePermit = await deps.acquireTransaction();
      client = await deps.pool.connect();
      client.on('error', onClientError);
      await client.query('BEGIN');
    } catch {
      releaseClient(true);
      return { kind: 'later', delayMs: TX_OPEN_RETRY_MS };
    }
  }

  const handlerDone = (async (): Promise<Outcome> => {
    const ctx = new HandlerContext(
      unit,
      abort,
      deps.database,
      client ? guardedClient(client, () => ended, unit.name) : undefined,
    );
    const value: unknown = await definition.handler(unit.args, ctx);
    if (isRetryLater(value)) return { kind: 'later', delayMs: value.delayMs };
    // A compensation's return value is not stored: it need not be JSON.
    if (unit.phase === 'compensate')
      return { kind: 'success', resultJson: null, result: undefined, tx: null };
    return { kind: 'success', resultJson: encodeResult(value, unit.name), result: value, tx: null };
  })().catch((thrown: unknown): Outcome => {
    if (thrown instanceof RetryLaterSignal) return { kind: 'later', delayMs: thrown.delayMs };
    const error = asError(thrown);
    // By name too, so a PermanentError from another copy of the package still counts.
    const permanent = thrown instanceof PermanentError || error.name === 'PermanentError';
    return { kind: 'failure', error, permanent };
  });

  // Only the timeout ends an attempt before its handler returns: after a cancel or a lost
  // lease the handler is expected to stop by itself, and its report decides what happens.
  // Without a timeout there is nothing to race (the usual case: no timer, no extra promises).
  if (timeoutMs === undefined) {
    const outcome = await handlerDone;
    ended = true;
    return await afterHandler(outcome);
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => {
      const error = new Error(`step ${unit.name} timed out after ${timeoutMs} ms`);
      // Before the abort: a handler woken by it must already find ctx.tx closed.
      ended = true;
      abort.abort(error);
      resolve({ kind: 'failure', error, permanent: false });
    }, timeoutMs);
  });
  const first = await Promise.race([
    handlerDone.then((outcome) => ({ outcome, handlerReturned: true })),
    timedOut.then((outcome) => ({ outcome, handlerReturned: false })),
  ]);
  clearTimeout(timer);
  ended = true;
  const { outcome } = first;

  if (!first.handlerReturned) {
    // Timed out while the handler still runs. ctx.tx already refuses new queries; give the
    // handler a bounded time to notice its aborted signal and return, so its retry does not
    // overlap it, then destroy a transactional connection: that ends the transaction on the
    // server without committing anything the handler wrote.
    let settle: NodeJS.Timeout | undefined;
    await Promise.race([
      handlerDone,
      new Promise<void>((resolve) => (settle = setTimeout(resolve, TX_SETTLE_MS))),
    ]);
    clearTimeout(settle);
    releaseClient(true);
    return outcome;
  }
  return await afterHandler(outcome);

  /** The handler returned: hand a successful transaction to the report, or roll it back. */
  async function afterHandler(outcome: Outcome): Promise<Outcome> {
    const held = client;
    if (!held) {
      releasePermit?.();
      return outcome;
    }
    if (outcome.kind === 'success') {
      // The report commits (or rolls back) in this transaction; see settle.ts.
      const open: OpenTransaction = {
        client: held,
        finish: async (commit) => {
          try {
            await held.query(commit ? 'COMMIT' : 'ROLLBACK');
            releaseClient(false);
          } catch (error) {
            releaseClient(true);
            throw error;
          }
        },
      };
      return { ...outcome, tx: open };
    }
    // Failed or not yet: nothing the handler wrote may stay.
    try {
      await held.query('ROLLBACK');
      releaseClient(false);
    } catch {
      releaseClient(true);
    }
    return outcome;
  }
}
