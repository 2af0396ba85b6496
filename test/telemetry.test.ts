/**
 * Tracing and metrics (OpenTelemetry), with the SDK's in-memory exporter and a metric
 * reader collected on demand: the trace context stored at enqueue (driver and SQL), the
 * span of every step attempt (link, attributes, error, retry, continuation, nesting of the
 * handler's own spans), the metrics, and the engine without a provider or without
 * `@opentelemetry/api` at all.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import {
  context,
  createTraceState,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import pg from 'pg';

import {
  createStepping,
  defineStep,
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_TRACE_STATE_LENGTH,
} from '../src/index.js';
import { run, trackChildren } from './fixtures/processes.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();

// The handler's own spans find the attempt's span through the active context.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = tracerProvider.getTracer('test');

/** A metric reader the test collects from whenever it wants (cumulative sums). */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
const reader = new TestReader();
const meterProvider = new MeterProvider({ readers: [reader] });

const stepping = createStepping({ connectionString: h.url, telemetry: { tracerProvider } });
test.after(() => stepping.close());

function spansNamed(name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name === name);
}

async function collect(): Promise<ResourceMetrics> {
  const { resourceMetrics, errors } = await reader.collect();
  assert.deepEqual(errors, []);
  return resourceMetrics;
}

/** The data points of a metric whose attributes include `match`. */
function points(
  rm: ResourceMetrics,
  name: string,
  match: Record<string, unknown> = {},
): DataPoint<unknown>[] {
  const metric = rm.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  if (!metric) return [];
  return (metric.dataPoints as DataPoint<unknown>[]).filter((p) =>
    Object.entries(match).every(([k, v]) => p.attributes[k] === v),
  );
}

function sum(rm: ResourceMetrics, name: string, match: Record<string, unknown> = {}): number {
  return points(rm, name, match).reduce((n, p) => n + (p.value as number), 0);
}

async function storedTrace(
  jobId: string,
): Promise<{ trace_parent: string | null; trace_state: string | null }> {
  const { rows } = await h.pool.query(`SELECT trace_parent, trace_state FROM stepping.jobs WHERE id = $1`, [
    jobId,
  ]);
  return rows[0];
}

