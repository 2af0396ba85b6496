/**
 * ctx.tx: the client of a transactional attempt as its handler sees it. The transaction
 * belongs to the worker (the step's report commits in it), so the handler may not end it,
 * and once the attempt is over nothing it sends may reach the server. Refusals never throw
 * at the caller: they reject the promise, call the callback or fail the submitted query,
 * as a server error would, so a handler touching ctx.tx from a timer cannot crash the worker.
 */
import type pg from 'pg';

import { SteppingError } from '../errors.js';

/** A query on ctx.tx after its attempt ended, or one that would end the worker's transaction. */
export class AttemptEndedError extends SteppingError {
  override name = 'AttemptEndedError';
}

/** Leading whitespace and comments (PostgreSQL nests block comments; one level is enough to find the keyword). */
const LEADING = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/;
/**
 * Statements that end the transaction: COMMIT, END, ABORT, ROLLBACK (but not ROLLBACK
 * TO SAVEPOINT, which stays inside it) and PREPARE TRANSACTION (which detaches it).
 */
const ENDS_TRANSACTION =
  /^(?:commit|end|abort|rollback(?!\s+(?:(?:work|transaction)\s+)?to\b)|prepare\s+transaction)\b/i;

/** The statement keyword that would end the transaction, or null. Only the first statement is read. */
export function transactionEnd(text: unknown): string | null {
  if (typeof text !== 'string') return null;
  const rest = text.slice(text.match(LEADING)![0].length, 4096);
  const found = ENDS_TRANSACTION.exec(rest);
  return found ? found[0].toUpperCase().replace(/\s+/g, ' ') : null;
}

