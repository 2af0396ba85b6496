/**
 * BatchCompleter: collects handler results and reports them in as few statements as
 * possible. While one report is in flight, new results queue up and go out together
 * right after it, so batches grow with load and an idle worker reports at once.
 */
import type pg from 'pg';
import type { CompleteResult, Engine, FailResult, FailureReport, LeasedUnit } from '../db/engine.js';
import type { ContinueWith } from './runner.js';

const MAX_BATCH = 500;

type Pending =
  | { kind: 'success'; unit: LeasedUnit; resolve: (r: CompleteResult) => void }
  | { kind: 'failure'; report: FailureReport; resolve: (r: FailResult) => void };

/** Batches step_complete / step_fail calls. */
export class BatchCompleter {
  private queue: Pending[] = [];
  private flushing = false;
  private scheduled = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly engine: Engine,
    private readonly pool: pg.Pool,
    private readonly continueWith: () => ContinueWith | null,
    private readonly onError: (error: Error) => void,
  ) {}

  /** Reports a success; resolves with the engine's answer (maybe with the job's next unit leased to us). */
  complete(unit: LeasedUnit): Promise<CompleteResult> {
    return new Promise((resolve) => this.push({ kind: 'success', unit, resolve }));
  }

  /** Reports a failure (or a "not yet"). */
  fail(report: FailureReport): Promise<FailResult> {
    return new Promise((resolve) => this.push({ kind: 'failure', report, resolve }));
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    if (!this.flushing && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops retrying failed reports (their leases will expire and the units run again). */
  close(): void {
    this.closed = true;
  }

  private push(item: Pending): void {
    this.queue.push(item);
    this.schedule();
  }

  private schedule(): void {
    if (this.flushing || this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    // setImmediate lets results of the same tick join one batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = true;
    const batch = this.queue.splice(0, MAX_BATCH);
    const successes = batch.filter((p): p is Extract<Pending, { kind: 'success' }> => p.kind === 'success');
    const failures = batch.filter((p): p is Extract<Pending, { kind: 'failure' }> => p.kind === 'failure');
    let delay = 100;
    for (;;) {
      try {
        const [done, failed] = await Promise.all([
          successes.length
            ? this.engine.complete(
                this.pool,
                successes.map((s) => s.unit),
                this.continueWith(),
              )
            : Promise.resolve([]),
          failures.length
            ? this.engine.fail(
                this.pool,
                failures.map((f) => f.report),
              )
            : Promise.resolve([]),
        ]);
        const doneById = new Map(done.map((r) => [r.jobId, r]));
        const failedById = new Map(failed.map((r) => [r.jobId, r]));
        for (const s of successes) {
          s.resolve(
            doneById.get(s.unit.jobId) ?? {
              jobId: s.unit.jobId,
              accepted: false,
              jobStatus: null,
              next: null,
            },
          );
        }
        for (const f of failures) {
          f.resolve(
            failedById.get(f.report.jobId) ?? {
              jobId: f.report.jobId,
              accepted: false,
              jobStatus: null,
              outcome: null,
              nextRunAt: null,
            },
          );
        }
        break;
      } catch (error) {
        this.onError(error instanceof Error ? error : new Error(String(error)));
        if (this.closed) {
          // Give up: the leases lapse and the units run again elsewhere (at-least-once).
          for (const s of successes)
            s.resolve({ jobId: s.unit.jobId, accepted: false, jobStatus: null, next: null });
          for (const f of failures) {
            f.resolve({
              jobId: f.report.jobId,
              accepted: false,
              jobStatus: null,
              outcome: null,
              nextRunAt: null,
            });
          }
          break;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
    this.flushing = false;
    if (this.queue.length > 0) {
      void this.flush();
    } else {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