test('enqueue stores the trace context; every attempt runs in a span linked to it, a failure records its error, a retry and a continuation get spans of their own', async (t) => {
  let failures = 1;
  const handlerSpans = new Map<number, string | undefined>();
  const flaky = defineStep(
    'tele.flaky',
    async (_args: Record<string, never>, ctx) => {
      // The handler's own span must nest under the attempt's.
      await tracer.startActiveSpan('handler work', async (span: Span) => {
        handlerSpans.set(ctx.attempt, span.spanContext().spanId);
        span.end();
      });
      if (failures-- > 0) throw new Error('flaky once');
      return { charged: true };
    },
    { backoff: { baseMs: 10, maxMs: 10 } },
  );
  const second = defineStep('tele.second', async () => {});
  await h.worker({ steps: [flaky, second], telemetry: { tracerProvider, meterProvider } }, t);

  // The producer's context carries a tracestate, which the job must keep too.
  const remote = {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: createTraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
  };
  const jobId = await context.with(trace.setSpanContext(context.active(), remote), () =>
    tracer.startActiveSpan('http request', async (request: Span) => {
      try {
        return await stepping.enqueue([flaky({}), second({})], { queue: 'tele' });
      } finally {
        request.end();
      }
    }),
  );
  assert.equal((await h.stepping.waitForJob(jobId, { timeoutMs: 15_000 })).status, 'succeeded');

  // The PRODUCER span: a child of the active span, its context stored on the job.
  const [request] = spansNamed('http request');
  const [send] = spansNamed('send tele');
  assert.ok(request && send);
  assert.equal(send.kind, SpanKind.PRODUCER);
  assert.equal(send.parentSpanContext?.spanId, request.spanContext().spanId);
  assert.equal(send.spanContext().traceId, remote.traceId);
  assert.equal(send.attributes['messaging.system'], 'stepping');
  assert.equal(send.attributes['messaging.destination.name'], 'tele');
  assert.equal(send.attributes['messaging.message.id'], jobId);
  const stored = await storedTrace(jobId);
  assert.deepEqual(stored, {
    trace_parent: `00-${remote.traceId}-${send.spanContext().spanId}-01`,
    trace_state: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
  });

  // Spans end once the engine answered the report, which may be just after the job finished.
  const attempts = (await eventually(
    () => {
      const found = spansNamed('process tele.flaky');
      return found.length === 2 && spansNamed('process tele.second').length === 1 ? found : null;
    },
    10_000,
    'the spans of three attempts',
  ))!;
  attempts.sort(
    (a, b) => Number(a.attributes['stepping.step.attempt']) - Number(b.attributes['stepping.step.attempt']),
  );
  const [first, retry] = attempts as [ReadableSpan, ReadableSpan];
  const [next] = spansNamed('process tele.second') as [ReadableSpan];
  for (const [span, attempt, index, name] of [
    [first, 1, 0, 'tele.flaky'],
    [retry, 2, 0, 'tele.flaky'],
    [next, 1, 1, 'tele.second'],
  ] as const) {
    assert.equal(span.kind, SpanKind.CONSUMER);
    // A root of its own trace, linked to the producer (the continuation's too: it was
    // leased by step_complete, not by a claim).
    assert.equal(span.parentSpanContext, undefined);
    assert.notEqual(span.spanContext().traceId, remote.traceId);
    assert.equal(span.links.length, 1);
    assert.equal(span.links[0]!.context.traceId, remote.traceId);
    assert.equal(span.links[0]!.context.spanId, send.spanContext().spanId);
    assert.equal(span.links[0]!.context.traceState?.serialize(), 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    assert.equal(span.attributes['stepping.job.id'], jobId);
    assert.equal(span.attributes['stepping.step.name'], name);
    assert.equal(span.attributes['stepping.step.index'], index);
    assert.equal(span.attributes['stepping.step.attempt'], attempt);
    assert.equal(span.attributes['stepping.step.phase'], 'forward');
    assert.equal(span.attributes['messaging.destination.name'], 'tele');
    assert.equal(span.attributes['messaging.operation.type'], 'process');
  }
  assert.notEqual(first.spanContext().spanId, retry.spanContext().spanId);
  assert.equal(first.attributes['stepping.step.outcome'], 'retry');
  assert.equal(first.status.code, SpanStatusCode.ERROR);
  assert.equal(first.status.message, 'flaky once');
  const exception = first.events.find((e) => e.name === 'exception');
  assert.equal(exception?.attributes?.['exception.message'], 'flaky once');
  assert.equal(retry.attributes['stepping.step.outcome'], 'succeeded');
  assert.notEqual(retry.status.code, SpanStatusCode.ERROR);
  assert.equal(retry.events.length, 0);
  assert.equal(next.attributes['stepping.step.outcome'], 'succeeded');

  // The handler's spans are children of their attempt's span.
  const work = spansNamed('handler work');
  for (const [attempt, span] of [
    [1, first],
    [2, retry],
  ] as const) {
    const mine = work.find((w) => w.spanContext().spanId === handlerSpans.get(attempt));
    assert.equal(mine?.parentSpanContext?.spanId, span.spanContext().spanId, `attempt ${attempt}`);
    assert.equal(mine?.spanContext().traceId, span.spanContext().traceId);
  }

  // Metrics of the same attempts.
  const rm = await collect();
  const step = { 'stepping.step.name': 'tele.flaky' };
  assert.equal(sum(rm, 'stepping.step.started', step), 2);
  assert.equal(sum(rm, 'stepping.step.succeeded', step), 1);
  assert.equal(sum(rm, 'stepping.step.failed', { ...step, 'stepping.step.outcome': 'retry' }), 1);
  assert.equal(sum(rm, 'stepping.step.started', { 'stepping.step.name': 'tele.second' }), 1);
  const durations = points(rm, 'stepping.step.duration', step).map((p) => (p.value as Histogram).count);
  assert.equal(
    durations.reduce((a, b) => a + b, 0),
    2,
  );
  const batches = points(rm, 'stepping.claim.batch_size').map((p) => p.value as Histogram);
  assert.ok(batches.reduce((n, b) => n + b.count, 0) >= 1, 'claims recorded');
  assert.ok(batches.reduce((n, b) => n + (b.sum ?? 0), 0) >= 2, 'at least the two claimed units');
});

test("a handler's hostile error (a throwing message getter, megabytes of text) reaches the span bounded, and the worker goes on", async (t) => {
  const hostile = defineStep(
    'tele.hostile',
    async (args: { kind: string }) => {
      if (args.kind === 'getter') {
        throw Object.defineProperty(new Error('hidden'), 'message', {
          get() {
            throw new Error('no message for you');
          },
        });
      }
      throw new Error('x'.repeat(5 * 1024 * 1024));
    },
    { maxAttempts: 1 },
  );
  await h.worker({ steps: [hostile], telemetry: { tracerProvider, meterProvider } }, t);
  const getter = await stepping.enqueue([hostile({ kind: 'getter' })]);
  const huge = await stepping.enqueue([hostile({ kind: 'huge' })]);
  for (const id of [getter, huge]) {
    assert.equal((await h.stepping.waitForJob(id, { timeoutMs: 10_000 })).status, 'failed');
  }
  const spanOf = (id: string) =>
    spansNamed('process tele.hostile').find((s) => s.attributes['stepping.job.id'] === id);
  await eventually(() => spanOf(getter) && spanOf(huge), 10_000, 'both spans');
  assert.equal(spanOf(getter)!.status.message, 'Error (its message could not be read)');
  assert.equal(spanOf(getter)!.attributes['stepping.step.outcome'], 'failed');
  assert.equal(spanOf(huge)!.status.message, 'x'.repeat(MAX_ERROR_MESSAGE_LENGTH));
  assert.equal(
    spanOf(huge)!.events.find((e) => e.name === 'exception')?.attributes?.['exception.message'],
    'x'.repeat(MAX_ERROR_MESSAGE_LENGTH),
  );
});

test('a malformed trace context given through SQL is refused with SP001 naming the field; a valid one is stored and linked', async (t) => {
  const c = await h.client();
  const refused: [string, string, string | null, RegExp][] = [
    ['not W3C', 'garbage', null, /trace_parent must be a W3C traceparent/],
    ['upper case', '00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01', null, /trace_parent/],
    ['version ff', 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', null, /trace_parent/],
    ['zero trace id', `00-${'0'.repeat(32)}-b7ad6b7169203331-01`, null, /trace_parent/],
    ['zero parent id', `00-0af7651916cd43dd8448eb211c80319c-${'0'.repeat(16)}-01`, null, /trace_parent/],
    ['trailing data', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x', null, /trace_parent/],
    [
      'tracestate too long',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      `a=${'b'.repeat(MAX_TRACE_STATE_LENGTH)}`,
      /trace_state must be a string of 1 to 512 printable ASCII characters/,
    ],
    [
      'tracestate with a line break',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'a=b\nc',
      /trace_state/,
    ],
    ['tracestate without traceparent', '', 'a=b', /trace_state/],
  ];
  for (const [what, parent, state, message] of refused) {
    await assert.rejects(
      c.query(
        `SELECT stepping.job_enqueue('[{"name":"tele.sql"}]', p_trace_parent => $1, p_trace_state => $2)`,
        [parent === '' ? null : parent, state],
      ),
      (e: { code?: string; message: string }) => {
        assert.equal(e.code, 'SP001', what);
        assert.match(e.message, /^stepping: job 0: /, what);
        assert.match(e.message, message, what);
        return true;
      },
    );
  }
  // The bulk function checks the JSON's type too.
  await assert.rejects(
    c.query(`SELECT * FROM stepping.job_enqueue_batch('[{"steps":[{"name":"a"}],"trace_parent":42}]')`),
    (e: { code?: string; message: string }) => e.code === 'SP001' && /trace_parent/.test(e.message),
  );
  // The table refuses it whatever writes it (the owner, here).
  const { rows } = await c.query(`SELECT stepping.job_enqueue('[{"name":"tele.none"}]') AS id`);
  await assert.rejects(
    c.query(`UPDATE stepping.jobs SET trace_parent = 'garbage' WHERE id = $1`, [rows[0].id]),
    (e: { code?: string; constraint?: string }) =>
      e.code === '23514' && e.constraint === 'jobs_trace_parent_w3c',
  );

  // A valid one, from SQL: stored, and the attempt's span links to it.
  const traceParent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const { rows: ok } = await c.query(
    `SELECT stepping.job_enqueue('[{"name":"tele.sql"}]', 'default', p_trace_parent => $1, p_trace_state => $2) AS id`,
    [traceParent, 'vendor=x'],
  );
  const jobId = String(ok[0].id);
  assert.deepEqual(await storedTrace(jobId), { trace_parent: traceParent, trace_state: 'vendor=x' });
  // Old positional calls still work (the new parameters are defaulted at the end).
  await c.query(
    `SELECT stepping.job_enqueue('[{"name":"tele.none"}]', 'default', 0, NULL, NULL, 'return', NULL)`,
  );
  await h.worker({ steps: [defineStep('tele.sql', async () => {})], telemetry: { tracerProvider } }, t);
  const span = (await eventually(
    () => spansNamed('process tele.sql').find((s) => s.attributes['stepping.job.id'] === jobId),
    10_000,
    'the span of the SQL-enqueued job',
  ))!;
  assert.equal(span.links[0]?.context.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(span.links[0]?.context.spanId, '00f067aa0ba902b7');
  assert.equal(span.links[0]?.context.traceState?.get('vendor'), 'x');
});

test('queue depth and oldest runnable age: gauges fed by queue_metrics(), queried once per collection, not per step', async (t) => {
  // Count the worker's queue_metrics() calls on its own pool.
  const pool = new pg.Pool({ connectionString: h.url, max: 10 });
  t.after(() => pool.end());
  let metricCalls = 0;
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('queue_metrics')) metricCalls++;
    return query(...args);
  };
  const readerHere = new TestReader();
  const meters = new MeterProvider({ readers: [readerHere] });
  const done = defineStep('gauge.done', async () => {});
  const { createWorker } = await import('../src/index.js');
  const worker = createWorker({ pool, steps: [done], telemetry: { tracerProvider, meterProvider: meters } });
  t.after(() => worker.stop());
  await worker.start();

  // Ten jobs run: no gauge query.
  const ids = await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 10 }, () => ({ steps: [done({})], options: { queue: 'gauge.run' } })),
  );
  for (const { jobId } of ids) await h.stepping.waitForJob(jobId, { timeoutMs: 10_000 });
  assert.equal(metricCalls, 0);

  // Waiting work no worker runs: two runnable (one waited an hour), one scheduled.
  await h.stepping.enqueue([{ name: 'gauge.nobody', args: {} }], { queue: 'gauge.wait' });
  await h.shiftClock('-1 hour'); // enqueued "an hour ago"
  await h.stepping.enqueue([{ name: 'gauge.nobody', args: {} }], { queue: 'gauge.wait' });
  await h.shiftClock('0');
  await h.stepping.enqueue([{ name: 'gauge.nobody', args: {} }], { queue: 'gauge.wait', delayMs: 3_600_000 });

  const { resourceMetrics: rm, errors } = await readerHere.collect();
  assert.deepEqual(errors, []);
  assert.equal(metricCalls, 1);
  const wait = { 'messaging.destination.name': 'gauge.wait' };
  assert.equal(sum(rm, 'stepping.queue.depth', { ...wait, 'stepping.job.state': 'runnable' }), 2);
  assert.equal(sum(rm, 'stepping.queue.depth', { ...wait, 'stepping.job.state': 'scheduled' }), 1);
  assert.equal(sum(rm, 'stepping.queue.depth', { ...wait, 'stepping.job.state': 'running' }), 0);
  const [age] = points(rm, 'stepping.queue.oldest_runnable_age', wait);
  assert.ok(
    (age?.value as number) >= 3600 && (age?.value as number) < 3660,
    `oldest age ${String(age?.value)}`,
  );
  assert.equal(age?.attributes['stepping.database'], worker.databaseStates()[0]!.database);
  // The drained queue was never seen with unfinished jobs by this worker: not reported.
  assert.equal(points(rm, 'stepping.queue.depth', { 'messaging.destination.name': 'gauge.run' }).length, 0);

  // A second reader collecting right away reuses the figures (one query per collection interval).
  await readerHere.collect();
  assert.equal(metricCalls, 1);

  // Once stopped, the worker no longer feeds (or queries for) the gauges.
  await worker.stop();
  await readerHere.collect();
  assert.equal(metricCalls, 1);
  await meters.shutdown();
});

