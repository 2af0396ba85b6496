/**
 * BatchCompleter: reports handler results in as few statements as possible, and never lets
 * one result stop the others. Successes and failures go out in two independent lanes
 * (one never waits for, or is retried with, the other). While a lane's report is in flight,
 * new results queue up and go out together right after it, so batches grow with load and
 * an idle worker reports at once.
 *
 * A failing call is handled by what failed:
 * - the database rejected the data (an SQLSTATE that is not about the connection): the
 *   batch is split in halves until the bad entry is alone; a success that cannot be
 *   stored is reported as a permanent failure, a failure report that cannot be stored is
 *   replaced by a generic one; if even that fails the entry is given up;
 * - the connection failed: the batch is retried with backoff (reports are idempotent, so
 *   a retry after a lost answer applies nothing twice) until it is as old as a lease; then
 *   it is given up, and the worker stops heart-beating the unit so another can recover it;
 * - the database did not answer in time, or answered too much to hold (many-databases
 *   mode: EngineCallTimeoutError, ResponseTooLargeError): the batch is given up at once,
 *   as above.
 */
import {
  type Continuation,
  type Engine,
  type FailureReport,
  rejected,
  type ReportResult,
  type SuccessReport,
} from '../db/engine.js';
import type { Queryable } from '../db/queryable.js';
import { EngineCallTimeoutError, ResponseTooLargeError } from '../errors.js';
import { errorRecord } from './error-record.js';

const MAX_BATCH = 500;
/** Calls of one lane in flight at once, and the queue length that starts the second. */
const MAX_PARALLEL = 2;
const PARALLEL_BACKLOG = 64;

/** A report's answer, or why there is none. */
export interface Settled extends ReportResult {
  /** The report could not be delivered: the unit's lease must be left to expire. */
  gaveUp: boolean;
  /** A success that could not be stored was reported as this failure instead. */
  storedAsFailure: Error | null;
}

/** A success and how to report it as a failure should its result be refused. */
export interface SuccessEntry extends SuccessReport {
  asFailure(error: Error): FailureReport;
}

