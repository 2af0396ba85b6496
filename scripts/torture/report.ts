/** The printed summary of a torture run: figures, resume times, the held snapshot, violations. */
import type { CheckFigures, ResumeFigure, Violation, XminFigure } from './check.js';
import type { FaultRunner, Termination } from './faults.js';
import type { Fleet } from './fleet.js';
import type { ProducerDatabase } from './producer.js';

/** Everything the summary prints, also written as JSON by --report. */
export interface Summary {
  seed: number;
  mode: 'quick' | 'full';
  faultSeconds: number;
  wallSeconds: number;
  server: string;
  drainSeconds: number | null;
  figures: CheckFigures;
  producers: Record<string, ProducerDatabase['stats']>;
  faults: {
    sigkill: number;
    sigterm: number;
    restartsFast: number;
    restartsImmediate: number;
    outages: number;
    terminations: Termination[];
    skipped: string[];
    /** Worker processes that exited at start (database unreachable) and were restarted. */
    startFailures: number;
  };
  resume: ResumeFigure[];
  xmin: XminFigure[];
  /** Worker event-loop stalls over 1 s: count and longest (ms). */
  stalls: { count: number; longestMs: number };
  /** Ledger rows spooled by workers while the server was away, imported after the run. */
  spooledRows: number;
  violations: Violation[];
}

/** Collects the fault counters. */
export function faultCounts(faults: FaultRunner, fleet: Fleet): Summary['faults'] {
  const bySignal = (s: string) => fleet.signals.filter((x) => x.signal === s && x.reason === 'fault').length;
  return {
    sigkill: bySignal('SIGKILL'),
    sigterm: bySignal('SIGTERM'),
    restartsFast: faults.unavailable.filter((u) => u.kind === 'restart' && u.mode === 'fast').length,
    restartsImmediate: faults.unavailable.filter((u) => u.kind === 'restart' && u.mode === 'immediate')
      .length,
    outages: faults.unavailable.filter((u) => u.kind === 'outage').length,
    terminations: faults.terminations,
    skipped: faults.skipped,
    startFailures: fleet.startFailures.length,
  };
}

const list = (m: Record<string, number>) =>
  Object.entries(m)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

const PRINT_PER_CHECK = 30;