test('without a tracer provider nothing is traced and nothing breaks', async (t) => {
  const plain = createStepping({ connectionString: h.url });
  t.after(() => plain.close());
  await h.worker({ steps: [defineStep('tele.plain', async () => 'ok')] }, t);
  const before = exporter.getFinishedSpans().length;
  const jobId = await plain.enqueue([{ name: 'tele.plain', args: {} }]);
  assert.equal((await plain.waitForJob(jobId, { timeoutMs: 10_000 })).status, 'succeeded');
  // No global provider is registered in this file: the API's no-op tracer makes invalid
  // span contexts, so nothing is stored and no span reaches the exporter.
  assert.deepEqual(await storedTrace(jobId), { trace_parent: null, trace_state: null });
  assert.equal(exporter.getFinishedSpans().length, before);
});

test('without @opentelemetry/api installed, enqueue and workers run as before', async () => {
  const out = await run('test/fixtures/no-otel.ts', [h.url], {});
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout.trim().split('\n').at(-1)!), {
    apiHidden: true,
    status: 'succeeded',
    output: 'done',
    traceParent: null,
  });
});

test("Stepping's public declarations never import @opentelemetry (an optional peer dependency)", () => {
  // Walk the built declarations from dist/src/index.d.ts (npm test builds first).
  const root = path.resolve(import.meta.dirname, '../dist/src');
  const seen = new Set<string>();
  const queue = [path.join(root, 'index.d.ts')];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/(?:from |import\()'([^']+)'/g)) {
      assert.ok(!spec!.startsWith('@opentelemetry/'), `${path.relative(root, file)} imports ${spec}`);
      if (spec!.startsWith('.'))
        queue.push(path.resolve(path.dirname(file), spec!.replace(/\.js$/, '.d.ts')));
    }
  }
  assert.ok(seen.has(path.join(root, 'telemetry/types.d.ts')), 'the telemetry option types are reachable');
});
