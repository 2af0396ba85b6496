/**
 * The end-of-run checks. Each compares the engine's documented views with the handlers'
 * ledger, the transactional effects, the workers' logs and the record of faults, and
 * reports every violation with its evidence.
 *
 * What "overlap" may legitimately happen: delivery is at least once, so a unit can run
 * again while an earlier run of it is still going — but only after that earlier run's
 * lease expired (its worker was killed, stopped, or could not heartbeat because the
 * server was away). Two properties follow and are checked:
 *  - fencing (must hold whatever the timing): a run leased after a run whose result the
 *    engine accepted — a later attempt of the same unit, or a later unit of the job —
 *    starts only after that run ended (a claim in between would have made its token
 *    stale). Start order alone proves nothing: a stale worker may invoke its handler
 *    late; and
 *  - every overlap of two runs of one job is explained by a fault that can expire the
 *    older lease of the two (lease order as above) before the younger run started: a
 *    SIGKILL or SIGTERM of its worker, the server unavailable between a lease before the
 *    first start and the younger start, or its worker process not running (event loop
 *    stalled for a heartbeat period or more) in that time. Anything else means a live
 *    worker with a reachable server lost a lease, or was handed one already lapsed.
 */
import type { DatabaseEvidence, Run, StepRow } from './evidence.js';
import type { Unavailability, XminHold } from './faults.js';
import type { LoggedResult, ProcessRecord, SignalRecord, Stall } from './fleet.js';
import type { JobSpec } from './protocol.js';

/** Names of the checks, as printed. */
export type CheckName =
  | 'final'
  | 'atomic-enqueue'
  | 'order'
  | 'overlap'
  | 'stale-completion'
  | 'exactly-once'
  | 'compensation'
  | 'open-run'
  | 'resume'
  | 'workers';

/** One violation and its evidence. */
export interface Violation {
  check: CheckName;
  database: string;
  jobId: string | null;
  message: string;
}

/** What the checks need besides the databases. */
export interface CheckInputs {
  /** Start of the run (times are printed relative to it). */
  t0: number;
  leaseMs: number;
  resumeLimitMs: number;
  concurrency: number;
  unavailable: readonly Unavailability[];
  signals: readonly SignalRecord[];
  results: readonly LoggedResult[];
  processes: readonly ProcessRecord[];
  /** Event-loop stalls of worker processes (they cannot heartbeat meanwhile). */
  stalls: readonly Stall[];
  rolledBack: ReadonlyMap<string, readonly string[]>;
}

/** Counters the checks produce on the way. */
export interface CheckFigures {
  jobs: number;
  byKind: Record<string, number>;
  byStatus: Record<string, number>;
  forwardSteps: number;
  runs: number;
  runsByOutcome: Record<string, number>;
  compensationRuns: number;
  effects: number;
  transactionalSteps: number;
  overlaps: {
    killed: number;
    stopped: number;
    outage: number;
    stalled: number;
    died: number;
    unexplained: number;
  };
  /** Accepted runs the ledger could not single out (two ok runs of the same attempt, no log line). */
  ambiguousAccepted: number;
  /** Steps failed unrun at a claim past their maxAttempts (the previous attempt ended without a report). */
  exhaustedUnrun: number;
  loggedAccepted: number;
  loggedLeaseLost: number;
}

const FINAL = new Set(['succeeded', 'failed', 'compensated', 'cancelled']);
/** Tolerance between the driver's and the server's readings of the same clock. */
const CLOCK_SLACK_MS = 50;
/** A start this soon after the same process finished the job's previous unit counts as a continuation. */
const CONTINUATION_GAP_MS = 1000;

export function emptyFigures(): CheckFigures {
  return {
    jobs: 0,
    byKind: {},
    byStatus: {},
    forwardSteps: 0,
    runs: 0,
    runsByOutcome: {},
    compensationRuns: 0,
    effects: 0,
    transactionalSteps: 0,
    overlaps: { killed: 0, stopped: 0, outage: 0, stalled: 0, died: 0, unexplained: 0 },
    ambiguousAccepted: 0,
    exhaustedUnrun: 0,
    loggedAccepted: 0,
    loggedLeaseLost: 0,
  };
}

