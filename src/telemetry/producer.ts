/**
 * Tracing of enqueue (the producer side). Following OpenTelemetry's messaging semantic
 * conventions, an enqueue is a "send" operation: one PRODUCER span `send <queue>` around
 * the insert, whose context is stored on the job(s) as their creation context; each step
 * attempt's CONSUMER span links to it (src/telemetry/worker.ts). The span ends when the
 * insert statement returns: whether the caller's transaction commits is not known here.
 */
import type { Span, Tracer } from '@opentelemetry/api';

import * as attr from './attributes.js';
import { INSTRUMENTATION_NAME, loadOtel, type Otel } from './otel.js';
import { storedTraceContext } from './trace-context.js';
import type { StoredTraceContext, TracerProviderLike } from './types.js';
import { packageVersion } from './version.js';

/** The queue of a job spec as given (before validation): a string, or the default. */
function queueOf(spec: unknown): string {
  const options = (spec as { options?: { queue?: unknown } } | null)?.options;
  return typeof options?.queue === 'string' ? options.queue : 'default';
}

/** Spans around enqueue calls of one Stepping client. */
export class ProducerTracing {
  private cached: Tracer | null = null;

  constructor(private readonly provider: TracerProviderLike | undefined) {}

  /** Taken once: the global tracer is the API's proxy, which follows an SDK registered later. */
  private tracer(otel: Otel): Tracer {
    this.cached ??= this.provider
      ? (this.provider.getTracer(INSTRUMENTATION_NAME, packageVersion()) as Tracer)
      : otel.trace.getTracer(INSTRUMENTATION_NAME, packageVersion());
    return this.cached;
  }

  /**
   * Runs `insert` inside a PRODUCER span for `jobs` (the enqueueMany specs), handing it
   * the trace context to store on each job (null: no tracing). `insert` resolves to the
   * new jobs' ids.
   */
  async send<T extends { jobId: string }>(
    jobs: readonly unknown[],
    insert: (trace: StoredTraceContext | null) => Promise<T[]>,
  ): Promise<T[]> {
    const otel = await loadOtel();
    if (!otel) return await insert(null);
    const queues = new Set(jobs.map(queueOf));
    const queue = queues.size === 1 ? [...queues][0]! : null;
    const span: Span = this.tracer(otel).startSpan(queue === null ? 'send' : `send ${queue}`, {
      kind: otel.SpanKind.PRODUCER,
      attributes: {
        [attr.MESSAGING_SYSTEM]: attr.SYSTEM,
        [attr.MESSAGING_OPERATION_TYPE]: 'send',
        [attr.MESSAGING_OPERATION_NAME]: 'send',
        ...(queue === null ? {} : { [attr.MESSAGING_DESTINATION]: queue }),
        ...(jobs.length > 1 ? { [attr.MESSAGING_BATCH_COUNT]: jobs.length } : {}),
      },
    });
    try {
      // Inside the span's context: a traced database client nests its query under it.
      const out = await otel.context.with(otel.trace.setSpan(otel.context.active(), span), () =>
        insert(storedTraceContext(otel, span.spanContext())),
      );
      if (out.length === 1) span.setAttribute(attr.MESSAGING_MESSAGE_ID, out[0]!.jobId);
      return out;
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: otel.SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  }
}
