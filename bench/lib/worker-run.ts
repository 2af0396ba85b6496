/**
 * One measured worker run over pre-enqueued jobs: ANALYZE (as autovacuum would have) and
 * CHECKPOINT, read the WAL position, transaction and table counters, run the worker
 * child, then read them again (after the worker's backends have exited and so flushed
 * their statistics) and record every figure under `key` for the variant.
 */
import type { WorkerChild } from './child-process.js';
import type { BenchContext } from './context.js';
import {
  committedTransactions,
  functionStats,
  queryOnce,
  type TableStats,
  tableStats,
  tableStatsDelta,
} from './db.js';
import { analyzeAll, LIBRARIES } from './libraries.js';
import type { ChildResult, ChildSpec } from './protocol.js';
import { sleep } from './stats.js';
import type { Variant } from './variants.js';
import { walMark, walSince } from './wal.js';

/** What a worker child runs, from the run's parameters. */
export function childSpec(
  ctx: BenchContext,
  variant: Variant,
  connectionString: string,
  mode: ChildSpec['mode'],
  expectFinals: number,
): ChildSpec {
  return {
    variant,
    connectionString,
    mode,
    expectFinals,
    capMs: ctx.params.drainCapMs,
    countStatements: ctx.params.countStatements,
    timeoutMs: ctx.params.timeoutMs,
  };
}

/** Row writes of the library's tables in one run, per step. */
function rowWrites(tables: TableStats[], steps: number) {
  const sum = (f: (t: TableStats) => number) => tables.reduce((a, t) => a + f(t), 0);
  const updated = sum((t) => t.updated);
  return {
    updatesPerStep: updated / steps,
    hotPercent: updated > 0 ? (sum((t) => t.hotUpdated) / updated) * 100 : Number.NaN,
    deletesPerStep: sum((t) => t.deleted) / steps,
    insertsPerStep: sum((t) => t.inserted) / steps,
  };
}

