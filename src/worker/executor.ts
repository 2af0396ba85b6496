/**
 * Runs one leased unit's handler and classifies what happened. Knows nothing of batching
 * or leases. A transactional unit runs inside a transaction that stays open after a
 * success, so the report can commit in it (see settle.ts); its `ctx.tx` refuses queries
 * once the attempt has ended, and after a timeout or abort its connection is destroyed
 * (never returned to the pool) only once the handler has settled or a bounded wait passed.
 */
import { randomUUID } from 'node:crypto';

import type pg from 'pg';

import type { LeasedUnit } from '../db/engine.js';
import { type ServerProcess, serverProcessOf, terminateServerProcess } from '../db/server-process.js';
import { PermanentError } from '../errors.js';
import { MAX_LEASE_MS } from '../limits.js';
import { type AnyStepDefinition, type IsolationLevel, isRetryLater, retryLaterDelay } from '../steps.js';
import { MAX_TIMER_MS } from '../timers.js';
import { asError } from './error-record.js';
import { HandlerContext } from './handler-context.js';
import type { LazyAbort } from './lazy-abort.js';
import { encodeResult } from './result.js';
import { type GuardedClient, guardedClient } from './transaction-client.js';

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
  /** The worker's lease length (ms). */
  leaseMs: number;
  /**
   * Extends this unit's lease to `ms` from now through `client` (outside any transaction)
   * and stops its heartbeats until endQuiet(): for a REPEATABLE READ or SERIALIZABLE
   * transaction, which could not complete after a heartbeat changed the job's row. False
   * when the lease was lost.
   */
  holdLeaseQuietly(client: pg.PoolClient, ms: number): Promise<boolean>;
  /** Heartbeats resume (the isolated transaction ended). */
  endQuiet(): void;
}

/**
 * A transaction-local setting the worker gives a transactional attempt's transaction at
 * BEGIN, with a random token: still there when the handler returns, it is the same
 * transaction (one the handler ended with COMMIT or ROLLBACK, and maybe began again,
 * lost it). A SET, unlike a query, leaves the handler free to choose its isolation level
 * with its first statement.
 */
const ATTEMPT_SETTING = 'stepping.attempt_token';

/** The names of the statements made with SQL PREPARE in the session (they outlive a ROLLBACK too). */
const SQL_STATEMENTS =
  'ARRAY(SELECT name FROM pg_catalog.pg_prepared_statements WHERE from_sql) AS statements';

/**
 * Run in a transactional attempt's transaction after its handler returned: reads the
 * token, the SQL PREPAREd statements (dropped next, only when there are any) and whether
 * the handler made the transaction READ ONLY (the report cannot write in it), then
 * resets what the handler may have changed in the session. RESET ALL leaves the session
 * authorization and the role alone; CLOSE ALL ends cursors declared WITH HOLD, which would
 * survive the COMMIT. Inside the transaction, so a failed COMMIT needs no cleanup.
 */
const SESSION_RESET_AND_TOKEN =
  `SELECT pg_catalog.current_setting('${ATTEMPT_SETTING}', true) AS token, ${SQL_STATEMENTS}, ` +
  "pg_catalog.current_setting('transaction_read_only') AS read_only, " +
  'pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL AS wrote; ' +
  'RESET ALL; RESET SESSION AUTHORIZATION; RESET ROLE; SELECT pg_catalog.pg_advisory_unlock_all(); ' +
  'UNLISTEN *; DISCARD TEMP; CLOSE ALL';

/** After a rollback: what else of the handler's session state a ROLLBACK leaves. */
const ROLLBACK_AND_RESET = `ROLLBACK; SELECT pg_catalog.pg_advisory_unlock_all(); SELECT ${SQL_STATEMENTS}`;

/**
 * Drops the statements a handler made with SQL PREPARE (`names`, read by one of the
 * queries above): left on the pooled connection, the next attempt's PREPARE of the same
 * name would fail. Statements pg made for named queries (not from SQL) are pg's cache and
 * stay.
 */
async function deallocate(client: pg.PoolClient, names: unknown): Promise<void> {
  if (!Array.isArray(names) || names.length === 0) return;
  await client.query(names.map((name) => `DEALLOCATE ${client.escapeIdentifier(String(name))}`).join('; '));
}

