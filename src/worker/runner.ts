/**
 * Runs one leased unit's handler and classifies what happened. Knows nothing of batching
 * or leases; a transactional unit's completion is done here, inside its transaction.
 */
import type pg from 'pg';
import { PermanentError } from '../errors.js';
import type { CompleteResult, Engine, LeasedUnit } from '../db/engine.js';
import type { AnyStepDefinition, RetryLater, StepContext } from '../steps.js';

/** What a handler's run amounts to. */
export type Outcome =
  | { kind: 'success' }
  | { kind: 'failure'; error: Error; permanent: boolean }
  | { kind: 'later'; delayMs: number }
  /** A transactional unit that was completed (or found stale) inside its own transaction. */
  | { kind: 'applied'; result: CompleteResult };

/** Continuation parameters passed to step_complete. */
export interface ContinueWith {
  worker: string;
  names: string[];
  queues: string[] | null;
  leaseMs: number;
}

function isRetryLater(value: unknown): value is RetryLater {
  return typeof value === 'object' && value !== null && (value as RetryLater).kind === 'stepping.retryLater';
}

function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(
    typeof thrown === 'string' ? thrown : `non-error thrown: ${JSON.stringify(thrown) ?? String(thrown)}`,
  );
}

/** Thrown by a handler (or returned) to say "not yet": same as returning ctx.retryLater(ms). */
export class RetryLaterSignal extends Error {
  override name = 'RetryLaterSignal';
  constructor(readonly delayMs: number) {
    super(`retry later in ${delayMs} ms`);
  }
}

/** Serialises an error for the step's last_error column. */
export function errorRecord(error: Error, attempt: number): Record<string, unknown> {
  return {
    message: error.message,
    name: error.name,
    stack: error.stack?.split('\n').slice(0, 30).join('\n'),
    attempt,
    at: new Date().toISOString(),
  };
}

/** Everything runUnit needs besides the unit. */
export interface RunDeps {
  engine: Engine;
  pool: pg.Pool;
  database: string;
  continueWith: ContinueWith;
}

/** Runs the handler of `unit`; never throws. */
export async function runUnit(
  unit: LeasedUnit,
  definition: AnyStepDefinition,
  controller: AbortController,
  deps: RunDeps,
): Promise<Outcome> {
  const timeoutMs = definition.options.timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const timedOut =
    timeoutMs === undefined
      ? undefined
      : new Promise<Outcome>((resolve) => {
          timer = setTimeout(() => {
            const error = new Error(`step ${unit.name} timed out after ${timeoutMs} ms`);
            controller.abort(error);
            resolve({ kind: 'failure', error, permanent: false });
          }, timeoutMs);
        });

  const transactional = unit.transactional && definition.options.transactional === true;
  let client: pg.PoolClient | undefined;
  // pg-pool listens for errors only on idle clients: a checked-out connection killed by the
  // server while the handler runs would otherwise crash the process.
  let broken: Error | undefined;
  const onClientError = (error: Error) => (broken = error);
  try {
    if (transactional) {
      client = await deps.pool.connect();
      client.on('error', onClientError);
      await client.query('BEGIN');
    }
    const ctx: StepContext = {
      jobId: unit.jobId,
      stepIndex: unit.stepIndex,
      stepCount: unit.stepCount,
      attempt: unit.attempt,
      phase: unit.phase,
      idempotencyKey: `${unit.jobId}:${unit.stepIndex}${unit.phase === 'compensate' ? ':compensate' : ''}`,
      queue: unit.queue,
      signal: controller.signal,
      database: deps.database,
      tx: client,
      retryLater: (delayMs: number) => ({
        kind: 'stepping.retryLater',
        delayMs: Math.max(0, Math.round(delayMs)),
      }),
    };
    const run = (async (): Promise<Outcome> => {
      const value: unknown = await definition.handler(unit.args, ctx);
      if (isRetryLater(value)) return { kind: 'later', delayMs: value.delayMs };
      return { kind: 'success' };
    })();
    const outcome = await (timedOut ? Promise.race([run, timedOut]) : run);
    if (client) {
      if (outcome.kind === 'success') {
        // Record the step done in the handler's own transaction: its writes and the
        // completion commit together or not at all.
        const [result] = await deps.engine.complete(client, [unit], deps.continueWith);
        if (result?.accepted) {
          await client.query('COMMIT');
        } else {
          await client.query('ROLLBACK');
        }
        return {
          kind: 'applied',
          result: result ?? { jobId: unit.jobId, accepted: false, jobStatus: null, next: null },
        };
      }
      await client.query('ROLLBACK');
    }
    return outcome;
  } catch (thrown) {
    if (client) await client.query('ROLLBACK').catch(() => {});
    if (thrown instanceof RetryLaterSignal)
      return { kind: 'later', delayMs: Math.max(0, Math.round(thrown.delayMs)) };
    const error = asError(thrown);
    // By name too, so a PermanentError from another copy of the package still counts.
    const permanent = thrown instanceof PermanentError || error.name === 'PermanentError';
    return { kind: 'failure', error, permanent };
  } finally {
    clearTimeout(timer);
    client?.off('error', onClientError);
    // A broken connection is destroyed instead of going back to the pool.
    client?.release(broken);
  }
}