/** Drains `jobs` jobs of `steps` steps with a booted worker child; records the figures under `key`. */
export async function measuredDrain(
  ctx: BenchContext,
  child: WorkerChild,
  variant: Variant,
  url: string,
  key: string,
  rep: number,
  jobs: number,
  steps: number,
): Promise<ChildResult | null> {
  const { results } = ctx;
  const who = variant.id;
  const tPrep = performance.now();
  if (ctx.params.analyze) await analyzeAll(url);
  await queryOnce(ctx.factory.serverUrl, 'CHECKPOINT');
  const prepMs = performance.now() - tPrep;
  const tables0 = await tableStats(url);
  const xact0 = await committedTransactions(url);
  // WAL is decoded once per figure and variant (it takes seconds; WAL per job varies
  // little); a repetition whose WAL could not be read leaves it to the next.
  const walKey = `${key}/${who}`;
  const meter = results.walDecoded.has(walKey) ? null : ctx.wal;
  const mark = await walMark(url, meter);
  const cpu0 = ctx.serverCpu?.read() ?? Number.NaN;
  child.run(childSpec(ctx, variant, url, 'drain', jobs));
  let result: ChildResult;
  try {
    result = await child.result;
  } catch (error) {
    results.failures.push(`${key} ${who} rep ${rep}: ${(error as Error).message}`);
    ctx.log(`  ${key} ${who}: FAILED ${(error as Error).message}`);
    await child.close(1000);
    return null;
  }
  const tAfter = performance.now();
  await child.close();
  // Backends flush their statistics when they exit, a moment after the child closed them.
  await sleep(300);
  const cpu1 = ctx.serverCpu?.read() ?? Number.NaN;
  const tWal = performance.now();
  const wal = await walSince(meter, url, mark);
  if (wal.own) results.walDecoded.add(walKey);
  else if (meter) ctx.log(`  WAL not decoded: ${meter.lastError}`);
  const walMs = performance.now() - tWal;
  const xact1 = await committedTransactions(url);
  const tables = tableStatsDelta(tables0, await tableStats(url));
  const totalSteps = jobs * steps;
  // A capped run did part of the work: per-step figures divide by what it did.
  const doneSteps = result.capped ? Math.max(1, result.handlerRuns) : totalSteps;
  if (result.capped) {
    results.capped.add(`${key}/${who}`);
  } else {
    const problem = await LIBRARIES[variant.library].verifyDrained(url, jobs, steps);
    if (problem || result.handlerRuns !== totalSteps) {
      results.failures.push(
        `${key} ${who} rep ${rep}: ${problem ?? `${result.handlerRuns} handler runs for ${totalSteps} steps`}`,
      );
    }
  }
  const perK = 1000 / doneSteps;
  const rate = (doneSteps / result.elapsedMs) * 1000;
  const writes = rowWrites(tables, doneSteps);
  results.record(`${key}.throughput`, who, rate);
  results.record(`${key}.elapsedMs`, who, result.elapsedMs);
  results.record(`${key}.startMs`, who, result.startMs);
  results.record(`${key}.hwmMb`, who, result.hwmMb);
  results.record(`${key}.rssPeakMb`, who, result.rssPeakMb);
  results.record(`${key}.rssBaselineMb`, who, result.rssBaselineMb);
  if (ctx.params.countStatements) {
    results.record(`${key}.statementsPerStep`, who, result.statements / doneSteps);
  }
  results.record(`${key}.transactionsPerStep`, who, (xact1 - xact0) / doneSteps);
  // The database's own WAL when it was decoded, else the server's (see wal.ts).
  const walBytes = wal.own?.bytes ?? wal.serverBytes;
  if (wal.own) {
    results.record(`${key}.walBytesPerStep`, who, walBytes / doneSteps);
    results.record(`${key}.walFpiBytesPerStep`, who, wal.own.fpiBytes / doneSteps);
  }
  results.record(`${key}.walServerBytesPerStep`, who, wal.serverBytes / doneSteps);
  results.record(`${key}.updatesPerStep`, who, writes.updatesPerStep);
  results.record(`${key}.hotPercent`, who, writes.hotPercent);
  results.record(`${key}.deletesPerStep`, who, writes.deletesPerStep);
  results.record(`${key}.insertsPerStep`, who, writes.insertsPerStep);
  results.record(`${key}.workerCpuMsPer1kSteps`, who, (result.cpuUserMs + result.cpuSystemMs) * perK);
  results.record(`${key}.serverCpuMsPer1kSteps`, who, (cpu1 - cpu0) * perK);
  ctx.results.profiles.push({
    scenario: key,
    variant: who,
    rep,
    steps: doneSteps,
    elapsedMs: result.elapsedMs,
    statements: result.statementsByText,
    functions: await functionStats(url),
    tables,
    walKinds: wal.own?.kinds ?? [],
  });
  ctx.log(
    `  ${key} ${who}: ${Math.round(rate)} steps/s${result.capped ? ` (capped at ${ctx.params.drainCapMs} ms)` : ''}, ` +
      `${(walBytes / doneSteps).toFixed(0)} WAL B/step${wal.own ? '' : ' (server-wide)'}, ` +
      `${writes.updatesPerStep.toFixed(2)} updates/step (${writes.hotPercent.toFixed(0)}% HOT), ` +
      `${ctx.params.countStatements ? `${(result.statements / doneSteps).toFixed(3)} stmts/step, ` : ''}` +
      `${((xact1 - xact0) / doneSteps).toFixed(3)} xacts/step, peak RSS ${result.hwmMb.toFixed(0)} MB ` +
      `[analyze+checkpoint ${(prepMs / 1000).toFixed(1)} s, close ${((tWal - tAfter) / 1000).toFixed(1)} s, ` +
      `WAL decode ${(walMs / 1000).toFixed(1)} s]`,
  );
  return result;
}
