/**
 * One measured worker run over pre-enqueued jobs: checkpoint, fork the worker child,
 * wait for its result, then read the database's statistics (after the worker's backends
 * have exited and so flushed theirs) and record every figure under `key`.
 */
import type { WorkerChild } from './child-process.js';
import type { BenchContext } from './context.js';
import { committedTransactions, functionStats, queryOnce, tableStats } from './db.js';
import { LIBRARIES } from './libraries.js';
import type { BenchParams } from './params.js';
import type { ChildResult, ChildSpec, LibraryName } from './protocol.js';
import { sleep } from './stats.js';

/** Drains `jobs` jobs of `steps` steps with a booted worker child and records the figures under `key`. */
/** What a worker child runs: the shared worker settings of the run, for one library and database. */
export function childSpec(
  params: BenchParams,
  library: LibraryName,
  connectionString: string,
  mode: ChildSpec['mode'],
  expectFinals: number,
): ChildSpec {
  return {
    library,
    connectionString,
    mode,
    expectFinals,
    concurrency: params.concurrency,
    poolSize: params.poolSize,
    pollIntervalMs: params.pollIntervalMs,
    graphile: params.graphile,
    timeoutMs: params.timeoutMs,
  };
}

export async function measuredDrain(
  ctx: BenchContext,
  child: WorkerChild,
  url: string,
  key: string,
  rep: number,
  jobs: number,
  steps: number,
): Promise<ChildResult | null> {
  const { params, results } = ctx;
  const library: LibraryName = child.library;
  await queryOnce(ctx.factory.serverUrl, 'CHECKPOINT');
  const xact0 = await committedTransactions(url);
  const cpu0 = ctx.serverCpu?.read() ?? Number.NaN;
  child.run(childSpec(params, library, url, 'drain', jobs));
  let result: ChildResult;
  try {
    result = await child.result;
  } catch (error) {
    results.failures.push(`${key} ${library} rep ${rep}: ${(error as Error).message}`);
    ctx.log(`  ${key} ${library}: FAILED ${(error as Error).message}`);
    await child.close(1000);
    return null;
  }
  await child.close();
  // Backends flush their statistics when they exit, a moment after the child closed them.
  await sleep(300);
  const cpu1 = ctx.serverCpu?.read() ?? Number.NaN;
  const xact1 = await committedTransactions(url);
  const problem = await LIBRARIES[library].verifyDrained(url, jobs, steps);
  const totalSteps = jobs * steps;
  if (problem || result.handlerRuns !== totalSteps) {
    results.failures.push(
      `${key} ${library} rep ${rep}: ${problem ?? `${result.handlerRuns} handler runs for ${totalSteps} steps`}`,
    );
  }
  const perK = 1000 / totalSteps;
  results.record(`${key}.throughput`, library, (totalSteps / result.elapsedMs) * 1000);
  results.record(`${key}.elapsedMs`, library, result.elapsedMs);
  results.record(`${key}.startMs`, library, result.startMs);
  results.record(`${key}.handlersDoneMs`, library, result.handlersDoneMs);
  results.record(`${key}.hwmMb`, library, result.hwmMb);
  results.record(`${key}.rssPeakMb`, library, result.rssPeakMb);
  results.record(`${key}.rssBaselineMb`, library, result.rssBaselineMb);
  results.record(`${key}.statementsPerStep`, library, result.statements / totalSteps);
  results.record(`${key}.transactionsPerStep`, library, (xact1 - xact0) / totalSteps);
  results.record(`${key}.workerCpuMsPer1kSteps`, library, (result.cpuUserMs + result.cpuSystemMs) * perK);
  results.record(`${key}.serverCpuMsPer1kSteps`, library, (cpu1 - cpu0) * perK);
  await pushProfile(ctx, key, library, rep, url, totalSteps, result);
  ctx.log(
    `  ${key} ${library}: ${Math.round((totalSteps / result.elapsedMs) * 1000)} steps/s, ` +
      `${(result.statements / totalSteps).toFixed(2)} stmts/step, peak RSS ${result.hwmMb.toFixed(0)} MB`,
  );
  return result;
}

/** Records what the run sent and what the database did (read after the worker's backends exited). */
export async function pushProfile(
  ctx: BenchContext,
  key: string,
  library: LibraryName,
  rep: number,
  url: string,
  steps: number,
  result: ChildResult,
): Promise<void> {
  ctx.results.profiles.push({
    scenario: key,
    library,
    rep,
    steps,
    elapsedMs: result.elapsedMs,
    statements: result.statementsByText,
    functions: await functionStats(url),
    tables: await tableStats(url),
  });
}
