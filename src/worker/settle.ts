/**
 * Outcome → report → events: the one place that turns what a handler did into the engine
 * report (through the BatchCompleter, or inside the unit's own transaction for a
 * transactional step) and into the worker's events, in causal order for the job.
 */
import type { CallDeadline } from '../db/deadline.js';
import type { CompensationCall, Continuation, Engine, FailureReport, LeasedUnit } from '../db/engine.js';
import { DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_MAX_MS } from '../defaults.js';
import { isFinalStatus } from '../job-status.js';
import type { AnyStepDefinition } from '../steps.js';
import type { AttemptEnd } from '../telemetry/worker.js';
import { type BatchCompleter, isDataError, type Settled } from './completer.js';
import { asError, errorRecord } from './error-record.js';
import type { UnitEvent, WorkerEventMap, WorkerEventName } from './events.js';
import type { Outcome } from './executor.js';
import { encodeJson } from './result.js';

/** How settle reports events. */
export interface Emit {
  <K extends WorkerEventName>(event: K, payload: WorkerEventMap[K]): void;
  /** False when nobody listens to `event`: its payload need not be built (per unit, that adds up). */
  wants(event: WorkerEventName): boolean;
}

/** What settle needs besides the unit and its outcome. */
export interface SettleDeps {
  engine: Engine;
  completer: BatchCompleter;
  continuation: () => Continuation | null;
  emit: Emit;
  database: string;
  /** A retry or "not yet" is due at this time (epoch ms): wake the fetcher then. */
  dueAt(at: number): void;
  /** Many-databases mode: bounds the report made in a transactional step's own transaction. */
  deadline: CallDeadline | null;
}

/** What happened to the report. */
export interface SettleResult {
  /** The job's next unit, already leased to this worker (run it next). */
  next: LeasedUnit | null;
  /** The report was given up: stop heart-beating the unit and let its lease lapse. */
  gaveUp: boolean;
  /** How the attempt ended, for its span and metrics. */
  end: AttemptEnd;
}

/** The unit as events name it. */
export function unitEvent(database: string, unit: LeasedUnit): UnitEvent {
  return {
    database,
    jobId: unit.jobId,
    stepIndex: unit.stepIndex,
    name: unit.name,
    phase: unit.phase,
    attempt: unit.attempt,
    queue: unit.queue,
  };
}

/**
 * The compensation the worker's definition gives a forward step (with its result; without
 * when the step itself failed). Null when there is none or it cannot be computed.
 */
function compensationFor(
  definition: AnyStepDefinition | undefined,
  unit: LeasedUnit,
  result: unknown,
): CompensationCall | null {
  const spec = definition?.options.compensate;
  if (unit.phase !== 'forward' || spec === undefined) return null;
  if (typeof spec === 'string') return { name: spec, args: unit.args ?? null };
  let call: { name: string; args?: unknown };
  try {
    // The definition's result type is erased here; the handler produced `result`.
    call = (spec as (args: unknown, result: unknown) => { name: string; args?: unknown })(unit.args, result);
  } catch (error) {
    throw new Error(`compensate(args, result) of step ${unit.name} threw: ${asError(error).message}`);
  }
  if (typeof call !== 'object' || call === null || typeof call.name !== 'string') {
    throw new Error(`compensate(args, result) of step ${unit.name} must return { name, args }`);
  }
  if (call.args === undefined) return { name: call.name, args: unit.args ?? null };
  // Checked here: args that are not JSON would otherwise fail the whole report batch.
  const text = encodeJson(
    call.args,
    `compensate(args, result) of step ${unit.name} returned args that cannot be stored`,
    'args',
  );
  return { name: call.name, args: JSON.parse(text) as unknown };
}

/** A failure report carrying the definition's options (values stored at enqueue win in SQL). */
function failureReport(
  unit: LeasedUnit,
  definition: AnyStepDefinition | undefined,
  error: Error,
  permanent: boolean,
  retryAfterMs: number | null,
): FailureReport {
  let compensation: CompensationCall | null = null;
  try {
    compensation = compensationFor(definition, unit, undefined);
  } catch {
    // The failing step's own compensation cannot be computed: it is left out.
  }
  const options = definition?.options;
  return {
    jobId: unit.jobId,
    leaseToken: unit.leaseToken,
    error: errorRecord(error, unit.attempt),
    permanent,
    retryAfterMs,
    maxAttempts: options?.maxAttempts ?? null,
    backoffBaseMs: options?.backoff?.baseMs ?? DEFAULT_BACKOFF_BASE_MS,
    backoffMaxMs: options?.backoff?.maxMs ?? DEFAULT_BACKOFF_MAX_MS,
    compensation,
  };
}

