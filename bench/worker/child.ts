/**
 * Entry of a worker child process (forked by lib/child-process.ts on the Node binary the
 * run chose). Loads only the library named in argv[2], then receives a ChildSpec, counts
 * the statements of every connection (pg.Client.prototype.query), runs the library's
 * worker on its own pool, samples RSS and CPU, and reports a ChildResult. In drain mode
 * it stops once every job's last handler has run and the database shows no unfinished
 * job, or at the cap; in latency mode it reports each handler's start (wall-clock ms) and
 * stops when told.
 */
import { readFileSync } from 'node:fs';

import pg from 'pg';

import type { ChildResult, ChildSpec, FromChild, LibraryName, ToChild } from '../lib/protocol.js';
import { QueryCounter } from '../lib/query-counter.js';
import { sleep, wallMs } from '../lib/stats.js';
import type { WorkerStarter } from './adapter.js';

const MB = 1024 * 1024;

function send(message: FromChild): void {
  process.send?.(message);
}

function vmHwmMb(): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The query that is 0 when no job is left unfinished. */
const REMAINING: Record<LibraryName, string> = {
  stepping: `SELECT count(*)::int AS n FROM stepping.job_overview
             WHERE status IN ('pending', 'running', 'compensating')`,
  graphile: `SELECT count(*)::int AS n FROM graphile_worker._private_jobs`,
  pgboss: `SELECT count(*)::int AS n FROM pgboss.job WHERE state < 'completed'`,
};

async function loadStarter(library: LibraryName): Promise<WorkerStarter> {
  if (library === 'stepping') return (await import('./stepping.js')).steppingStarter;
  if (library === 'graphile') return (await import('./graphile.js')).graphileStarter;
  return (await import('./pgboss.js')).pgbossStarter;
}

async function main(
  spec: ChildSpec,
  starter: WorkerStarter,
  stopRequested: Promise<void>,
): Promise<ChildResult> {
  const counter = new QueryCounter();
  if (spec.countStatements) counter.install();
  // An uncounted connection that confirms the end of a drain in the database.
  const probe = new pg.Client({ connectionString: spec.connectionString });
  counter.ignore(probe);
  await probe.connect();
  await starter.prepare?.(spec);

  global.gc?.();
  const rssBaselineMb = process.memoryUsage().rss / MB;
  let rssPeak = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 20);

  let handlerRuns = 0;
  let finals = 0;
  let handlersDone = Number.NaN;
  let allFinal: () => void = () => {};
  const allFinalSeen = new Promise<void>((resolve) => (allFinal = resolve));
  const onRun = (seq: number | undefined, final: boolean): void => {
    handlerRuns += 1;
    if (seq !== undefined) send({ type: 'hit', seq, t: wallMs() });
    if (final && ++finals === spec.expectFinals && spec.mode === 'drain') {
      handlersDone = performance.now();
      allFinal();
    }
  };

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = await starter.start(spec, onRun);
  const startMs = performance.now() - t0;
  send({ type: 'started' });

  let timer: NodeJS.Timeout | undefined;
  let capTimer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${spec.timeoutMs} ms (${finals} jobs finished)`)),
      spec.timeoutMs,
    );
  });
  let capped = false;
  let t1: number;
  try {
    if (spec.mode === 'drain') {
      const cap = new Promise<'cap'>((resolve) => {
        capTimer = setTimeout(() => resolve('cap'), spec.capMs);
      });
      const first = await Promise.race([allFinalSeen.then(() => 'done' as const), cap, timeout]);
      if (first === 'cap') {
        capped = true;
        t1 = performance.now();
      } else {
        // The last handlers have run; their results may still be on the way (batched).
        for (;;) {
          const { rows } = await probe.query<{ n: number }>(REMAINING[spec.variant.library]);
          if (rows[0]?.n === 0) break;
          await Promise.race([sleep(2), timeout]);
        }
        t1 = performance.now();
      }
    } else {
      await Promise.race([stopRequested, timeout]);
      t1 = performance.now();
    }
  } finally {
    clearTimeout(timer);
    clearTimeout(capTimer);
  }
  const cpu = process.cpuUsage(cpu0);
  const statementsByText = counter.snapshot();
  const statements = counter.total;
  clearInterval(sampler);
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  await worker.stop();
  await probe.end();
  return {
    startMs,
    handlersDoneMs: handlersDone - t0,
    elapsedMs: t1 - t0,
    capped,
    handlerRuns,
    rssBaselineMb,
    rssPeakMb: rssPeak / MB,
    hwmMb: vmHwmMb(),
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    statements,
    statementsByText,
    node: process.version,
  };
}

// Load the library first (argv[2]), say so, then wait for the spec: the parent can boot
// the next child while it prepares that run's database.
const arg = process.argv[2];
const library: LibraryName = arg === 'graphile' || arg === 'pgboss' ? arg : 'stepping';
const starter = await loadStarter(library);
let requestStop: () => void = () => {};
const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
process.on('message', (message: ToChild) => {
  if (message.type === 'stop') {
    requestStop();
    return;
  }
  main(message.spec, starter, stopRequested).then(
    (result) => {
      send({ type: 'result', result });
      process.disconnect?.();
      // A library that leaves a timer or socket behind must not keep the child alive.
      setTimeout(() => process.exit(0), 2000).unref();
    },
    (error: unknown) => {
      send({
        type: 'failed',
        message: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
      process.disconnect?.();
      setTimeout(() => process.exit(1), 100).unref();
    },
  );
});
send({ type: 'ready' });
