/**
 * A job's stored trace context: the W3C `traceparent` and `tracestate` of the code that
 * enqueued it. Written from and read into OpenTelemetry span contexts directly (not through
 * the configured propagator), so the stored form is W3C whatever propagator the
 * application uses, and the engine can check it (sql/enqueue.sql).
 */
import type { SpanContext } from '@opentelemetry/api';

import { MAX_TRACE_STATE_LENGTH } from '../limits.js';
import type { Otel } from './otel.js';
import type { StoredTraceContext } from './types.js';

const TRACE_PARENT = /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * The stored form of a span context, or null when it is not valid (no tracing). A
 * tracestate the engine would refuse (too long, not printable ASCII) is left out rather
 * than failing the enqueue: tracing never stops a job.
 */
export function storedTraceContext(otel: Otel, context: SpanContext): StoredTraceContext | null {
  if (!otel.isSpanContextValid(context)) return null;
  const flags = (context.traceFlags & 0xff).toString(16).padStart(2, '0');
  const traceParent = `00-${context.traceId}-${context.spanId}-${flags}`;
  if (!TRACE_PARENT.test(traceParent)) return null;
  const state = context.traceState?.serialize() ?? '';
  const usable = state.length > 0 && state.length <= MAX_TRACE_STATE_LENGTH && PRINTABLE_ASCII.test(state);
  return { traceParent, traceState: usable ? state : null };
}

/** The remote span context a job's stored trace context stands for, or null. */
export function spanContextOf(
  otel: Otel,
  traceParent: string | null,
  traceState: string | null,
): SpanContext | null {
  if (traceParent === null || !TRACE_PARENT.test(traceParent)) return null;
  const [, traceId, spanId, flags] = traceParent.split('-') as [string, string, string, string];
  return {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & 0xff,
    isRemote: true,
    ...(traceState ? { traceState: otel.createTraceState(traceState) } : {}),
  };
}
