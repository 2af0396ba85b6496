/**
 * The worker's tracing and metrics. Every step attempt runs in a CONSUMER span
 * `process <step name>`: a new trace root (an attempt may run hours after the enqueue,
 * and many times), linked to the job's creation context (the producer's span, stored on
 * the job), active while the handler runs so the handler's own spans nest under it, and
 * ended once the engine has answered the attempt's report, with the outcome it chose.
 * Metrics: see metrics.ts.
 *
 * Without `@opentelemetry/api` every call here is a no-op (one shared object, no
 * allocation per attempt); with it but no SDK, spans are the API's non-recording ones.
 */
import type { Attributes, Meter, Span, Tracer } from '@opentelemetry/api';

import type { Engine, LeasedUnit } from '../db/engine.js';
import type { Queryable } from '../db/queryable.js';
import { errorRecord } from '../worker/error-record.js';
import { DATABASE, STEP_OUTCOME } from './attributes.js';
import { WorkerMetrics } from './metrics.js';
import { INSTRUMENTATION_NAME, loadOtel, type Otel } from './otel.js';
import { spanContextOf } from './trace-context.js';
import type { MeterProviderLike, TelemetryOptions, TracerProviderLike } from './types.js';
import { packageVersion } from './version.js';

/**
 * How an attempt ended: succeeded, what the engine did with a failure or "not yet"
 * (retry, not_yet, failed, compensating, compensated, cancelled), lease_lost (the report
 * was refused: another worker holds the unit), or abandoned (released at stop, or the
 * report given up).
 */
export interface AttemptEnd {
  outcome: string;
  /** The failure, when the attempt failed. */
  error: Error | null;
  /** The handler's run, in ms. */
  durationMs: number;
}

/** One step attempt's span and counters. */
export interface AttemptTelemetry {
  /** Runs `fn` (the handler's run) with the attempt's span active. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Ends the span and counts the attempt's end; call once. */
  end(end: AttemptEnd): void;
}

/** The telemetry of one served database. */
export interface DatabaseTelemetry {
  /** Starts a step attempt's span and counts it. */
  attempt(unit: LeasedUnit): AttemptTelemetry;
  /** A claim statement leased `n` units. */
  claimed(n: number): void;
  /** Stops feeding this database to the gauges. */
  close(): void;
}

const NOOP_ATTEMPT: AttemptTelemetry = {
  run: (fn) => fn(),
  end: () => {},
};

const NOOP_DATABASE: DatabaseTelemetry = {
  attempt: () => NOOP_ATTEMPT,
  claimed: () => {},
  close: () => {},
};

/** Outcomes counted as failed attempts (the rest: succeeded, or neither). */
const FAILED_OUTCOMES = new Set(['retry', 'failed', 'compensating', 'compensated', 'cancelled']);

/** A worker's telemetry: load() once before serving, then one forDatabase() per database. */
export class WorkerTelemetry {
  private otel: Otel | null = null;
  private tracerCache: Tracer | null = null;
  private metricsCache: WorkerMetrics | null = null;

  constructor(private readonly options: TelemetryOptions = {}) {}

  /** Loads `@opentelemetry/api` when it is installed (idempotent). */
  async load(): Promise<void> {
    this.otel = await loadOtel();
  }

  private tracer(otel: Otel): Tracer {
    const provider: TracerProviderLike | undefined = this.options.tracerProvider;
    // A given provider is asked once; the global one each time (see TelemetryOptions):
    // the API's global tracer is a proxy that follows a provider registered later anyway.
    this.tracerCache ??= provider
      ? (provider.getTracer(INSTRUMENTATION_NAME, packageVersion()) as Tracer)
      : otel.trace.getTracer(INSTRUMENTATION_NAME, packageVersion());
    return this.tracerCache;
  }

  private metrics(otel: Otel): WorkerMetrics {
    const provider: MeterProviderLike | undefined = this.options.meterProvider;
    this.metricsCache ??= new WorkerMetrics(
      provider
        ? (provider.getMeter(INSTRUMENTATION_NAME, packageVersion()) as Meter)
        : otel.metrics.getMeter(INSTRUMENTATION_NAME, packageVersion()),
    );
    return this.metricsCache;
  }