const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);
const minStart = (rs: readonly Run[]) => Math.min(...rs.map((r) => r.start ?? Infinity));

/** Checks one database; appends to `out` and `fig`. */
export function checkDatabase(
  db: DatabaseEvidence,
  inputs: CheckInputs,
  out: Violation[],
  fig: CheckFigures,
): void {
  const t = (ms: number | null) => (ms === null ? '?' : `${((ms - inputs.t0) / 1000).toFixed(3)}s`);
  const describe = (r: Run, spec: JobSpec) =>
    `${r.phase === 'forward' ? (spec.steps[r.stepIndex]?.tx ? 'tx step' : 'step') : 'undo'} ${r.stepIndex} ` +
    `attempt ${r.attempt} by ${r.worker}/pid ${r.pid} [${t(r.start)}..${t(r.end)}] ${r.outcome ?? 'no end'}`;
  const violation = (check: CheckName, jobId: string | null, message: string) =>
    out.push({ check, database: db.name, jobId, message });

  const logs = new Map<string, LoggedResult[]>();
  const logsByJob = new Map<string, LoggedResult[]>();
  const push = <V>(m: Map<string, V[]>, k: string, v: V) => {
    const list = m.get(k);
    if (list) list.push(v);
    else m.set(k, [v]);
  };
  for (const r of inputs.results) {
    if (r.database !== db.name) continue;
    push(logs, `${r.jobId}|${r.phase}|${r.stepIndex}`, r);
    push(logsByJob, r.jobId, r);
    if (r.kind === 'lost') fig.loggedLeaseLost++;
    else fig.loggedAccepted++;
  }
  const kills = inputs.signals.filter((s) => s.signal === 'SIGKILL');
  const terms = inputs.signals.filter((s) => s.signal === 'SIGTERM');

  // Atomic enqueue: the job exists exactly when its design row (same transaction) does.
  for (const id of db.jobs.keys()) {
    if (!db.designs.has(id))
      violation('atomic-enqueue', id, 'a job exists whose enqueuing transaction did not commit');
  }
  for (const id of inputs.rolledBack.get(db.name) ?? []) {
    if (db.jobs.has(id) || db.runs.has(id))
      violation('atomic-enqueue', id, 'a job enqueued in a rolled-back transaction exists or ran');
  }
  for (const id of db.runs.keys()) {
    if (!db.designs.has(id)) violation('atomic-enqueue', id, 'runs of a job that was never committed');
  }

  for (const [id, design] of db.designs) {
    const spec = design.spec;
    const d = (r: Run) => describe(r, spec);
    const job = db.jobs.get(id);
    const runs = db.runs.get(id) ?? [];
    const rows = new Map<number, StepRow>((db.steps.get(id) ?? []).map((r) => [r.stepIndex, r]));
    const effects = db.effects.get(id) ?? [];
    fig.jobs++;
    bump(fig.byKind, spec.kind);
    bump(fig.byStatus, job?.status ?? 'missing');
    fig.forwardSteps += spec.steps.length;
    fig.runs += runs.length;
    fig.effects += effects.length;
    for (const r of runs) {
      bump(fig.runsByOutcome, r.outcome ?? 'no end');
      if (r.phase === 'compensate') fig.compensationRuns++;
    }

    // 1. Final, as designed.
    const final = job !== undefined && FINAL.has(job.status);
    if (!job) {
      violation(
        'final',
        id,
        `job missing from job_overview (designed ${spec.kind}, ${spec.steps.length} steps)`,
      );
      continue;
    }
    if (!final) {
      violation(
        'final',
        id,
        `not final: ${job.status} at step ${job.currentStep} attempt ${job.currentAttempt}` +
          (job.runAt !== null ? `, run_at ${t(job.runAt)}` : '') +
          (job.leaseExpiresAt !== null ? `, lease until ${t(job.leaseExpiresAt)} by ${job.lockedBy}` : '') +
          `; last runs: ${runs.slice(-3).map(d).join('; ') || 'none'}`,
      );
    } else if (job.status !== spec.expected) {
      violation(
        'final',
        id,
        `ended ${job.status}, designed to end ${spec.expected} (${spec.kind}, failAt ${spec.failAt})`,
      );
    }

    const unitRuns = (phase: Run['phase'], i: number) =>
      runs.filter((r) => r.phase === phase && r.stepIndex === i && r.start !== null);
    const logged = (phase: Run['phase'], i: number) => logs.get(`${id}|${phase}|${i}`) ?? [];
    const accepted: Run[] = [];
    const acceptedOf = new Map<string, Run>();

    /** The run whose success the engine applied (attempt == the unit's final attempts). */
    const acceptedSuccess = (phase: Run['phase'], i: number, attempts: number): Run | null => {
      const rs = unitRuns(phase, i);
      const what = phase === 'forward' ? `step ${i}` : `compensation of step ${i}`;
      let cands = rs.filter((r) => r.attempt === attempts && r.outcome === 'ok');
      const succ = logged(phase, i).filter((l) => l.kind === 'succeeded');
      if (succ.length > 1) {
        violation(
          'stale-completion',
          id,
          `${what}: the engine accepted ${succ.length} completions (${succ.map((s) => `attempt ${s.attempt} by pid ${s.pid}`).join(', ')})`,
        );
      }
      for (const s of succ) {
        if (s.attempt !== attempts)
          violation(
            'stale-completion',
            id,
            `${what}: pid ${s.pid}'s completion of attempt ${s.attempt} was accepted, but the step records attempt ${attempts}`,
          );
      }
      const later = rs.filter((r) => r.attempt > attempts);
      if (later.length > 0)
        violation(
          'stale-completion',
          id,
          `${what} ran again after its completion: ${later.map(d).join('; ')}`,
        );
      if (cands.length === 0) {
        violation(
          'stale-completion',
          id,
          `${what} is succeeded with attempts=${attempts}, but no run of attempt ${attempts} ended ok ` +
            `(the result of another run was applied); runs: ${rs.map(d).join('; ') || 'none'}`,
        );
        return null;
      }
      if (cands.length > 1) {
        const byLog = cands.filter((r) => succ.some((s) => s.pid === r.pid && s.attempt === r.attempt));
        if (byLog.length !== 1) {
          fig.ambiguousAccepted++;
          return null;
        }
        cands = byLog;
      }
      return cands[0]!;
    };

    // 2. Forward steps: state consistent with the ledger; nothing after the failing step.
    const okUpTo = spec.failAt ?? spec.steps.length;
    for (let i = 0; i < spec.steps.length; i++) {
      const row = rows.get(i);
      const rs = unitRuns('forward', i);
      if (spec.steps[i]!.tx) fig.transactionalSteps++;
      if (!row) {
        violation('final', id, `step ${i} missing from step_overview`);
        continue;
      }
      if (row.status === 'succeeded') {
        const a = acceptedSuccess('forward', i, row.attempts);
        if (a) {
          accepted.push(a);
          acceptedOf.set(`forward|${i}`, a);
        }
      }
      if (i < okUpTo) {
        if (final && row.status !== 'succeeded')
          violation(
            'final',
            id,
            `step ${i} is ${row.status}, designed to succeed (last error: ${row.lastError ?? 'none'}); runs: ${rs.map(d).join('; ')}`,
          );
      } else if (i === okUpTo) {
        if (final && row.status !== 'failed')
          violation(
            'final',
            id,
            `step ${i} is ${row.status}, designed to fail; runs: ${rs.map(d).join('; ')}`,
          );
        if (row.status === 'failed') {
          const f = rs.filter(
            (r) => r.attempt === row.attempts && (r.outcome === 'fail' || r.outcome === 'permanent'),
          );
          // A unit claimed past its maxAttempts (its last attempt ended without a report: the
          // worker died, or the database went away under its report) is failed unrun by the
          // worker that claimed it: no run of that attempt exists, and the error says so.
          const exhausted =
            f.length === 0 &&
            new RegExp(`attempt ${row.attempts - 1} ended without a report .*maxAttempts \\(\\d+\\)`).test(
              row.lastError ?? '',
            ) &&
            !rs.some((r) => r.attempt === row.attempts);
          if (exhausted) fig.exhaustedUnrun++;
          else if (f.length === 0)
            violation(
              'stale-completion',
              id,
              `step ${i} is failed with attempts=${row.attempts}, but no run of that attempt failed ` +
                `(last error: ${row.lastError ?? 'none'}); runs: ${rs.map(d).join('; ') || 'none'}`,
            );
          else if (f.length === 1) {
            accepted.push(f[0]!);
            acceptedOf.set(`forward|${i}`, f[0]!);
          }
        }
      } else {
        if (rs.length > 0)
          violation(
            'order',
            id,
            `step ${i} ran although the forward path ended at step ${okUpTo}: ${rs.map(d).join('; ')}`,
          );
        if (row.status === 'succeeded')
          violation('final', id, `step ${i} is succeeded after the failing step ${okUpTo}`);
      }
    }

    // 3. Order: every run of step i+1 starts after step i's applied run ended. (A stale run
    // of step i may still start its handler late: its lease was granted before, and only
    // the fencing below says what it may overlap.)
    for (let i = 1; i < spec.steps.length; i++) {
      const cur = unitRuns('forward', i);
      if (cur.length === 0) continue;
      if (unitRuns('forward', i - 1).length === 0) {
        violation('order', id, `step ${i} ran, but step ${i - 1} never did: ${cur.map(d).join('; ')}`);
        continue;
      }
      const a = acceptedOf.get(`forward|${i - 1}`);
      if (a && a.end !== null && a.end >= minStart(cur))
        violation(
          'order',
          id,
          `step ${i} started at ${t(minStart(cur))}, before step ${i - 1} succeeded (${d(a)})`,
        );
    }

    // 4. Compensations: exactly the steps up to the failing one that have one, in reverse
    // order. The failing step is the one the engine failed (a job that failed elsewhere than
    // designed is a `final` violation already; its compensations are judged by what happened).
    const failedRow = [...rows.values()]
      .filter((r) => r.status === 'failed')
      .sort((a, b) => a.stepIndex - b.stepIndex)[0];
    const failAt = failedRow?.stepIndex ?? spec.failAt;
    const due = new Set<number>();
    if (failAt !== null) for (let j = 0; j <= failAt; j++) if (spec.steps[j]?.comp) due.add(j);
    const compRuns = runs.filter((r) => r.phase === 'compensate' && r.start !== null);
    for (const j of new Set(compRuns.map((r) => r.stepIndex))) {
      if (!due.has(j))
        violation(
          'compensation',
          id,
          `compensation of step ${j} ran but is not due: ${unitRuns('compensate', j).map(d).join('; ')}`,
        );
      else if (unitRuns('forward', j).length === 0)
        violation('compensation', id, `compensation of step ${j} ran, but step ${j} never ran`);
    }
    if (final && job.status === 'compensated') {
      for (const j of due) {
        const row = rows.get(j);
        if (!row) continue;
        if (row.compensationStatus !== 'succeeded') {
          violation(
            'compensation',
            id,
            `compensation of step ${j} is ${row.compensationStatus}, must have succeeded`,
          );
          continue;
        }
        const a = acceptedSuccess('compensate', j, row.compensationAttempts ?? -1);
        if (a) {
          accepted.push(a);
          acceptedOf.set(`compensate|${j}`, a);
        }
      }
    }
    const order = [...due].sort((a, b) => b - a);
    for (let k = 1; k < order.length; k++) {
      const hi = order[k - 1]!;
      const lo = order[k]!;
      const loRuns = unitRuns('compensate', lo);
      if (loRuns.length === 0) continue;
      const hiRuns = unitRuns('compensate', hi);
      if (hiRuns.length === 0) {
        violation(
          'compensation',
          id,
          `compensation of step ${lo} ran, but that of step ${hi} (due first) never did`,
        );
        continue;
      }
      const a = acceptedOf.get(`compensate|${hi}`);
      if (a && a.end !== null && a.end >= minStart(loRuns))
        violation(
          'compensation',
          id,
          `compensation of step ${lo} started before that of step ${hi} succeeded (${d(a)})`,
        );
    }
    if (compRuns.length > 0) {
      const failed = failAt !== null ? acceptedOf.get(`forward|${failAt}`) : undefined;
      if (failed && failed.end !== null && failed.end >= minStart(compRuns))
        violation('order', id, `a compensation started before the failing step's run ended (${d(failed)})`);
    }

    // 5. Transactional effects: exactly once per succeeded transactional step, from the applied run.
    for (let i = 0; i < spec.steps.length; i++) {
      const mine = effects.filter((e) => e.stepIndex === i);
      const row = rows.get(i);
      if (!spec.steps[i]!.tx) {
        if (mine.length > 0)
          violation('exactly-once', id, `step ${i} is not transactional but has ${mine.length} effect rows`);
        continue;
      }
      if (row?.status === 'succeeded') {
        if (mine.length !== 1) {
          violation(
            'exactly-once',
            id,
            `transactional step ${i} succeeded with ${mine.length} effect rows (attempts ${mine.map((e) => `${e.attempt}/pid ${e.pid}`).join(', ')})`,
          );
        } else if (mine[0]!.attempt !== row.attempts) {
          violation(
            'exactly-once',
            id,
            `step ${i}'s effect came from attempt ${mine[0]!.attempt}, the step records attempt ${row.attempts}`,
          );
        } else {
          const r = runs.find((x) => x.runId === mine[0]!.runId);
          if (!r || r.outcome !== 'ok')
            violation(
              'exactly-once',
              id,
              `step ${i}'s effect came from a run that did not end ok (${r ? d(r) : 'no ledger rows'})`,
            );
        }
      } else if (mine.length > 0) {
        violation(
          'exactly-once',
          id,
          `transactional step ${i} is ${row?.status} but ${mine.length} of its effects committed`,
        );
      }
    }

    // Accepted failures (from the workers' logs) are fenced like accepted successes.
    for (const l of logsByJob.get(id) ?? []) {
      if (l.kind !== 'failed') continue;
      const r = runs.find(
        (x) =>
          x.phase === l.phase && x.stepIndex === l.stepIndex && x.attempt === l.attempt && x.pid === l.pid,
      );
      if (r && !accepted.includes(r)) accepted.push(r);
    }

    // 6a. Fencing: a run leased after a run the engine accepted (a later attempt of the same
    // unit, or any later unit of the job) starts only after that run ended. Lease order, not
    // start order: a stale worker may invoke its handler late.
    const rank = (r: Run) => (r.phase === 'forward' ? r.stepIndex : 2 * spec.steps.length - 1 - r.stepIndex);
    for (const a of accepted) {
      if (a.start === null || a.end === null) continue;
      for (const s of runs) {
        if (s === a || s.start === null) continue;
        const leasedAfter = rank(s) > rank(a) || (rank(s) === rank(a) && s.attempt > a.attempt);
        if (leasedAfter && s.start < a.end)
          violation('overlap', id, `${d(s)} started before the accepted run ${d(a)} ended`);
      }
    }

    // 6b. Every overlap needs a fault that can expire the older lease of the two (by lease
    // order; by start when the order is unknown, e.g. an attempt given back by a release).
    const started = runs.filter((r) => r.start !== null);
    for (let b = 0; b < started.length; b++) {
      for (let a = 0; a < b; a++) {
        const first = started[a]!;
        const second = started[b]!;
        if (first.end !== null && first.end <= second.start!) continue;
        const secondOlder =
          rank(second) < rank(first) || (rank(second) === rank(first) && second.attempt < first.attempt);
        const [old, young] = secondOlder ? [second, first] : [first, second];
        // The old lease must have lapsed before the young run's lease was granted (<= its start).
        const at = young.start! + CLOCK_SLACK_MS;
        const since = first.start! - inputs.leaseMs;
        const died = inputs.processes.find(
          (p) => p.pid === old.pid && p.exitedAt !== null && p.exitedAt <= at,
        );
        if (kills.some((k) => k.pid === old.pid && k.at <= at)) fig.overlaps.killed++;
        // A worker that died by itself: its death is a `workers` violation of its own.
        else if (died) fig.overlaps.died++;
        else if (terms.some((k) => k.pid === old.pid && k.at <= at)) fig.overlaps.stopped++;
        else if (inputs.unavailable.some((u) => u.from <= at && u.answeredAt >= since)) fig.overlaps.outage++;
        else if (
          inputs.stalls.some(
            (x) => x.pid === old.pid && x.to - x.from >= inputs.leaseMs / 3 && x.to >= since && x.from <= at,
          )
        )
          fig.overlaps.stalled++;
        else {
          fig.overlaps.unexplained++;
          // The unit before the old run: how its lease came to be (e.g. by continuation).
          const before =
            old.phase === 'forward' && old.stepIndex > 0
              ? acceptedOf.get(`forward|${old.stepIndex - 1}`)
              : undefined;
          violation(
            'overlap',
            id,
            `${d(second)} started while ${d(first)} was running; the older lease (${old === first ? 'the first' : 'the second'}) ` +
              'had no kill, stop, outage or stall to expire it' +
              (before
                ? `; the step before it: ${d(before)}, ${((before.end! - before.start!) / 1000).toFixed(1)} s long`
                : ''),
          );
        }
      }
    }

    // 7. Every run ended, unless its process ended first (killed, or stopped: a graceful
    // stop aborts what is still running after gracefulStopMs and exits).
    for (const r of runs) {
      if (r.start === null || r.end !== null) continue;
      const p = inputs.processes.find((x) => x.pid === r.pid);
      const signalled = inputs.signals.some((k) => k.pid === r.pid && k.at >= r.start! - CLOCK_SLACK_MS);
      if (!signalled && (p === undefined || p.exitedAt === null || p.exitedAt < r.start!))
        violation('open-run', id, `${d(r)}: never ended, and its worker was neither killed nor stopped`);
    }
  }
}

