/**
 * One run of bench/tools/telemetry-overhead.ts: migrates the database with the given
 * engine, pre-loads N one-step no-op jobs, then times one worker draining them. Prints
 * `{ seconds, rssMb }`.
 *
 *   tsx telemetry-overhead-child.ts <url> <engine src/index.ts> <hidden|off|on> <N>
 */
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

import pg from 'pg';

const [url, enginePath, otel, n] = process.argv.slice(2) as [string, string, string, string];
const N = Number(n);
if (otel === 'hidden') register('../../test/fixtures/hide-otel-hooks.mjs', import.meta.url);
type Engine = typeof import('../../src/index.js');
const engine = (await import(pathToFileURL(enginePath).href)) as Engine;

let telemetry: Record<string, unknown> | undefined;
if (otel === 'on') {
  const { context } = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } =
    await import('@opentelemetry/sdk-trace-base');
  const { MeterProvider, PeriodicExportingMetricReader, InMemoryMetricExporter, AggregationTemporality } =
    await import('@opentelemetry/sdk-metrics');
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spans)] });
  const meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
        exportIntervalMillis: 1000,
      }),
    ],
  });
  // Spans are exported in batches; drop them as they come so memory stays flat.
  setInterval(() => spans.reset(), 1000).unref();
  telemetry = { tracerProvider, meterProvider };
}

const stepping = engine.createStepping({ connectionString: url });
await stepping.migrate();
for (let i = 0; i < N; i += 5000) {
  const count = Math.min(5000, N - i);
  await stepping.enqueueMany(
    undefined,
    Array.from({ length: count }, () => ({ steps: [{ name: 'noop', args: {} }] })),
  );
}
await stepping.close();
const admin = new pg.Client(url);
await admin.connect();
await admin.query('ANALYZE');
await admin.query('CHECKPOINT');
await admin.end();

const noop = engine.defineStep('noop', async () => {});
const worker = engine.createWorker({
  connectionString: url,
  steps: [noop],
  concurrency: 100,
  batchSize: 100,
  poolSize: 20,
  ...(telemetry ? { telemetry } : {}),
});
let done = 0;
let finish!: () => void;
const finished = new Promise<void>((resolve) => (finish = resolve));
worker.on('job:succeeded', () => {
  if (++done === N) finish();
});
const t0 = performance.now();
await worker.start();
await finished;
const seconds = (performance.now() - t0) / 1000;
const rssMb = Math.round(process.memoryUsage().rss / 1024 / 1024);
await worker.stop();
console.log(JSON.stringify({ seconds, rssMb }));
process.exit(0);