  /** The telemetry of one database, whose queue figures `engine` reads through `db`. */
  forDatabase(database: string, engine: Engine, db: Queryable): DatabaseTelemetry {
    const otel = this.otel;
    if (!otel) return NOOP_DATABASE;
    const tracer = this.tracer(otel);
    const metrics = this.metrics(otel);
    const removeSource = metrics.addSource({ database, read: () => engine.queueMetrics(db) });
    const dbAttributes: Attributes = { [DATABASE]: database };
    return {
      attempt: (unit) => {
        try {
          return startAttempt(otel, tracer, metrics, database, unit);
        } catch {
          return NOOP_ATTEMPT; // telemetry (a provider or processor of yours) never stops a step
        }
      },
      claimed: (n) => metrics.claimBatch.record(n, dbAttributes),
      close: removeSource,
    };
  }
}

function startAttempt(
  otel: Otel,
  tracer: Tracer,
  metrics: WorkerMetrics,
  database: string,
  unit: LeasedUnit,
): AttemptTelemetry {
  // Attribute objects are written as literals with constant keys: built with spreads and
  // computed keys they cost V8 microseconds each, which showed in a drain even without an
  // SDK (bench/tools/telemetry-overhead.ts). The names are those of attributes.ts.
  const metricAttributes: Attributes = {
    'stepping.database': database,
    'messaging.destination.name': unit.queue,
    'stepping.step.name': unit.name,
    'stepping.step.phase': unit.phase,
  };
  metrics.started.add(1, metricAttributes);
  const producer = spanContextOf(otel, unit.traceParent, unit.traceState);
  const span: Span = tracer.startSpan(
    `process ${unit.name}`,
    {
      kind: otel.SpanKind.CONSUMER,
      attributes: {
        'stepping.database': database,
        'messaging.destination.name': unit.queue,
        'stepping.step.name': unit.name,
        'stepping.step.phase': unit.phase,
        'messaging.system': 'stepping',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.message.id': unit.jobId,
        'stepping.job.id': unit.jobId,
        'stepping.step.index': unit.stepIndex,
        'stepping.step.attempt': unit.attempt,
      },
      links: producer ? [{ context: producer }] : [],
      root: true,
    },
    otel.ROOT_CONTEXT,
  );
  // A non-recording span of no trace (no SDK) is not worth a context switch.
  const active = otel.isSpanContextValid(span.spanContext())
    ? otel.trace.setSpan(otel.ROOT_CONTEXT, span)
    : null;
  let ended = false;
  return {
    run: (fn) => (active ? otel.context.with(active, fn) : fn()),
    end({ outcome, error, durationMs }) {
      if (ended) return;
      ended = true;
      try {
        endAttempt(otel, metrics, span, database, unit, outcome, error, durationMs);
      } catch {
        // Telemetry never stops a step.
      }
    },
  };
}

function endAttempt(
  otel: Otel,
  metrics: WorkerMetrics,
  span: Span,
  database: string,
  unit: LeasedUnit,
  outcome: string,
  error: Error | null,
  durationMs: number,
): void {
  const endAttributes: Attributes = {
    'stepping.database': database,
    'messaging.destination.name': unit.queue,
    'stepping.step.name': unit.name,
    'stepping.step.phase': unit.phase,
    'stepping.step.outcome': outcome,
  };
  if (outcome === 'succeeded') metrics.succeeded.add(1, endAttributes);
  else if (FAILED_OUTCOMES.has(outcome) && error) metrics.failed.add(1, endAttributes);
  metrics.duration.record(durationMs / 1000, endAttributes);
  span.setAttribute(STEP_OUTCOME, outcome);
  if (error) {
    // The handler's error is not trusted (a throwing getter, a message of megabytes):
    // the span gets the bounded text the engine stores.
    const record = errorRecord(error, unit.attempt);
    span.recordException({
      name: record.name,
      message: record.message,
      ...(record.stack ? { stack: record.stack } : {}),
    });
    span.setStatus({ code: otel.SpanStatusCode.ERROR, message: record.message });
  }
  span.end();
}
