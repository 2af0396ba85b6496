/**
 * Telemetry types that appear in Stepping's public types. Nothing here refers to
 * `@opentelemetry/api`, so Stepping's declarations type-check where the optional peer
 * dependency is not installed.
 */

/**
 * A tracer provider (`TracerProvider` of `@opentelemetry/api`), typed structurally so that
 * Stepping's own types never require the package.
 */
export interface TracerProviderLike {
  getTracer(name: string, version?: string): unknown;
}

/** A meter provider (`MeterProvider` of `@opentelemetry/api`), typed structurally. */
export interface MeterProviderLike {
  getMeter(name: string, version?: string): unknown;
}

/**
 * Where spans and metrics go. Without a provider the global one registered with
 * `@opentelemetry/api` (by the OpenTelemetry SDK's `start()`/`register()`) is used: start
 * the SDK before the worker (a meter is taken once, at the worker's start).
 */
export interface TelemetryOptions {
  /** Spans: the step attempts (worker) or the enqueue (client). Default: the global provider. */
  tracerProvider?: TracerProviderLike;
  /** Metrics (worker only). Default: the global provider. */
  meterProvider?: MeterProviderLike;
}

/** A trace context as stored on a job (the columns jobs.trace_parent, jobs.trace_state). */
export interface StoredTraceContext {
  traceParent: string;
  traceState: string | null;
}

/** One queue's figures from `queue_metrics()`. */
export interface QueueFigures {
  queue: string;
  runnable: number;
  scheduled: number;
  running: number;
  oldestRunnableAgeMs: number;
}