/** Resume after one unavailability: per database, and per worker process that lived through it. */
export interface ResumeFigure {
  outage: Unavailability;
  /** Database → ms from "answering again" to the first step completion (null: none). */
  firstCompletion: Record<string, number | null>;
  /** `worker@db` → ms to that worker's first step start there (null: none within the run). */
  workers: Record<string, number | null>;
}

/**
 * True when `r` looks like a continuation: the same process ran the job's previous unit and
 * finished it just before. step_complete leases the next step to the reporting worker
 * without a claim, so such a start says nothing about the worker's claim loop.
 */
function continued(runs: readonly Run[], r: Run): boolean {
  return runs.some(
    (x) =>
      x !== r &&
      x.pid === r.pid &&
      x.end !== null &&
      x.end <= r.start! + CLOCK_SLACK_MS &&
      x.end >= r.start! - CONTINUATION_GAP_MS,
  );
}

/** Measures the resume after each unavailability; a worker idle past the limit with work waiting is a violation. */
export function checkResume(
  dbs: readonly DatabaseEvidence[],
  inputs: CheckInputs,
  out: Violation[],
): ResumeFigure[] {
  const figures: ResumeFigure[] = [];
  for (const u of inputs.unavailable) {
    const fig: ResumeFigure = { outage: u, firstCompletion: {}, workers: {} };
    for (const db of dbs) {
      let first = Infinity;
      const firstStart = new Map<number, number>();
      // Jobs with work left: committed before the server was back, last activity after it.
      let waiting = 0;
      for (const [id, design] of db.designs) {
        const rs = db.runs.get(id) ?? [];
        for (const r of rs) {
          // Runs begun after the server answered: a run from before may only have stored its rows late.
          if (r.end !== null && r.outcome === 'ok' && r.start !== null && r.start > u.answeredAt)
            first = Math.min(first, r.end);
          if (r.start !== null && r.start > u.answeredAt && !continued(rs, r))
            firstStart.set(r.pid, Math.min(firstStart.get(r.pid) ?? Infinity, r.start));
        }
        if (
          design.createdAt < u.answeredAt &&
          rs.some((r) => (r.start ?? 0) > u.answeredAt + inputs.resumeLimitMs)
        )
          waiting++;
      }
      fig.firstCompletion[db.name] = Number.isFinite(first) ? Math.round(first - u.answeredAt) : null;
      for (const p of inputs.processes) {
        if (!p.databases.includes(db.name)) continue;
        // Lived through the unavailability as a started worker (one still loading its code
        // when the server went away is not resuming), and through the resume window, and was
        // not signalled meanwhile.
        const windowEnd = u.answeredAt + inputs.resumeLimitMs;
        if (p.readyAt === null || p.readyAt > u.from || (p.exitedAt !== null && p.exitedAt < windowEnd))
          continue;
        if (inputs.signals.some((s) => s.pid === p.pid && s.at < windowEnd)) continue;
        const s = firstStart.get(p.pid);
        const delay = s === undefined ? null : Math.round(s - u.answeredAt);
        fig.workers[`${p.worker}/${p.pid}@${db.name}`] = delay;
        if ((delay === null || delay > inputs.resumeLimitMs) && waiting >= inputs.concurrency) {
          out.push({
            check: 'resume',
            database: db.name,
            jobId: null,
            message:
              `after the ${u.kind} (-m ${u.mode}) answered again at ${((u.answeredAt - inputs.t0) / 1000).toFixed(1)}s, ` +
              `worker ${p.worker} pid ${p.pid} started no step in ${db.name} for ` +
              `${
                delay === null
                  ? p.exitedAt === null
                    ? 'the rest of the run'
                    : `the ${((p.exitedAt - u.answeredAt) / 1000).toFixed(1)} s it still lived (exit: ${p.exit})`
                  : `${delay} ms`
              } (limit ${inputs.resumeLimitMs} ms) ` +
              `while ${waiting} jobs there had work left`,
          });
        }
      }
    }
    figures.push(fig);
  }
  return figures;
}

/** Forward step completions per second during each held snapshot and in the window after it. */
export interface XminFigure {
  hold: XminHold;
  during: number;
  after: number;
  perDatabase: Record<string, { during: number; after: number }>;
}

export function xminThroughput(dbs: readonly DatabaseEvidence[], holds: readonly XminHold[]): XminFigure[] {
  return holds.map((h) => {
    const perDatabase: XminFigure['perDatabase'] = {};
    let during = 0;
    let after = 0;
    for (const db of dbs) {
      let d = 0;
      let a = 0;
      for (const rs of db.runs.values()) {
        for (const r of rs) {
          if (r.phase !== 'forward' || r.outcome !== 'ok' || r.end === null) continue;
          if (r.end >= h.from && r.end < h.to) d++;
          else if (r.end >= h.to && r.end < h.afterTo) a++;
        }
      }
      perDatabase[db.name] = { during: d / ((h.to - h.from) / 1000), after: a / ((h.afterTo - h.to) / 1000) };
      during += d;
      after += a;
    }
    return {
      hold: h,
      during: during / ((h.to - h.from) / 1000),
      after: after / ((h.afterTo - h.to) / 1000),
      perDatabase,
    };
  });
}