/** The SQLSTATE of a server error, or null. */
function sqlState(error: unknown): string | null {
  try {
    const code = (error as { code?: unknown } | null)?.code;
    return typeof code === 'string' ? code : null;
  } catch {
    return null;
  }
}

/** `promise`, or 'busy' when it has not settled within TX_SETTLE_MS. */
async function withinSettle<T>(promise: Promise<T>): Promise<T | 'busy'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<'busy'>((resolve) => (timer = setTimeout(() => resolve('busy'), TX_SETTLE_MS))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a statement sent a cancel request (or its terminated process) may take to end. */
const STATEMENT_END_MS = 2000;

/** pg's own bookkeeping of a client's queries (not in its types). */
interface ClientQueues {
  _activeQuery?: unknown;
  _queryQueue?: unknown[];
  _sentQueryQueue?: unknown[];
}

/** True while `client` has a query on the wire or queued behind one. */
function queryInFlight(client: pg.PoolClient): boolean {
  const queues = client as unknown as ClientQueues;
  return (
    Boolean(queues._activeQuery) ||
    (queues._queryQueue?.length ?? 0) > 0 ||
    (queues._sentQueryQueue?.length ?? 0) > 0
  );
}

/** Resolves true once `client` has no query in flight (or it closed); false after `ms`. */
async function untilIdle(client: pg.PoolClient, ms: number): Promise<boolean> {
  if (!queryInFlight(client)) return true;
  let timer: NodeJS.Timeout | undefined;
  let check: (() => void) | undefined;
  try {
    return await new Promise<boolean>((resolve) => {
      check = () => {
        if (!queryInFlight(client)) resolve(true);
      };
      client.on('drain', check);
      client.on('end', check);
      client.on('error', check);
      timer = setTimeout(() => resolve(!queryInFlight(client)), ms);
    });
  } finally {
    clearTimeout(timer);
    if (check) {
      client.off('drain', check);
      client.off('end', check);
      client.off('error', check);
    }
  }
}

/** pg's Client as the cancel request below uses it (its connection, not its API). */
interface CancellingClient {
  host: string;
  port: number;
  connection: NodeJS.EventEmitter & {
    connect(port: number | string, host?: string): void;
    cancel(processID: number, secretKey: number): void;
    stream?: { destroy?(): void };
  };
}

/**
 * Sends PostgreSQL's cancel request for the statement `client` is running, on a connection
 * of its own (as psql's Ctrl-C does; pg has no public API for it). Unlike a terminate by
 * pid, it also works behind PgBouncer: the key the client got is the bouncer's, which
 * forwards the cancel to the server connection serving that client. Never throws.
 */
function sendCancel(client: pg.PoolClient, options: unknown): void {
  const { processID, secretKey } = client as unknown as { processID?: unknown; secretKey?: unknown };
  if (typeof processID !== 'number' || typeof secretKey !== 'number') return;
  try {
    const Client = client.constructor as new (config: unknown) => CancellingClient;
    const canceller = new Client(options);
    const con = canceller.connection;
    // A server out of reach must not crash the process with an unhandled 'error' event.
    con.on('error', () => {});
    con.once('connect', () => con.cancel(processID, secretKey));
    // The server closes a cancel connection at once; this only bounds a silent one.
    setTimeout(() => con.stream?.destroy?.(), STATEMENT_END_MS).unref();
    if (canceller.host.startsWith('/')) con.connect(`${canceller.host}/.s.PGSQL.${canceller.port}`);
    else con.connect(canceller.port, canceller.host);
  } catch {
    // No cancel: the terminate that follows (on a direct connection) still ends the process.
  }
}

/**
 * Terminates `process` through a connection of its own (the worker's pool may be ending:
 * stop() closes it while a given-up attempt ends), bounded by STATEMENT_END_MS. Never throws.
 */
async function terminateOnOwnConnection(
  client: pg.PoolClient,
  options: unknown,
  process: ServerProcess,
): Promise<void> {
  const Client = client.constructor as new (config: unknown) => pg.Client;
  let other: pg.Client | undefined;
  try {
    other = new Client(options);
    other.on('error', () => {});
    const own = other;
    const done = (async () => {
      await own.connect();
      await terminateServerProcess(own, process);
    })().catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      done,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, STATEMENT_END_MS))),
    ]);
    clearTimeout(timer);
  } catch {
    // Nothing more to try: the connection is destroyed next, and the statement runs to its end.
  } finally {
    other?.end().catch(() => {});
  }
}

