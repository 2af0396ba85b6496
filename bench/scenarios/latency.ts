/**
 * Scenario 5: an idle worker child; latencyJobs jobs enqueued one per transaction,
 * latencyGapMs apart. Latency = the handler's start (wall clock in the child) minus the
 * moment COMMIT returned to the producer (wall clock in the parent), in ms.
 */
import pg from 'pg';
import { withWorkerChild } from '../lib/child-process.js';
import type { BenchContext } from '../lib/context.js';
import { LIBRARIES } from '../lib/libraries.js';
import type { LibraryName } from '../lib/protocol.js';
import { percentile, sleep, wallMs } from '../lib/stats.js';
import { childSpec, pushProfile } from '../lib/worker-run.js';
import type { ChildResult } from '../lib/protocol.js';

/** Records latency.p50/p95/p99/max (ms). */
export async function latencyScenario(ctx: BenchContext, library: LibraryName, rep: number): Promise<void> {
  const { params, results } = ctx;
  await withWorkerChild(library, (booting) =>
    ctx.withFreshDatabase(library, 'latency', async (url) => {
      const jobs = params.latencyJobs;
      const committedAt = new Array<number>(jobs).fill(Number.NaN);
      const startedAt = new Array<number>(jobs).fill(Number.NaN);
      let hits = 0;
      let allHit: () => void = () => {};
      const allHitSeen = new Promise<void>((resolve) => (allHit = resolve));
      const child = await booting;
      child.run(childSpec(params, library, url, 'latency', jobs), (seq, t) => {
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
        await Promise.race([allHitSeen, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
        clearTimeout(timer);
        child.stop();
        result = await child.result;
      } catch (error) {
        results.failures.push(`latency ${library} rep ${rep}: ${(error as Error).message}`);
      } finally {
        await client.end();
        await producer.close();
        await child.close(5000);
      }
      if (result) {
        await sleep(300); // backends flush their statistics as they exit
        await pushProfile(ctx, 'latency', library, rep, url, jobs, result);
      }
      const latencies = startedAt.map((s, i) => s - committedAt[i]!).filter((v) => Number.isFinite(v));
      if (latencies.length < jobs) {
        results.failures.push(
          `latency ${library} rep ${rep}: only ${latencies.length} of ${jobs} jobs started`,
        );
      }
      for (const p of [50, 95, 99] as const)
        results.record(`latency.p${p}`, library, percentile(latencies, p));
      results.record('latency.max', library, percentile(latencies, 100));
      ctx.log(
        `  latency ${library}: p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
          `p99 ${percentile(latencies, 99).toFixed(1)} ms`,
      );
    }),
  );
}
