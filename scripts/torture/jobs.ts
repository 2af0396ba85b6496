/**
 * The job mix: seeded designs of multi-step jobs, each with a known expected end, and the
 * step calls that enqueue them. Producers pass plain `{ name, args, options }` objects, as
 * a producer without the handler code would.
 */
import type { StepCall } from '../../src/index.js';
import { type JobKind, type JobSpec, STEP, type StepArgs, type StepSpec } from './protocol.js';
import type { Random } from './random.js';

/** Retry quickly: the run is about faults, not about waiting out backoffs. */
const BACKOFF = { baseMs: 100, maxMs: 1500 } as const;

/** Share of each kind in the mix. */
const KIND_WEIGHTS: Readonly<Record<JobKind, number>> = {
  plain: 30,
  transactional: 25,
  saga: 25,
  exhaust: 10,
  fail: 10,
};

/** How long one handler run works: mostly short, some medium, a few longer than the lease. */
function workMs(rng: Random, leaseMs: number): number {
  const r = rng.next();
  if (r < 0.7) return rng.int(0, 30);
  if (r < 0.99) return rng.int(30, 300);
  // Longer than the lease: only heartbeats keep such a step from being run twice.
  return rng.int(Math.round(leaseMs * 1.2), Math.round(leaseMs * 1.6));
}

function failTimes(rng: Random): number {
  return Number(rng.weighted({ '0': 75, '1': 15, '2': 7, '3': 3 }));
}

function stepArgs(rng: Random, tag: string, leaseMs: number, extra: Partial<StepArgs> = {}): StepArgs {
  const cfail = rng.chance(0.2) ? rng.int(1, 2) : 0;
  return {
    tag,
    ms: workMs(rng, leaseMs),
    fail: failTimes(rng),
    ...(cfail > 0 ? { cfail } : {}),
    ...(rng.chance(0.05) ? { cperm: true } : {}),
    ...extra,
  };
}

/** Designs one job. `tag` names it in logs; `leaseMs` is the workers' lease. */
export function designJob(rng: Random, tag: string, leaseMs: number): JobSpec {
  const kind = rng.weighted(KIND_WEIGHTS);
  const n = rng.int(2, 5);
  const steps: StepSpec[] = [];
  if (kind === 'plain' || kind === 'transactional') {
    for (let i = 0; i < n; i++) {
      const tx = kind === 'transactional' && (rng.chance(0.6) || i === n - 1);
      // Compensations that must never run: the job succeeds.
      steps.push({ tx, comp: rng.chance(0.3), args: stepArgs(rng, tag, leaseMs) });
    }
    return { kind, steps, failAt: null, expected: 'succeeded' };
  }
  const failAt = kind === 'fail' ? rng.int(0, n - 1) : rng.int(1, n - 1);
  for (let i = 0; i < n; i++) {
    const tx = rng.chance(0.4);
    const comp = kind === 'fail' ? false : i < failAt ? rng.chance(0.75) : rng.chance(0.5);
    if (i !== failAt) {
      steps.push({ tx, comp, args: stepArgs(rng, tag, leaseMs) });
    } else if (kind === 'exhaust') {
      steps.push({
        tx,
        comp,
        maxAttempts: rng.int(2, 3),
        args: stepArgs(rng, tag, leaseMs, { always: true }),
      });
    } else {
      steps.push({ tx, comp, args: stepArgs(rng, tag, leaseMs, { perm: true }) });
    }
  }
  const compensates = steps.slice(0, failAt + 1).some((s) => s.comp);
  return { kind, steps, failAt, expected: compensates ? 'compensated' : 'failed' };
}

/** The step calls enqueuing a design. */
export function stepCalls(spec: JobSpec): StepCall[] {
  return spec.steps.map((s) => ({
    name: s.tx ? STEP.tx : STEP.plain,
    args: s.args,
    ...(s.tx ? { transactional: true } : {}),
    options: {
      backoff: BACKOFF,
      ...(s.maxAttempts !== undefined ? { maxAttempts: s.maxAttempts } : {}),
      ...(s.comp ? { compensate: { name: STEP.undo } } : {}),
    },
  }));
}