/** True for errors about the data of a report (splitting the batch helps); false for connection trouble. */
export function isDataError(error: unknown): boolean {
  const code =
    (error as { code?: unknown; cause?: { code?: unknown } } | null)?.code ??
    (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  // Only a SQLSTATE (five characters) says the server judged the data; Node's own codes
  // (ECONNREFUSED, ECONNRESET, ...) are connection trouble.
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false;
  // 08 connection, 40 serialization/deadlock, 53 resources, 55 object state (lock), 57
  // operator intervention (shutdown, terminate), 58 system, XX internal: try again.
  return !/^(08|40|53|55|57|58|XX)/.test(code);
}

interface Entry<T> {
  payload: T;
  queuedAt: number;
  resolve: (result: Settled) => void;
}

function settled(result: ReportResult, gaveUp = false): Settled {
  // Written out, not spread: this runs once per report, and spreads were ~2% of a drain's CPU.
  return {
    jobId: result.jobId,
    accepted: result.accepted,
    jobStatus: result.jobStatus,
    next: result.next,
    outcome: result.outcome,
    nextRunAt: result.nextRunAt,
    gaveUp,
    storedAsFailure: null,
  };
}

/** One lane: a queue of reports of one kind and its delivery loop. */
class Lane<T extends { unit?: { jobId: string }; jobId?: string }> {
  private queue: Entry<T>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly send: (batch: T[]) => Promise<ReportResult[]>,
    private readonly onDataError: (payload: T, error: Error) => Promise<Settled>,
    private readonly owner: BatchCompleter,
  ) {}

  push(payload: T): Promise<Settled> {
    return new Promise((resolve) => {
      this.queue.push({ payload, queuedAt: Date.now(), resolve });
      this.schedule();
    });
  }

  get idle(): boolean {
    return this.inFlight === 0 && this.queue.length === 0;
  }

  waitIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    // setImmediate lets results of the same tick join one batch.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /**
   * Sends what is queued: one call at a time while results trickle in (each batch then
   * holds what arrived during the previous call), a second call at once when a backlog
   * builds up behind the first, so a slow report never holds the others back.
   */
  private pump(): void {
    while (
      this.queue.length > 0 &&
      (this.inFlight === 0 || (this.inFlight < MAX_PARALLEL && this.queue.length >= PARALLEL_BACKLOG))
    ) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight++;
      void this.deliver(batch).finally(() => {
        this.inFlight--;
        if (this.queue.length > 0) this.pump();
        else if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    }
  }

  private async deliver(batch: Entry<T>[]): Promise<void> {
    let delay = 100;
    for (;;) {
      try {
        const results = await this.send(batch.map((e) => e.payload));
        batch.forEach((e, i) => e.resolve(settled(results[i]!)));
        return;
      } catch (error) {
        const err = error instanceof Error ? error : new Error(String(error));
        this.owner.reportError(err);
        if (isDataError(err)) {
          if (batch.length > 1) {
            const half = Math.ceil(batch.length / 2);
            await this.deliver(batch.slice(0, half));
            await this.deliver(batch.slice(half));
          } else {
            batch[0]!.resolve(await this.onDataError(batch[0]!.payload, err));
          }
          return;
        }
        if (err instanceof EngineCallTimeoutError || err instanceof ResponseTooLargeError) {
          // Many databases: the database did not answer in time (or answered too much) and
          // is being set aside; every later call would fail at once. Give up now: the
          // leases lapse.
          for (const e of batch) e.resolve(settled(rejected(jobIdOf(e.payload)), true));
          return;
        }
        // The connection failed: keep trying while the units' leases may still be ours.
        const live: Entry<T>[] = [];
        for (const e of batch) {
          if (!this.owner.closed && Date.now() - e.queuedAt < this.owner.giveUpAfterMs) live.push(e);
          else e.resolve(settled(rejected(jobIdOf(e.payload)), true));
        }
        if (live.length === 0) return;
        batch = live;
        await new Promise((r) => setTimeout(r, delay));
        // At most a second apart: a unit whose report waits holds its handler slot (when its
        // job goes on here), so a longer pause would keep a worker idle that long after the
        // server answers again.
        delay = Math.min(delay * 2, MAX_REPORT_RETRY_DELAY_MS);
      }
    }
  }
}

function jobIdOf(payload: { unit?: { jobId: string }; jobId?: string }): string {
  return payload.unit?.jobId ?? payload.jobId ?? '';
}

/** Longest pause between two tries of a report the connection failed (see deliver). */
const MAX_REPORT_RETRY_DELAY_MS = 1000;

/** Batches step_complete / step_fail calls; see the module comment for what it guarantees. */
export class BatchCompleter {
  /** After close(), failed deliveries are given up at once (leases lapse; the units run again). */
  closed = false;
  private readonly successes: Lane<SuccessEntry>;
  private readonly failures: Lane<FailureReport>;

  constructor(
    private readonly engine: Engine,
    private readonly db: Queryable,
    /** Who may be handed a job's next unit (null while stopping: nobody). */
    private readonly continuation: () => Continuation | null,
    /** A report older than this is given up rather than retried (the lease length). */
    readonly giveUpAfterMs: number,
    private readonly onError: (error: Error) => void,
  ) {
    this.successes = new Lane<SuccessEntry>(
      (batch) => this.engine.complete(this.db, batch, this.continuation()),
      async (entry, error) => {
        // The result (or the compensation) was refused: the attempt fails, permanently.
        const failure = new Error(
          `step ${entry.unit.name} succeeded, but its report was refused: ${error.message}`,
        );
        failure.name = 'PermanentError';
        const answer = await this.fail(entry.asFailure(failure));
        return { ...answer, storedAsFailure: failure };
      },
      this,
    );
    this.failures = new Lane<FailureReport>(
      (batch) => this.engine.fail(this.db, batch),
      (report, error) => this.failGeneric(report, error),
      this,
    );
  }

  /** Passes a delivery error on (the worker emits it). */
  reportError(error: Error): void {
    this.onError(error);
  }

  /** Reports a success; resolves with the engine's answer (maybe with the job's next unit leased to us). */
  complete(entry: SuccessEntry): Promise<Settled> {
    return this.successes.push(entry);
  }

  /** Reports a failure (or a "not yet"). */
  fail(report: FailureReport): Promise<Settled> {
    return this.failures.push(report);
  }

  /**
   * A failure report the database refused: store a generic error instead (keeping the
   * outcome's other fields), then a bare one; give up only if even that is refused.
   */
  private async failGeneric(report: FailureReport, error: Error): Promise<Settled> {
    const generic = errorRecord(
      new Error(`the failure report could not be stored: ${error.message}`),
      report.error.attempt,
    );
    const fallbacks: FailureReport[] = [
      { ...report, error: generic, compensation: null },
      {
        ...report,
        error: generic,
        compensation: null,
        retryAfterMs: null,
        maxAttempts: null,
        permanent: false,
      },
    ];
    for (const fallback of fallbacks) {
      try {
        const [answer] = await this.engine.fail(this.db, [fallback]);
        return settled(answer!);
      } catch (retryError) {
        this.onError(retryError as Error);
        if (!isDataError(retryError)) break;
      }
    }
    return settled(rejected(report.jobId), true);
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    await Promise.all([this.successes.waitIdle(), this.failures.waitIdle()]);
  }

  /** Stops retrying failed deliveries (their leases will expire and the units run again). */
  close(): void {
    this.closed = true;
  }
}
