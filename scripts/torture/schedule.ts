/**
 * The seeded fault schedule: the same seed, mode and length give the same list of faults
 * at the same offsets. Server faults (restarts, outages, the held snapshot) are episodes
 * that never overlap; worker signals and backend terminations are instants scattered over
 * the run, kept out of the held-snapshot measurement windows.
 */
import type { StopMode } from './postgres.js';
import { Random } from './random.js';

/** One scheduled fault; `at` is seconds from the start of the loaded phase. */
export type Fault =
  | { at: number; kind: 'kill'; worker: number; restartAfterMs: number }
  | { at: number; kind: 'term'; worker: number }
  | { at: number; kind: 'terminate'; target: 'listeners' | 'all' }
  | { at: number; kind: 'restart'; mode: StopMode }
  /** `observed`: no worker signal near it, so every worker's resume is measured. */
  | { at: number; kind: 'outage'; mode: StopMode; seconds: number; observed: boolean }
  | { at: number; kind: 'xmin'; seconds: number };

/** Seconds after an observed outage kept free of worker signals (the resume limit and more). */
const RESUME_WINDOW_S = 8;

/** Kinds that run one at a time (the server's state). */
export const EPISODES = new Set<Fault['kind']>(['restart', 'outage', 'xmin']);

/** How long an episode occupies the schedule, in seconds (estimates for spacing). */
export function episodeSeconds(f: Fault): number {
  switch (f.kind) {
    case 'restart':
      return 4;
    case 'outage':
      return f.seconds + 4;
    case 'xmin':
      // The hold, then a window as long without faults to measure throughput after it.
      return 2 * f.seconds;
    default:
      return 0;
  }
}

/** Parameters of a schedule. */
export interface ScheduleOptions {
  seed: number;
  quick: boolean;
  /** Length of the loaded phase in seconds. */
  seconds: number;
  workers: number;
}

/** Builds the schedule, sorted by time. */
export function buildSchedule(o: ScheduleOptions): Fault[] {
  const rng = new Random(o.seed, 'faults');
  const warmup = o.quick ? 6 : 15;
  const tail = o.quick ? 4 : 15;
  const scale = o.seconds / 600;
  const count = (perTenMinutes: number, quick: number) =>
    o.quick ? quick : Math.max(1, Math.round(perTenMinutes * scale));

  const episodes: Fault[] = [];
  for (let i = 0; i < count(3, 1); i++) episodes.push({ at: 0, kind: 'restart', mode: 'fast' });
  for (let i = 0; i < count(3, 1); i++) episodes.push({ at: 0, kind: 'restart', mode: 'immediate' });
  for (let i = 0; i < count(3, 1); i++) {
    episodes.push({
      at: 0,
      kind: 'outage',
      mode: rng.chance(0.5) ? 'fast' : 'immediate',
      seconds: o.quick ? 16 : rng.int(12, 20),
      // Kills during an outage are a fault of their own; half the outages (all in a quick
      // run) are kept free of them so that every worker's resume can be judged.
      observed: o.quick || i % 2 === 0,
    });
  }
  for (let i = 0; i < count(2, 1); i++) episodes.push({ at: 0, kind: 'xmin', seconds: o.quick ? 15 : 45 });
  // Shuffle (Fisher-Yates with the seeded stream), then spread over the phase.
  for (let i = episodes.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [episodes[i], episodes[j]] = [episodes[j]!, episodes[i]!];
  }
  const busy = episodes.reduce((sum, e) => sum + episodeSeconds(e), 0);
  const spare = Math.max(episodes.length * 2, o.seconds - warmup - tail - busy);
  const gap = spare / episodes.length;
  let t = warmup;
  for (const e of episodes) {
    e.at = Math.round(t * 10) / 10;
    t += episodeSeconds(e) + gap * rng.between(0.6, 1.4);
  }
  // Keep the xmin measurement windows (hold and after) and the observed outages with
  // their resume window free of instants.
  const quiet = episodes.flatMap((e) =>
    e.kind === 'xmin'
      ? [[e.at - 1, e.at + episodeSeconds(e) + 1] as const]
      : e.kind === 'outage' && e.observed
        ? [[e.at - 1, e.at + episodeSeconds(e) + RESUME_WINDOW_S] as const]
        : [],
  );
  const instantAt = (): number => {
    for (;;) {
      const at = Math.round(rng.between(warmup, o.seconds - tail) * 10) / 10;
      if (!quiet.some(([a, b]) => at >= a && at <= b)) return at;
    }
  };
  const instants: Fault[] = [];
  for (let i = 0; i < count(30, 4); i++) {
    instants.push({
      at: instantAt(),
      kind: 'kill',
      worker: rng.int(0, o.workers - 1),
      restartAfterMs: rng.int(300, 2000),
    });
  }
  for (let i = 0; i < count(8, 2); i++)
    instants.push({ at: instantAt(), kind: 'term', worker: rng.int(0, o.workers - 1) });
  for (let i = 0; i < count(10, 2); i++) {
    instants.push({ at: instantAt(), kind: 'terminate', target: i % 2 === 0 ? 'listeners' : 'all' });
  }
  return [...episodes, ...instants].sort((a, b) => a.at - b.at);
}

/** One line per fault, for the run's header. */
export function describeFault(f: Fault, workerName: (i: number) => string): string {
  const at = `${f.at.toFixed(1).padStart(6)} s`;
  switch (f.kind) {
    case 'kill':
      return `${at}  SIGKILL ${workerName(f.worker)}, restart after ${f.restartAfterMs} ms`;
    case 'term':
      return `${at}  SIGTERM ${workerName(f.worker)} (graceful stop), then restart`;
    case 'terminate':
      return `${at}  pg_terminate_backend of ${f.target === 'all' ? 'every worker backend' : "the workers' LISTEN backends"}`;
    case 'restart':
      return `${at}  pg_ctl restart -m ${f.mode}`;
    case 'outage':
      return `${at}  pg_ctl stop -m ${f.mode}, down ${f.seconds} s, then start${f.observed ? ' (no worker signals near it)' : ''}`;
    case 'xmin':
      return `${at}  REPEATABLE READ transaction held ${f.seconds} s (then ${f.seconds} s without faults)`;
  }
}