/** The text of a query call's first argument: a string, a config object or a submittable. */
function queryText(first: unknown): unknown {
  if (typeof first === 'string') return first;
  if (typeof first === 'object' && first !== null) {
    try {
      return (first as { text?: unknown }).text;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Fails a query call the way pg would: callback, submittable, or a rejected promise. */
function refuse(args: unknown[], error: Error): unknown {
  const [first] = args;
  const last = args[args.length - 1];
  if (args.length > 1 && typeof last === 'function') {
    process.nextTick(last as (e: Error) => void, error);
    return undefined;
  }
  if (typeof first === 'object' && first !== null) {
    const submittable = first as { submit?: unknown; handleError?: unknown; callback?: unknown };
    if (typeof submittable.submit === 'function' && typeof submittable.handleError === 'function') {
      process.nextTick(() => (submittable.handleError as (e: Error) => void).call(first, error));
      return first;
    }
    if (typeof submittable.callback === 'function') {
      process.nextTick(submittable.callback as (e: Error) => void, error);
      return undefined;
    }
  }
  return handled(Promise.reject(error));
}

/**
 * `value`, and when it is a promise, one whose rejection is never reported as unhandled: a
 * handler that forgot to await a ctx.tx query that fails (or is refused, or ended with its
 * attempt) would otherwise end the worker's process. Whoever awaits it still gets the
 * error, and the failed statement already fails the attempt (its transaction is aborted).
 */
function handled(value: unknown): unknown {
  if (value instanceof Promise) value.catch(() => {});
  return value;
}

/** EventEmitter methods that add a listener. */
const ADDS_LISTENER = new Set<string | symbol>([
  'on',
  'addListener',
  'once',
  'prependListener',
  'prependOnceListener',
]);

/** EventEmitter methods that remove listeners: through ctx.tx, only the handler's own. */
const REMOVES_LISTENER = new Set<string | symbol>(['off', 'removeListener', 'removeAllListeners']);

/** ctx.tx, and how to take the handler's listeners off the connection when the attempt ends. */
export interface GuardedClient {
  readonly tx: pg.PoolClient;
  /**
   * What ended the worker's transaction while the handler ran ('COMMIT', 'PREPARE
   * TRANSACTION', or 'no transaction open'), seen on the wire; null when nothing did.
   */
  endedBy(): string | null;
  /** Stops watching the wire for that: the worker's own statements come next. */
  unwatch(): void;
  /** Removes every listener the handler added through `tx` (the connection is pooled), and unwatches. */
  detach(): void;
}

/** The protocol messages of pg's connection that watchTransactionEnd reads. */
interface WireEvents {
  on(event: 'commandComplete', listener: (message: { text?: unknown }) => void): unknown;
  on(event: 'readyForQuery', listener: (message: { status?: unknown }) => void): unknown;
  off(event: string, listener: (...args: never[]) => void): unknown;
}

/**
 * Watches the server's answers to the handler's statements for the end of the worker's
 * transaction, whatever the query string hid it in: a COMMIT (also END and COMMIT PREPARED,
 * whose tag is COMMIT) or a PREPARE TRANSACTION completed, or the server became ready with
 * no transaction open (a ROLLBACK followed by statements that then committed on their own).
 * Read from the protocol messages as they pass (no query): seen even when a later statement
 * of the same string failed, which leaves pg no results to show. A ROLLBACK followed by
 * BEGIN in one string needs no mark: what ran between them joins the new transaction and is
 * rolled back with it.
 */
function watchTransactionEnd(client: pg.PoolClient): { endedBy(): string | null; unwatch(): void } {
  const connection = (client as unknown as { connection?: WireEvents }).connection;
  let endedBy: string | null = null;
  const onComplete = (message: { text?: unknown }) => {
    const tag = typeof message.text === 'string' ? message.text : '';
    if (tag === 'COMMIT' || tag.startsWith('COMMIT ') || tag === 'PREPARE TRANSACTION') endedBy ??= tag;
  };
  const onReady = (message: { status?: unknown }) => {
    if (message.status === 'I') endedBy ??= 'no transaction open';
  };
  connection?.on('commandComplete', onComplete);
  connection?.on('readyForQuery', onReady);
  let watching = connection !== undefined;
  return {
    endedBy: () => endedBy,
    unwatch() {
      if (!watching) return;
      watching = false;
      connection!.off('commandComplete', onComplete);
      connection!.off('readyForQuery', onReady);
    },
  };
}

/**
 * The handler's view of `client`: queries refused once `ended()` says the attempt is over
 * (so a handler that outlives its timeout can never write outside the transaction that was
 * rolled back), statements that would end the worker's transaction refused, release, end
 * and setTypeParser refused (the connection goes back to the pool through the worker, and
 * serves the worker's own queries), and listeners it adds
 * (`tx.on('notice', ...)`) remembered for `detach`: on a pooled connection they would
 * otherwise pile up and hear every later attempt's events; after the attempt ended, they
 * are not added. Removing listeners through `tx` (`off`, `removeListener`,
 * `removeAllListeners`) removes only those the handler added: the worker's own 'error'
 * listener keeps a connection the server ends from crashing the process.
 */
export function guardedClient(client: pg.PoolClient, ended: () => boolean, stepName: string): GuardedClient {
  const watch = watchTransactionEnd(client);
  const added: [event: string | symbol, listener: (...args: unknown[]) => void][] = [];
  const tx = new Proxy(client, {
    get(target, property, receiver) {
      if (ADDS_LISTENER.has(property)) {
        return (event: string | symbol, listener: (...args: unknown[]) => void) => {
          if (!ended()) {
            const add = Reflect.get(target, property, target) as (...a: unknown[]) => unknown;
            add.call(target, event, listener);
            added.push([event, listener]);
          }
          return receiver as unknown;
        };
      }
      if (REMOVES_LISTENER.has(property)) {
        const all = property === 'removeAllListeners';
        return (...args: unknown[]) => {
          const [event, listener] = args as [string | symbol | undefined, unknown];
          for (let i = added.length - 1; i >= 0; i--) {
            const [e, l] = added[i]!;
            if (all ? args.length === 0 || e === event : e === event && l === listener) {
              added.splice(i, 1);
              target.removeListener(e, l);
              // off/removeListener take off one registration, as EventEmitter does.
              if (!all) break;
            }
          }
          return receiver as unknown;
        };
      }
      if (property === 'query') {
        return (...args: unknown[]) => {
          if (ended()) {
            return refuse(
              args,
              new AttemptEndedError(
                `step ${stepName}: ctx.tx was used after its attempt ended (timeout, abort or return); nothing was written`,
              ),
            );
          }
          const control = transactionEnd(queryText(args[0]));
          if (control !== null) {
            return refuse(
              args,
              new AttemptEndedError(
                `step ${stepName}: ctx.tx cannot run ${control}: the transaction is the worker's, and it commits with the step's report (use SAVEPOINT and ROLLBACK TO SAVEPOINT inside it)`,
              ),
            );
          }
          return handled((target.query as (...a: unknown[]) => unknown)(...args));
        };
      }
      if (property === 'release' || property === 'end') {
        // Thrown at once, as the handler's own mistake (release is synchronous in pg).
        return () => {
          throw new AttemptEndedError(
            `step ${stepName}: ctx.tx belongs to the worker; do not release or end it`,
          );
        };
      }
      if (property === 'setTypeParser') {
        // A parser set on the client stays with the pooled connection, where the worker's
        // own claims and reports read jsonb, uuid and timestamps: one that turned jsonb into
        // text wedged every job whose report ran on it. Refused at once, like release.
        return () => {
          throw new AttemptEndedError(
            `step ${stepName}: ctx.tx cannot setTypeParser: it is the worker's pooled connection; pass types with the query instead ({ text, values, types: { getTypeParser } })`,
          );
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    tx,
    endedBy: () => watch.endedBy(),
    unwatch: () => watch.unwatch(),
    detach() {
      watch.unwatch();
      for (const [event, listener] of added.splice(0)) client.removeListener(event, listener);
    },
  };
}
