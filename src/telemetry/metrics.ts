/**
 * The worker's metric instruments: counters of step attempts started, succeeded and failed,
 * a histogram of their durations, a histogram of claim batch sizes, and two observable
 * gauges (queue depth, oldest runnable age) fed by one `queue_metrics()` call per served
 * database per collection, never per step.
 */
import type {
  Attributes,
  BatchObservableResult,
  Counter,
  Histogram,
  Meter,
  ObservableGauge,
} from '@opentelemetry/api';

import * as attr from './attributes.js';
import type { QueueFigures } from './types.js';

/** A served database as the gauges see it. */
export interface GaugeSource {
  database: string;
  read(): Promise<QueueFigures[]>;
}

/**
 * Figures younger than this are reused: several metric readers (or a reader collecting
 * faster than this) cost one query per database, not one each.
 */
const FIGURES_MAX_AGE_MS = 1000;

/** Per source: the last figures, the query in flight, the queues seen (reported as 0 once empty). */
interface SourceState {
  at: number;
  figures: QueueFigures[];
  pending: Promise<QueueFigures[]> | null;
  seen: Set<string>;
}

/** The instruments of one worker. */
export class WorkerMetrics {
  readonly started: Counter;
  readonly succeeded: Counter;
  readonly failed: Counter;
  readonly duration: Histogram;
  readonly claimBatch: Histogram;
  private readonly depth: ObservableGauge;
  private readonly oldest: ObservableGauge;
  private readonly sources = new Map<GaugeSource, SourceState>();
  private readonly observe = (result: BatchObservableResult) => this.collect(result);
  private observing = false;

  constructor(private readonly meter: Meter) {
    const attempts = (name: string, description: string) =>
      meter.createCounter(name, { description, unit: '{attempt}' });
    this.started = attempts('stepping.step.started', 'Step attempts started (a step or a compensation).');
    this.succeeded = attempts(
      'stepping.step.succeeded',
      'Step attempts that succeeded (the engine accepted the report).',
    );
    this.failed = attempts(
      'stepping.step.failed',
      'Step attempts that failed; stepping.step.outcome says what the engine did (retry, failed, ...).',
    );
    this.duration = meter.createHistogram('stepping.step.duration', {
      description: "Duration of step attempts' handlers.",
      unit: 's',
    });
    this.claimBatch = meter.createHistogram('stepping.claim.batch_size', {
      description: 'Units one claim statement leased.',
      unit: '{unit}',
      advice: { explicitBucketBoundaries: [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
    });
    this.depth = meter.createObservableGauge('stepping.queue.depth', {
      description:
        'Unfinished jobs per queue, by stepping.job.state: runnable (due now), scheduled (later), running.',
      unit: '{job}',
    });
    this.oldest = meter.createObservableGauge('stepping.queue.oldest_runnable_age', {
      description: 'How long the oldest runnable job of the queue has waited (0: none waits).',
      unit: 's',
    });
  }

  /** Adds a database to the gauges; returns its removal. */
  addSource(source: GaugeSource): () => void {
    this.sources.set(source, { at: 0, figures: [], pending: null, seen: new Set() });
    if (!this.observing) {
      this.observing = true;
      this.meter.addBatchObservableCallback(this.observe, [this.depth, this.oldest]);
    }
    return () => {
      this.sources.delete(source);
      if (this.sources.size === 0 && this.observing) {
        this.observing = false;
        this.meter.removeBatchObservableCallback(this.observe, [this.depth, this.oldest]);
      }
    };
  }

  private async figuresOf(source: GaugeSource, state: SourceState): Promise<QueueFigures[]> {
    if (Date.now() - state.at < FIGURES_MAX_AGE_MS) return state.figures;
    state.pending ??= source
      .read()
      .then((figures) => {
        state.figures = figures;
        state.at = Date.now();
        return figures;
      })
      .finally(() => (state.pending = null));
    return await state.pending;
  }

  private async collect(result: BatchObservableResult): Promise<void> {
    await Promise.all(
      [...this.sources].map(async ([source, state]) => {
        let figures: QueueFigures[];
        try {
          figures = await this.figuresOf(source, state);
        } catch {
          return; // database unreachable: no data points for it this time
        }
        const byQueue = new Map(figures.map((f) => [f.queue, f]));
        for (const f of figures) state.seen.add(f.queue);
        // A queue that emptied is reported as 0 rather than vanishing from the series.
        for (const queue of state.seen) {
          const f = byQueue.get(queue);
          const base: Attributes = { [attr.DATABASE]: source.database, [attr.MESSAGING_DESTINATION]: queue };
          result.observe(this.depth, f?.runnable ?? 0, { ...base, [attr.JOB_STATE]: 'runnable' });
          result.observe(this.depth, f?.scheduled ?? 0, { ...base, [attr.JOB_STATE]: 'scheduled' });
          result.observe(this.depth, f?.running ?? 0, { ...base, [attr.JOB_STATE]: 'running' });
          result.observe(this.oldest, (f?.oldestRunnableAgeMs ?? 0) / 1000, base);
        }
      }),
    );
  }
}