/** StepOptions.isolation as SQL. */
const ISOLATION_SQL: Record<IsolationLevel, string> = {
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

/** "Not yet" delay when a transactional attempt could not even open its transaction. */
const TX_OPEN_RETRY_MS = 1000;

/**
 * A forward unit claimed more often than its maxAttempts allow: its earlier attempts ended
 * without a report (the worker died, hung past its lease or lost its connection each
 * time), and SQL counts those only by the claim. Failing it here, unrun, is what keeps a
 * step that crashes its worker from crashing every worker forever.
 */
function attemptsExhausted(unit: LeasedUnit, definition: AnyStepDefinition): Outcome | null {
  if (unit.phase !== 'forward') return null;
  const max = unit.maxAttempts ?? definition.options.maxAttempts;
  if (max === undefined || unit.attempt <= max) return null;
  const error = new Error(
    `step ${unit.name}: attempt ${unit.attempt - 1} ended without a report (its worker died, hung past its lease or lost its connection) and maxAttempts (${max}) was reached; it is not run again`,
  );
  return { kind: 'failure', error, permanent: true };
}

/**
 * A forward unit handed out after its job's deadline passed (deadlineInMs 0): the engine
 * does that only for a step that ran before without a report and whose compensation it
 * does not know, so that this failure report names the definition's compensation. The
 * step is not run again.
 */
function deadlinePassed(unit: LeasedUnit): Outcome | null {
  if (unit.phase !== 'forward' || unit.deadlineInMs === null || unit.deadlineInMs > 0) return null;
  const error = new Error(
    `deadline passed: the job's deadline passed before step ${unit.name} could run again (its last attempt ended without a report); it is not run`,
  );
  return { kind: 'failure', error, permanent: true };
}

/**
 * A forward unit of a cancelled job: the engine hands one out only for a step that ran
 * before without a report, whose job was cancelled with compensation, and whose
 * compensation it does not know, so that this failure report names the definition's
 * compensation. The step is not run again; the engine ends the job cancelled.
 */
function cancelled(unit: LeasedUnit): Outcome | null {
  if (unit.phase !== 'forward' || !unit.cancelRequested) return null;
  const error = new Error(
    `cancelled: the job was cancelled before step ${unit.name} could run again (its last attempt ended without a report); it is not run`,
  );
  return { kind: 'failure', error, permanent: true };
}

/** What a thrown value amounts to; never throws, whatever the value (revoked proxy, throwing getters). */
function thrownOutcome(thrown: unknown): Outcome {
  try {
    if (thrown instanceof RetryLaterSignal) return { kind: 'later', delayMs: thrown.delayMs };
  } catch {
    // A value whose prototype cannot be read is no signal of ours.
  }
  const error = asError(thrown);
  let permanent = false;
  try {
    // By name too, so a PermanentError from another copy of the package still counts. The
    // name is read again here, and asError may have returned the thrown value itself: a
    // getter that answered asError with a string may throw now.
    permanent = thrown instanceof PermanentError || error.name === 'PermanentError';
  } catch {
    permanent = false;
  }
  return { kind: 'failure', error, permanent };
}

/** What a handler's run amounts to when even its thrown value's outcome could not be made. */
function unreadableOutcome(): Outcome {
  return {
    kind: 'failure',
    error: new Error('the handler threw a value that could not be read'),
    permanent: false,
  };
}

/** How the race between a handler and its limits (timeout, abort of a transaction) ended. */
interface RaceEnd {
  outcome: Outcome;
  handlerReturned: boolean;
  /** The handler was already given its bounded time to return. */
  waited: boolean;
}

/** Runs the handler of `unit`; never throws. */
export async function runUnit(
  unit: LeasedUnit,
  definition: AnyStepDefinition,
  abort: LazyAbort,
  deps: RunDeps,
): Promise<Outcome> {
  const unrun = cancelled(unit) ?? attemptsExhausted(unit, definition) ?? deadlinePassed(unit);
  if (unrun) return unrun;
  // The step's timeout, or the time left until its job's deadline when that comes first.
  const stepTimeoutMs = definition.options.timeoutMs;
  const deadlineFirst =
    unit.deadlineInMs !== null && (stepTimeoutMs === undefined || unit.deadlineInMs < stepTimeoutMs);
  const timeoutMs = deadlineFirst ? unit.deadlineInMs! : stepTimeoutMs;
  const transactional = definition.options.transactional === true;
  let ended = false;
  let client: pg.PoolClient | undefined;
  /** The token set in the transaction at BEGIN (ATTEMPT_SETTING). */
  const token = transactional ? randomUUID() : undefined;
  /** The server process of the transaction's connection, to end a query the handler left running. */
  let backendPid: ServerProcess | undefined;
  /**
   * The handler made its transaction READ ONLY (`SET TRANSACTION ... READ ONLY`): it wrote
   * nothing durable, and the report, which writes, cannot run in it.
   */
  let readOnly = false;
  /** The transaction has an id: it wrote (PostgreSQL allows READ ONLY after writes). */
  let wrote = false;
  /** The handler ended the worker's transaction: its connection's session state is unknown. */
  let sessionUnknown = false;
  // pg-pool listens for errors only on idle clients: a checked-out connection killed by the
  // server (terminate, restart) would otherwise crash the process. Remember it instead: the
  // first one, the server's reason (a FATAL), before "Connection terminated unexpectedly".
  let broken: Error | undefined;
  const onClientError = (error: Error) => (broken ??= error);
  let releasePermit: (() => void) | undefined;
  /** The statement in flight on the transaction's connection was sent a cancel request. */
  let cancelSent = false;
  /**
   * A statement of the handler's still runs on an attempt given up (timeout, or no return
   * after an abort): cancel it at once, so the handler gets its error and can return, and
   * its row locks do not outlast the attempt.
   */
  const cancelInFlight = () => {
    if (client && !cancelSent && queryInFlight(client)) {
      cancelSent = true;
      sendCancel(client, deps.pool.options);
    }
  };
  /**
   * Ends what still runs on the transaction's connection before it is destroyed: PostgreSQL
   * does not notice a closed socket while a statement runs, so that statement would go on,
   * holding its locks, until it ends by itself. A cancel request first (through PgBouncer
   * too), then, when the statement is still running, a terminate of its server process
   * (on a direct connection only: behind PgBouncer the pid is the bouncer's and matches
   * nothing). Bounded: at most about 3 × STATEMENT_END_MS.
   */
  const endStatements = async (held: pg.PoolClient) => {
    if (!queryInFlight(held)) return;
    cancelInFlight();
    if (await untilIdle(held, STATEMENT_END_MS)) return;
    if (backendPid !== undefined) {
      await terminateOnOwnConnection(held, deps.pool.options, backendPid);
      await untilIdle(held, STATEMENT_END_MS);
    }
  };
  /** Heartbeats of this unit are held off while its isolated transaction is open. */
  let quiet = false;
  const isolation = transactional ? definition.options.isolation : undefined;
  const isolated = isolation === 'repeatable read' || isolation === 'serializable';
  /** Returns the connection to the pool, or destroys it (broken, or its transaction left open). */
  /** ctx.tx; its listeners are taken off the connection before it goes back to the pool. */
  let guarded: GuardedClient | undefined = undefined;
  const releaseClient = (destroy: boolean) => {
    if (quiet) {
      quiet = false;
      deps.endQuiet();
    }
    const c = client;
    client = undefined;
    guarded?.detach();
    if (c) {
      c.off('error', onClientError);
      c.release(destroy ? (broken ?? new Error('attempt ended with its transaction open')) : broken);
    }
    releasePermit?.();
    releasePermit = undefined;
  };

  if (transactional) {
    // Opening the transaction is the worker's part, not the handler's: when it fails
    // (database away, connection killed) the attempt is "not yet", never counted.
    try {
      releasePermit = await deps.acquireTransaction();
      client = await deps.pool.connect();
      client.on('error', onClientError);
      if (isolated) {
        // Before the transaction, so its snapshot already sees the longer lease: past the
        // handler's timeout, its bounded wait to return, and one more lease for the report.
        const ms = Math.min((timeoutMs ?? MAX_LEASE_MS) + TX_SETTLE_MS + deps.leaseMs, MAX_LEASE_MS);
        if (!(await deps.holdLeaseQuietly(client, ms))) {
          releaseClient(false);
          return {
            kind: 'failure',
            error: new Error(`lease on job ${unit.jobId} was lost`),
            permanent: false,
          };
        }
        quiet = true;
      }
      // The token is a UUID this process made, not input: written into the statement
      // because SET takes no parameters (set_config() would be a query). The isolation
      // level is one of three fixed strings (checked by defineStep). Without the option it is
      // READ COMMITTED, whatever default_transaction_isolation says: in the other levels
      // the heartbeats would keep the report from ever completing.
      await client.query(
        `BEGIN ISOLATION LEVEL ${ISOLATION_SQL[isolation ?? 'read committed']}; SET LOCAL ${ATTEMPT_SETTING} = '${token!}'`,
      );
      backendPid = serverProcessOf(client);
    } catch {
      releaseClient(true);
      return { kind: 'later', delayMs: TX_OPEN_RETRY_MS };
    }
  }

  // A compensation computed from the step's args (compensationFor) must see them as
  // enqueued, whatever the handler does to the object it was given.
  const args =
    unit.phase === 'forward' && definition.options.compensate !== undefined
      ? structuredClone(unit.args)
      : unit.args;
  guarded = client ? guardedClient(client, () => ended, unit.name) : undefined;
  const handlerDone = (async (): Promise<Outcome> => {
    const ctx = new HandlerContext(unit, abort, deps.database, guarded?.tx);
    const value: unknown = await definition.handler(args, ctx);
    if (isRetryLater(value)) return { kind: 'later', delayMs: value.delayMs };
    // A compensation's return value is not stored: it need not be JSON.
    if (unit.phase === 'compensate')
      return { kind: 'success', resultJson: null, result: undefined, tx: null };
    return { kind: 'success', resultJson: encodeResult(value, unit.name), result: value, tx: null };
  })()
    .catch(thrownOutcome)
    // runUnit never throws: its caller runs it without a catch, and a rejection escaping
    // there would end the process.
    .catch(unreadableOutcome);

  // Without a timeout or a transaction there is nothing to race (the usual case: no timer,
  // no extra promises): after a cancel or a lost lease the handler is expected to stop by
  // itself, and its report decides what happens.
  if (timeoutMs === undefined && !client) {
    const outcome = await handlerDone;
    ended = true;
    return outcome;
  }
  const racers: Promise<RaceEnd>[] = [
    handlerDone.then((outcome) => ({ outcome, handlerReturned: true, waited: false })),
  ];
  let timer: NodeJS.Timeout | undefined;
  if (timeoutMs !== undefined) {
    racers.push(
      new Promise<RaceEnd>((resolve) => {
        // A job's deadline may be up to 100 years away, past what one timer can wait: the
        // wait is armed in pieces (a step's own timeoutMs always fits in one).
        const armTimer = (ms: number, onEnd: () => void) => {
          const piece = Math.min(ms, MAX_TIMER_MS);
          timer = setTimeout(() => (ms > piece ? armTimer(ms - piece, onEnd) : onEnd()), piece);
        };
        armTimer(timeoutMs, () => {
          const error = new Error(
            deadlineFirst
              ? `step ${unit.name} was still running when its job's deadline passed (${timeoutMs} ms after it started)`
              : `step ${unit.name} timed out after ${timeoutMs} ms`,
          );
          // Before the abort: a handler woken by it must already find ctx.tx closed.
          ended = true;
          abort.abort(error);
          cancelInFlight();
          resolve({
            outcome: { kind: 'failure', error, permanent: false },
            handlerReturned: false,
            waited: false,
          });
        });
      }),
    );
  }
  // A transactional handler that ignores its aborted signal (cancel, lost lease, a stopping
  // worker) would hold its connection forever, and the worker's stop would wait on the pool
  // for it: after a bounded wait its transaction is given up and its connection destroyed.
  let abandon: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const signal = client ? abort.signal : undefined;
  if (signal) {
    racers.push(
      new Promise<RaceEnd>((resolve) => {
        onAbort = () => {
          abandon = setTimeout(() => {
            ended = true;
            cancelInFlight();
            const reason = asError(signal.reason).message;
            const error = new Error(
              `step ${unit.name} did not return within ${TX_SETTLE_MS} ms of being aborted (${reason}); its transaction was rolled back`,
            );
            resolve({
              outcome: { kind: 'failure', error, permanent: false },
              handlerReturned: false,
              waited: true,
            });
          }, TX_SETTLE_MS);
        };
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }),
    );
  }
  const first = await Promise.race(racers);
  clearTimeout(timer);
  clearTimeout(abandon);
  if (onAbort) signal?.removeEventListener('abort', onAbort);
  ended = true;
  let { outcome } = first;

  if (!first.handlerReturned) {
    // Ended while the handler still runs. ctx.tx already refuses new queries; give the
    // handler a bounded time to notice its aborted signal and return, so its retry does not
    // overlap it, then destroy a transactional connection: that ends the transaction on the
    // server without committing anything the handler wrote.
    if (!first.waited) {
      let settle: NodeJS.Timeout | undefined;
      await Promise.race([
        handlerDone,
        new Promise<void>((resolve) => (settle = setTimeout(resolve, TX_SETTLE_MS))),
      ]);
      clearTimeout(settle);
    }
    const held = client;
    if (held) {
      // The locks the handler took go with its transaction here, before the attempt's
      // failure is reported (its retry would wait on them) and before stop() returns.
      await endStatements(held);
      guarded?.unwatch();
      const endedBy = guarded?.endedBy();
      if (endedBy) outcome = endedByHandler(endedBy);
      if (!queryInFlight(held) && !broken) {
        const rolledBack = held.query('ROLLBACK').then(
          () => {},
          () => {},
        );
        await withinSettle(rolledBack);
      }
    }
    releaseClient(true);
    return outcome;
  }
  return await afterHandler(outcome);

  /** The handler returned: hand a successful transaction to the report, or roll it back. */
  async function afterHandler(returned: Outcome): Promise<Outcome> {
    const held = client;
    if (!held) {
      releasePermit?.();
      return returned;
    }
    const outcome = await transactionCheck(held, returned);
    guarded?.unwatch();
    if (sessionUnknown) {
      // The handler ended the transaction itself, or left a query running on it: whatever
      // it set since is not ours to undo, and the connection may still be busy.
      releaseClient(true);
      return outcome;
    }
    if (outcome.kind === 'success' && readOnly && wrote) {
      // Made READ ONLY after writing: the writes can only commit with the report, which
      // cannot run in it. Rolled back; run again it would do the same, so it fails for good.
      await held.query('ROLLBACK').then(
        () => releaseClient(false),
        () => releaseClient(true),
      );
      const error = new Error(
        `step ${unit.name} made its transaction READ ONLY after writing in it (SET TRANSACTION READ ONLY must come first); its writes were rolled back`,
      );
      return { kind: 'failure', error, permanent: true };
    }
    if (outcome.kind === 'success' && readOnly) {
      // A read-only transaction wrote nothing that outlives it (only temporary tables,
      // dropped by the reset above), so it has nothing to commit with the report: it is
      // committed now (keeping the session reset made in it) and the success is reported
      // as a non-transactional step's. A crash before that report runs the handler again,
      // which writes nothing either.
      try {
        await held.query('COMMIT');
        releaseClient(false);
      } catch (error) {
        releaseClient(true);
        const failure = new Error(
          `step ${unit.name}: its read-only transaction could not end: ${(broken ?? asError(error)).message}`,
        );
        return { kind: 'failure', error: failure, permanent: false };
      }
      return { ...outcome, tx: null };
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
    // Failed or not yet: nothing the handler wrote may stay. Its settings, role, LISTENs
    // and cursors go with the transaction; session advisory locks and SQL PREPAREd
    // statements do not.
    try {
      const results = (await held.query(ROLLBACK_AND_RESET)) as unknown as pg.QueryResult[];
      await deallocate(held, (results[2]!.rows[0] as { statements?: unknown } | undefined)?.statements);
      releaseClient(false);
    } catch {
      releaseClient(true);
    }
    return outcome;
  }

  /** The attempt's outcome when its handler ended the worker's transaction (`how`: what was seen). */
  function endedByHandler(how: string | null): Outcome {
    sessionUnknown = true;
    const seen = how === null ? '' : ` (${how} seen)`;
    const error = new Error(
      `step ${unit.name} ended the worker's transaction itself${seen} (COMMIT, ROLLBACK or the like sent through ctx.tx; or it ran RESET ALL there): what it wrote before that may be committed, so it is not run again`,
    );
    return { kind: 'failure', error, permanent: true };
  }

  /**
   * The transaction as the handler left it. Ended by the handler (a COMMIT hidden among
   * other statements, past ctx.tx's check): what it wrote may be committed already, so the
   * step fails for good rather than running again or reporting a success it did not
   * commit with. Failed (a statement raised an error the handler caught): the writes are
   * lost, so a success is a failed attempt.
   */
  async function transactionCheck(held: pg.PoolClient, outcome: Outcome): Promise<Outcome> {
    let status = held.getTransactionStatus();
    if (status === 'T') {
      try {
        // One round trip (two when it PREPAREd statements with SQL): the session state a
        // handler may have changed (settings, session authorization and role, session
        // advisory locks, LISTEN, temporary tables, cursors WITH HOLD) is put back before the report
        // runs in this transaction and before the connection returns to the pool, where
        // a `SET statement_timeout = '1ms'` or `SET default_transaction_read_only = on`
        // would otherwise break every later engine call on it.
        const results = await withinSettle(
          held.query(SESSION_RESET_AND_TOKEN) as unknown as Promise<pg.QueryResult[]>,
        );
        if (results === 'busy') {
          // Queued behind a query the handler did not wait for (or a cursor it left open):
          // end that query's server process, which rolls the transaction back.
          sessionUnknown = true;
          await endStatements(held);
          const endedBy = guarded?.endedBy();
          if (endedBy) return endedByHandler(endedBy);
          const error = new Error(
            `step ${unit.name}: its transaction was still running a query ${TX_SETTLE_MS} ms after it returned (a ctx.tx query not awaited, or a cursor left open); the transaction was rolled back`,
          );
          return { kind: 'failure', error, permanent: false };
        }
        const rows = results[0]!.rows as {
          token?: unknown;
          statements?: unknown;
          read_only?: unknown;
          wrote?: unknown;
        }[];
        if (rows[0]?.token !== token) status = 'I';
        else {
          readOnly = rows[0]!.read_only === 'on';
          wrote = rows[0]!.wrote === true;
          await deallocate(held, rows[0]!.statements);
        }
      } catch (error) {
        // 25P02: a statement of the handler's, still running when it returned (not awaited),
        // failed and aborted the transaction before the check could run in it.
        if (sqlState(error) === '25P02') status = 'E';
        else {
          // The connection's own error says why (the server's reason); the query's says only
          // that the client is no longer queryable.
          const failure = new Error(
            `step ${unit.name}: its transaction was lost: ${(broken ?? asError(error)).message}`,
          );
          return { kind: 'failure', error: failure, permanent: false };
        }
      }
    }
    // Seen on the wire while it ran, even when a later statement failed: a COMMIT hidden in
    // a query string followed by BEGIN leaves a transaction open, without the token.
    const endedBy = guarded?.endedBy();
    if (endedBy) return endedByHandler(endedBy);
    if (status === 'I') return endedByHandler(null);
    if (status === 'E' && outcome.kind === 'success') {
      const error = new Error(
        `step ${unit.name} returned, but a statement in its transaction had failed (an error from ctx.tx was caught, or a ctx.tx query was not awaited): its writes were rolled back`,
      );
      return { kind: 'failure', error, permanent: false };
    }
    return outcome;
  }
}