/** The SQLSTATE of a database error, or null (Node's own codes are connection trouble). */
function sqlState(error: unknown): string | null {
  let code: unknown;
  try {
    code = (error as { code?: unknown } | null)?.code;
  } catch {
    return null;
  }
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/**
 * True when the server answered with an error that leaves the transaction certainly rolled
 * back (a refused deferred constraint, a serialization failure); false when the connection
 * failed or the server went away mid-way (08, 57, 58, XX), where the outcome is unknown.
 */
function definitelyRolledBack(error: unknown): boolean {
  const code = sqlState(error);
  return code !== null && !/^(08|57|58|XX)/.test(code);
}

/**
 * Reports a success inside the unit's own transaction: its ctx.tx writes and the step's
 * completion commit together or not at all. A refused result rolls back and is reported
 * as a permanent failure; a transaction the server refused to commit (a deferred
 * constraint, a serialization failure) is a failed attempt, retried with backoff. Only
 * when the connection failed is the outcome unknown: then nothing is reported and the
 * lease lapses.
 */
async function completeInTransaction(
  deps: SettleDeps,
  outcome: Extract<Outcome, { kind: 'success' }>,
  entry: { unit: LeasedUnit; resultJson: string | null; compensation: CompensationCall | null },
  asFailure: (error: Error, permanent: boolean) => FailureReport,
): Promise<Settled> {
  const tx = outcome.tx!;
  const name = entry.unit.name;
  const failWith = async (message: string, permanent: boolean): Promise<Settled> => {
    const failure = new Error(message);
    if (permanent) failure.name = 'PermanentError';
    return { ...(await deps.completer.fail(asFailure(failure, permanent))), storedAsFailure: failure };
  };
  let answer;
  try {
    const db = deps.deadline ? deps.deadline.client(tx.client) : tx.client;
    [answer] = await deps.engine.complete(db, [entry], deps.continuation());
  } catch (error) {
    await tx.finish(false).catch(() => {});
    const message = asError(error).message;
    if (isDataError(error))
      return await failWith(
        `step ${name} succeeded, but its report was refused (its ctx.tx writes were rolled back): ${message}`,
        true,
      );
    // The COMMIT was never sent: whatever went wrong (a statement timeout the handler set,
    // a serialization failure, the connection), nothing of the attempt was written.
    return await failWith(
      `step ${name}: its report could not be written in its transaction (its ctx.tx writes were rolled back): ${message}`,
      false,
    );
  }
  try {
    const finishing = tx.finish(answer!.accepted);
    // A COMMIT runs deferred triggers and constraints: the database's to delay, too.
    await (deps.deadline ? deps.deadline.guard(tx.client, finishing) : finishing);
  } catch (error) {
    if (answer!.accepted && definitelyRolledBack(error))
      return await failWith(
        `step ${name}: its transaction could not commit (its ctx.tx writes were rolled back): ${asError(error).message}`,
        false,
      );
    // The commit's fate is unknown (connection lost): treat it as not applied; if it was,
    // the job moved on and a continuation leased to us lapses and is claimed again.
    return { ...rejectedAnswer(entry.unit.jobId), gaveUp: false, storedAsFailure: null };
  }
  return { ...answer!, gaveUp: false, storedAsFailure: null };
}

function rejectedAnswer(jobId: string) {
  return { jobId, accepted: false, jobStatus: null, next: null, outcome: null, nextRunAt: null };
}

/** Reports `outcome` for `unit` and emits its events; returns the continuation, if any. */
export async function settle(
  deps: SettleDeps,
  unit: LeasedUnit,
  definition: AnyStepDefinition | undefined,
  outcome: Outcome,
  startedAt: number,
): Promise<SettleResult> {
  const durationMs = Date.now() - startedAt;
  let answer: Settled;
  let failedWith: Error | null = null;
  if (outcome.kind === 'success') {
    const asFailure = (error: Error, permanent = true) =>
      failureReport(unit, definition, error, permanent, null);
    let compensation: CompensationCall | null = null;
    try {
      compensation = compensationFor(definition, unit, outcome.result);
    } catch (error) {
      failedWith = asError(error);
    }
    if (failedWith) {
      await outcome.tx?.finish(false).catch(() => {});
      answer = await deps.completer.fail(asFailure(failedWith));
    } else {
      const { resultJson } = outcome;
      answer = outcome.tx
        ? await completeInTransaction(deps, outcome, { unit, resultJson, compensation }, asFailure)
        : await deps.completer.complete({ unit, resultJson, compensation, asFailure });
      failedWith = answer.storedAsFailure;
    }
  } else {
    failedWith = outcome.kind === 'failure' ? outcome.error : null;
    answer = await deps.completer.fail(
      failureReport(
        unit,
        definition,
        failedWith ?? new Error('not yet'),
        outcome.kind === 'failure' && outcome.permanent,
        outcome.kind === 'later' ? outcome.delayMs : null,
      ),
    );
  }

  const { emit } = deps;
  if (!answer.accepted) {
    emit('step:lease-lost', unitEvent(deps.database, unit));
    const outcome = answer.gaveUp ? 'abandoned' : 'lease_lost';
    return { next: null, gaveUp: answer.gaveUp, end: { outcome, error: failedWith, durationMs } };
  }
  if (failedWith) {
    emit('step:failed', {
      ...unitEvent(deps.database, unit),
      durationMs,
      error: failedWith,
      outcome: answer.outcome ?? 'retry',
      nextRunAt: answer.nextRunAt,
    });
  } else if (outcome.kind !== 'later' && emit.wants('step:succeeded')) {
    emit('step:succeeded', { ...unitEvent(deps.database, unit), durationMs });
  }
  if (answer.outcome === 'retry' || answer.outcome === 'not_yet') {
    emit('step:retry-scheduled', {
      ...unitEvent(deps.database, unit),
      nextRunAt: answer.nextRunAt,
      notYet: outcome.kind === 'later',
    });
    // The retry may be due before the next poll: wake no later than that.
    if (answer.nextRunAt) deps.dueAt(answer.nextRunAt.getTime() + 5);
  }
  if (isFinalStatus(answer.jobStatus)) {
    const event = `job:${answer.jobStatus}` as const;
    if (emit.wants(event)) emit(event, { database: deps.database, jobId: unit.jobId });
  }
  const ended = failedWith || outcome.kind === 'later' ? (answer.outcome ?? 'retry') : 'succeeded';
  return { next: answer.next, gaveUp: false, end: { outcome: ended, error: failedWith, durationMs } };
}
