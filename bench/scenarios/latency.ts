/**
 * Latency of an idle worker: latencyJobs jobs enqueued one per transaction, latencyGapMs
 * apart, to a worker child that has drained everything. Latency = the handler's start
 * (wall clock in the child) minus the moment COMMIT returned to the producer (wall clock
 * in the parent), in ms. The wake-up is each library's own: NOTIFY for Stepping and
 * graphile-worker, NOTIFY or its poll for pg-boss (per the variant).
 */
import pg from 'pg';

import { withWorkerChild } from '../lib/child-process.js';
import type { BenchContext } from '../lib/context.js';
import { LIBRARIES } from '../lib/libraries.js';
import type { ChildResult } from '../lib/protocol.js';
import { percentile, sleep, wallMs } from '../lib/stats.js';
import type { Variant } from '../lib/variants.js';
import { childSpec } from '../lib/worker-run.js';

/** Records latency.p50/p95/p99/max (ms) of the variant. */
export async function latencyScenario(ctx: BenchContext, variant: Variant, rep: number): Promise<void> {
  const { params, results } = ctx;
  const { library, id: who } = variant;
  await withWorkerChild(library, ctx.node.path, (booting) =>
    ctx.withFreshDatabase(
      library,
      'latency',
      async (url) => {
        const jobs = params.latencyJobs;
        const committedAt = new Array<number>(jobs).fill(Number.NaN);
        const startedAt = new Array<number>(jobs).fill(Number.NaN);
        let hits = 0;
        let allHit: () => void = () => {};
        const allHitSeen = new Promise<void>((resolve) => (allHit = resolve));
        const child = await booting;
        child.run(childSpec(ctx, variant, url, 'latency', jobs), (seq, t) => {
          if (Number.isNaN(startedAt[seq]!)) {
            startedAt[seq] = t;
            if (++hits === jobs) allHit();
          }
        });
        let result: ChildResult | undefined;
        const producer = await LIBRARIES[library].producer(url);
        const client = new pg.Client({ connectionString: url });
        try {
          await client.connect();
          await child.started;
          await sleep(300); // let the worker settle into its idle wait
          const t0 = performance.now();
          for (let seq = 0; seq < jobs; seq++) {
            const wait = t0 + seq * params.latencyGapMs - performance.now();
            if (wait > 0) await sleep(wait);
            await client.query('BEGIN');
            await producer.enqueueInTx(client, { seq });
            await client.query('COMMIT');
            committedAt[seq] = wallMs();
          }
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([allHitSeen, new Promise((resolve) => (timer = setTimeout(resolve, 60_000)))]);
          clearTimeout(timer);
          child.stop();
          result = await child.result;
        } catch (error) {
          results.failures.push(`latency ${who} rep ${rep}: ${(error as Error).message}`);
        } finally {
          await client.end();
          await producer.close();
          await child.close(5000);
        }
        if (result) results.record('latency.hwmMb', who, result.hwmMb);
        const latencies = startedAt.map((s, i) => s - committedAt[i]!).filter((v) => Number.isFinite(v));
        if (latencies.length < jobs) {
          results.failures.push(
            `latency ${who} rep ${rep}: only ${latencies.length} of ${jobs} jobs started`,
          );
        }
        for (const p of [50, 95, 99] as const) results.record(`latency.p${p}`, who, percentile(latencies, p));
        results.record('latency.max', who, percentile(latencies, 100));
        ctx.log(
          `  latency ${who}: p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
            `p99 ${percentile(latencies, 99).toFixed(1)} ms`,
        );
      },
      variant,
    ),
  );
}