/** Prints the summary to stdout. */
export function printSummary(s: Summary, t0: number): void {
  const f = s.figures;
  const out = (line = '') => process.stdout.write(`${line}\n`);
  out();
  out('== results');
  out(
    `seed ${s.seed}, ${s.mode} run: ${s.faultSeconds} s of load with faults, ${s.wallSeconds} s in all; ${s.server}`,
  );
  out(`jobs: ${f.jobs} committed (${list(f.byKind)}); final status: ${list(f.byStatus)}`);
  for (const [db, p] of Object.entries(s.producers)) {
    out(
      `  ${db}: ${p.committedJobs} jobs in ${p.committedTransactions} transactions, ${p.rolledBackJobs} rolled back on purpose, ` +
        `${p.unknownOutcome} with a failed COMMIT (outcome read from the database), ${p.errors} producer errors`,
    );
  }
  out(
    `steps: ${f.forwardSteps} forward steps (${f.transactionalSteps} transactional); ${f.runs} handler runs (${list(f.runsByOutcome)}), ` +
      `${f.compensationRuns} of them compensations; ${f.effects} transactional effects committed`,
  );
  out(
    `engine (worker logs): ${f.loggedAccepted} reports accepted, ${f.loggedLeaseLost} rejected as stale (lease lost)`,
  );
  out(
    `ledger: ${s.spooledRows} rows spooled while the server was away; worker event-loop stalls over 1 s: ` +
      `${s.stalls.count}${s.stalls.count > 0 ? ` (longest ${(s.stalls.longestMs / 1000).toFixed(1)} s)` : ''}`,
  );
  out(
    `drain after the faults: ${s.drainSeconds === null ? 'DID NOT FINISH' : `${s.drainSeconds.toFixed(1)} s until every job was final`}`,
  );
  const x = s.faults;
  out(
    `faults: ${x.sigkill} SIGKILL, ${x.sigterm} SIGTERM, ${x.restartsFast} restarts -m fast, ${x.restartsImmediate} restarts -m immediate, ` +
      `${x.outages} outages, ${x.terminations.length} pg_terminate_backend rounds ` +
      `(${x.terminations.reduce((n, t) => n + t.backends, 0)} backends, ${x.terminations.reduce((n, t) => n + t.listeners, 0)} of them LISTEN)` +
      (x.skipped.length > 0 ? `; skipped: ${x.skipped.join('; ')}` : ''),
  );
  if (x.startFailures > 0)
    out(
      `note: ${x.startFailures} worker starts failed because the server was unreachable ` +
        '(the bin exits with code 1; restarted after 1 s, as a supervisor would)',
    );
  out(
    `overlapping runs of one job: ${f.overlaps.killed} after a SIGKILL, ${f.overlaps.stopped} after a SIGTERM, ` +
      `${f.overlaps.outage} across an outage/restart, ${f.overlaps.stalled} after the worker stalled, ` +
      `${f.overlaps.died} after the worker died, ` +
      `${f.overlaps.unexplained} unexplained; ` +
      `${f.ambiguousAccepted} accepted runs not singled out; ` +
      `${f.exhaustedUnrun} steps failed unrun past maxAttempts (their last attempt ended without a report)`,
  );
  out(
    'resume after each outage (server answering again -> first step completion; per worker: first step start):',
  );
  for (const r of s.resume) {
    const u = r.outage;
    const workers = Object.values(r.workers).filter((v): v is number => v !== null);
    const idle = Object.entries(r.workers)
      .filter(([, v]) => v === null)
      .map(([k]) => k);
    out(
      `  ${((u.from - t0) / 1000).toFixed(1).padStart(6)} s ${u.kind.padEnd(7)} -m ${u.mode.padEnd(9)} ` +
        `unavailable ${((u.answeredAt - u.from) / 1000).toFixed(1)} s; first completion ` +
        Object.entries(r.firstCompletion)
          .map(([db, ms]) => `${db} +${ms ?? '-'} ms`)
          .join(', ') +
        (workers.length > 0 ? `; workers +${Math.min(...workers)}..+${Math.max(...workers)} ms` : '') +
        (idle.length > 0 ? `; no start at all: ${idle.join(', ')}` : ''),
    );
  }
  for (const h of s.xmin) {
    const growth = Object.entries(h.hold.sizes)
      .map(
        ([db, [a, b, c]]) =>
          `${db} ${(a / 1e6).toFixed(1)} -> ${(b / 1e6).toFixed(1)} -> ${(c / 1e6).toFixed(1)} MB`,
      )
      .join(', ');
    out(
      `held snapshot ${((h.hold.to - h.hold.from) / 1000).toFixed(0)} s at ${((h.hold.from - t0) / 1000).toFixed(1)} s: ` +
        `${h.during.toFixed(0)} steps/s while held, ${h.after.toFixed(0)} steps/s after ` +
        `(${h.during > 0 ? (h.after / h.during).toFixed(2) : '-'}x); database size ${growth}`,
    );
  }
  out();
  if (s.violations.length === 0) {
    out('== no violations');
    return;
  }
  const byCheck = new Map<string, Violation[]>();
  for (const v of s.violations) {
    const l = byCheck.get(v.check);
    if (l) l.push(v);
    else byCheck.set(v.check, [v]);
  }
  out(
    `== ${s.violations.length} VIOLATIONS (${[...byCheck].map(([k, l]) => `${k} ${l.length}`).join(', ')})`,
  );
  for (const [check, vs] of byCheck) {
    for (const v of vs.slice(0, PRINT_PER_CHECK))
      out(`[${check}] ${v.database}${v.jobId !== null ? ` job ${v.jobId}` : ''}: ${v.message}`);
    if (vs.length > PRINT_PER_CHECK)
      out(`[${check}] ... and ${vs.length - PRINT_PER_CHECK} more (all of them with --report FILE)`);
  }
}
