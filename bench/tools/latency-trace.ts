/**
 * Analysis tool, not part of `npm run bench`: where an idle worker's latency goes (issue
 * 11: p50 and p99 at or below graphile-worker's). One process enqueues `n` one-step jobs,
 * one per transaction, `gap` ms apart, to a worker of the compiled package (dist/, built
 * first when src/ is newer) at its defaults, and times each job's stages from the
 * producer's COMMIT: the NOTIFY reaching the worker's LISTEN connection, the claim sent
 * (Fetcher.startClaim, then the pool's client.query), its answer, the handler's start.
 * Medians and tails of each stage, the claims' slowest cases (and whether each was the
 * first on its connection), and the server time of each engine function per call
 * (`track_functions = all` on the run's database). Then drops the database.
 *
 *   npx tsx bench/tools/latency-trace.ts <serverUrl> [n=300] [gap=20]
 *
 * The stages are found by wrapping methods of the compiled modules and pg.Client: the
 * wrappers cost a few µs each, so the sum is a little above what `npm run bench` sees.
 */
import { pathToFileURL } from 'node:url';

import pg from 'pg';

import type * as Stepping from '../../src/index.js';
import { BUILT_ENTRY, ensureBuilt } from '../lib/built-package.js';
import { DatabaseFactory, functionStats } from '../lib/db.js';
import { percentile, sleep } from '../lib/stats.js';

const [serverUrl, nArg, gapArg] = process.argv.slice(2);
if (!serverUrl) throw new Error('usage: tsx bench/tools/latency-trace.ts <serverUrl> [n=300] [gap=20]');
const N = Number(nArg ?? 300);
const GAP_MS = Number(gapArg ?? 20);
/** The first jobs warm the connections and plans: left out of the figures. */
const WARMUP = 20;

ensureBuilt((line) => console.log(line));
const built = (file: string) => pathToFileURL(BUILT_ENTRY.replace(/index\.js$/, file)).href;
const { createStepping, createWorker, defineStep } = (await import(
  pathToFileURL(BUILT_ENTRY).href
)) as typeof Stepping;
const { Fetcher } = (await import(built('worker/fetcher.js'))) as { Fetcher: { prototype: object } };

type Stage = 'notified' | 'startClaim' | 'claimSent' | 'claimAnswered' | 'handler';
const at: Record<Stage, number[]> = {
  notified: [],
  startClaim: [],
  claimSent: [],
  claimAnswered: [],
  handler: [],
};
const claimPid: number[] = [];
let current = -1;
const mark = (stage: Stage) => {
  if (current >= 0 && at[stage][current] === undefined) at[stage][current] = performance.now();
};

// Fetcher.startClaim: the dispatcher granted the slots (after the NOTIFY's wake-up).
const proto = Fetcher.prototype as { startClaim: (...a: unknown[]) => unknown };
const startClaim = proto.startClaim;
proto.startClaim = function (this: unknown, ...a: unknown[]) {
  mark('startClaim');
  return startClaim.apply(this, a);
};
// pg.Client: the NOTIFY's arrival, and the claim's query going out and answered.
type Emit = (this: pg.Client, event: string, ...a: unknown[]) => boolean;
const clientProto = pg.Client.prototype as unknown as { emit: Emit; query: (...a: unknown[]) => unknown };
const emit = clientProto.emit;
clientProto.emit = function (this: pg.Client, event: string, ...a: unknown[]) {
  if (event === 'notification') mark('notified');
  return emit.call(this, event, ...a);
};
const query = clientProto.query;
clientProto.query = function (this: pg.Client & { processID?: number }, ...a: unknown[]) {
  const first = a[0] as string | { text?: string } | undefined;
  const text = typeof first === 'string' ? first : first?.text;
  if (
    current >= 0 &&
    typeof text === 'string' &&
    text.includes('step_claim') &&
    at.claimSent[current] === undefined
  ) {
    const seq = current;
    mark('claimSent');
    claimPid[seq] = this.processID ?? 0;
    const last = a[a.length - 1];
    if (typeof last === 'function') {
      a[a.length - 1] = (...r: unknown[]) => {
        at.claimAnswered[seq] ??= performance.now();
        return (last as (...x: unknown[]) => unknown)(...r);
      };
    }
  }
  return query.apply(this, a);
};

const factory = new DatabaseFactory(serverUrl);
const name = await factory.create('lattrace', undefined, { trackFunctions: true });
const url = factory.url(name);
try {
  const stepping = createStepping({ connectionString: url });
  await stepping.migrate();
  let ran: () => void = () => {};
  const noop = defineStep('noop', (args: { seq: number }) => {
    at.handler[args.seq] = performance.now();
    ran();
  });
  const worker = createWorker({ connectionString: url, steps: [noop] });
  await worker.start();
  const producer = new pg.Client({ connectionString: url });
  await producer.connect();
  await sleep(500);
  const committed: number[] = [];
  for (let seq = 0; seq < N; seq++) {
    const started = new Promise<void>((resolve) => (ran = resolve));
    current = seq;
    await producer.query('BEGIN');
    await stepping.enqueue(producer, [noop({ seq })]);
    await producer.query('COMMIT');
    committed[seq] = performance.now();
    await started;
    await sleep(GAP_MS);
  }
  current = -1;
  await worker.stop();
  await producer.end();
  await stepping.close();

  const between = (to: number[], from: number[]) =>
    to
      .map((t, i) => t - from[i]!)
      .slice(WARMUP)
      .filter((v) => Number.isFinite(v));
  const show = (label: string, v: number[]) =>
    console.log(
      `${label.padEnd(28)} p50 ${percentile(v, 50).toFixed(3)}  p90 ${percentile(v, 90).toFixed(3)}  p99 ${percentile(v, 99).toFixed(3)} ms`,
    );
  console.log(
    `${N - WARMUP} jobs (${WARMUP} left out as warm-up), ${GAP_MS} ms apart, times from the producer's COMMIT`,
  );
  show('COMMIT -> NOTIFY arrived', between(at.notified, committed));
  show('NOTIFY -> claim granted', between(at.startClaim, at.notified));
  show('claim granted -> sent', between(at.claimSent, at.startClaim));
  show('claim round trip', between(at.claimAnswered, at.claimSent));
  show('answer -> handler started', between(at.handler, at.claimAnswered));
  show('COMMIT -> handler started', between(at.handler, committed));
  const seen = new Set<number>();
  const slowest = at.claimAnswered
    .map((t, i) => ({
      i,
      ms: t - at.claimSent[i]!,
      pid: claimPid[i]!,
      first: !seen.has(claimPid[i]!) && !!seen.add(claimPid[i]!),
    }))
    .filter((c) => Number.isFinite(c.ms))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 8);
  console.log(
    `claims on ${seen.size} connections; slowest: ${slowest.map((c) => `#${c.i} ${c.ms.toFixed(2)} ms${c.first ? ' (first on its connection)' : ''}`).join(', ')}`,
  );
  await sleep(1200); // the statistics of the last calls reach the view
  console.log('server time per call, µs (self / with callees), calls:');
  for (const f of (await functionStats(url)).filter((f) => f.calls >= N / 2)) {
    console.log(
      `  ${f.fn.replace(/^stepping\./, '').padEnd(22)} ${((f.selfMs * 1000) / f.calls).toFixed(0).padStart(5)} / ${((f.totalMs * 1000) / f.calls).toFixed(0).padStart(5)}  ${f.calls}`,
    );
  }
} finally {
  await factory.drop(name);
}
