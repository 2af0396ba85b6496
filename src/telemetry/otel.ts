/**
 * Loads `@opentelemetry/api`, an optional peer dependency: when it is not installed every
 * telemetry hook is a no-op and nothing else changes. Loaded once per process, on first
 * use (a worker's start, a client's first enqueue), so code that never traces never pays
 * for the import.
 */
import type * as OtelApi from '@opentelemetry/api';

/** The `@opentelemetry/api` module. */
export type Otel = typeof OtelApi;

/** Instrumentation scope name of every tracer and meter Stepping makes. */
export const INSTRUMENTATION_NAME = 'stepping';

let loaded: Promise<Otel | null> | undefined;
let api: Otel | null = null;

/** The API module, or null when `@opentelemetry/api` cannot be loaded. */
export function loadOtel(): Promise<Otel | null> {
  loaded ??= import('@opentelemetry/api').then(
    (m) => {
      // Named exports of the CommonJS build, or (a bundler's interop) its default.
      const found = m as Partial<Otel> & { default?: Otel };
      api = typeof found.trace === 'object' ? (found as Otel) : (found.default ?? null);
      return api;
    },
    () => null,
  );
  return loaded;
}

/** The API module if loadOtel() has finished and found it (for synchronous hot paths). */
export function otelIfLoaded(): Otel | null {
  return api;
}
