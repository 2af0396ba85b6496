/**
 * Analysis tool: the worker's telemetry cost per step attempt alone, no database. Runs
 * 200,000 attempts (start, run a trivial handler in the span, end) through one database's
 * telemetry, three rounds, and prints microseconds per attempt. `hidden` skips loading
 * `@opentelemetry/api` (as when it is not installed); `off` loads it without an SDK.
 *
 *   npx tsx bench/tools/telemetry-attempt-cost.ts <hidden|off>
 */
import type { Engine, LeasedUnit } from '../../src/db/engine.js';
import type { Queryable } from '../../src/db/queryable.js';
import { WorkerTelemetry } from '../../src/telemetry/worker.js';

const mode = process.argv[2] === 'hidden' ? 'hidden' : 'off';
const telemetry = new WorkerTelemetry();
if (mode === 'off') await telemetry.load();
const engine = { queueMetrics: async () => [] } as unknown as Engine;
const db = telemetry.forDatabase('bench', engine, {} as Queryable);
const unit: LeasedUnit = {
  jobId: '1',
  leaseToken: '00000000-0000-0000-0000-000000000000',
  stepIndex: 0,
  phase: 'forward',
  name: 'noop',
  args: {},
  attempt: 1,
  queue: 'default',
  stepCount: 1,
  results: {},
  traceParent: null,
  traceState: null,
  maxAttempts: null,
  deadlineInMs: null,
  cancelRequested: false,
  fleetLimited: false,
};
const N = 200_000;
for (let round = 0; round < 3; round++) {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const attempt = db.attempt(unit);
    await attempt.run(async () => undefined);
    attempt.end({ outcome: 'succeeded', error: null, durationMs: 1 });
  }
  console.log(`${mode}: ${(((performance.now() - t0) * 1000) / N).toFixed(2)} µs per attempt`);
}
db.close();
