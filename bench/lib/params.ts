/**
 * Benchmark parameters: one object for quick mode and one for the full run, plus the
 * command-line parsing. Every figure in the report is produced with these values, and
 * they are written into results/latest.json.
 */
import { sweepVariants, type Variant, VARIANTS } from './variants.js';

/** The many-databases scenario (Stepping only), issue 17's setup. */
export interface ManyParams {
  /** Tenant databases, each made from one migrated template. */
  databases: number;
  /** Queued one-step jobs of the hot tenant (database 0). */
  hotJobs: number;
  /** Queued one-step jobs of every other tenant. */
  quietJobs: number;
  /** stepping-worker --max-connections and --concurrency. */
  maxConnections: number;
  concurrency: number;
  /** Seconds the drained worker is watched idle (CPU, transactions/s, new connections/s). */
  idleSeconds: number;
  /**
   * Seconds between the end of the drain's statistics (11 s after the last job) and the idle
   * watch: right after a long drain the databases' idle polls are still backing off.
   */
  idleDelaySeconds: number;
  /**
   * Seconds waited after the last job before the load's statistics are read: a backend that
   * flushed its statistics less than a second before flushes again only when idle for 10 s
   * (PostgreSQL 15+), so 11 for figures to quote; the quick run (a smoke test) waits 2 and
   * may undercount the last second's transactions and connections.
   */
  statsWaitSeconds: number;
  /** Also time a tenant appended to the databases file until its job is done (the file is re-read every 30 s). */
  appendTenant: boolean;
  /** stepping-worker --start-concurrency (null: the worker's default). */
  startConcurrency: number | null;
}

/** The retention scenario (Stepping only), issue 12. */
export interface RetentionParams {
  /** One-step jobs pushed through the worker. */
  jobs: number;
  /** The worker's retention option (finished jobs older than this are pruned). */
  retentionMs: number;
  /** The worker's maintenanceIntervalMs. */
  maintenanceIntervalMs: number;
  /** Most jobs unfinished at once (the producer waits above it). */
  backlog: number;
  /** Jobs per enqueueMany call. */
  batch: number;
  concurrency: number;
  /** Jobs enqueued per second at most, a steady production (0: as fast as the worker takes them). */
  ratePerSecond: number;
  /** Time between samples of the tables. */
  sampleMs: number;
}

/** Everything that sizes a run. */
export interface BenchParams {
  mode: 'quick' | 'full';
  reps: number;
  /** Enqueue scenario: jobs enqueued by one client, concurrent clients and jobs each. */
  enqueueSingleJobs: number;
  enqueueClients: number;
  enqueuePerClient: number;
  /** Drain scenario: one-step jobs bulk-enqueued, then drained; rows per batch call. */
  bulkJobs: number;
  bulkChunk: number;
  /** Chain scenario: jobs of chainSteps steps each. */
  chainJobs: number;
  chainSteps: number;
  /** Latency scenario: jobs enqueued one per transaction, latencyGapMs apart, to an idle worker. */
  latencyJobs: number;
  latencyGapMs: number;
  /** SQL floor: connections running claim/delete loops, and rows claimed per statement. */
  floorConnections: number;
  floorBatch: number;
  /** A drain still running after this many ms stops; its rate is then handler runs / time (marked "capped"). */
  drainCapMs: number;
  /** A drain that has not reported after this long is a failure. */
  timeoutMs: number;
  /** ANALYZE after the pre-load (as autovacuum would have); --no-analyze reproduces the old runs. */
  analyze: boolean;
  /** Count statements in the worker children; --no-count measures the counter's own cost. */
  countStatements: boolean;
  /** Node binary of the worker children: '22' (bench/node22), 'current', or a path. */
  node: string;
  /** Sweep scenario: jobs per drain. */
  sweepJobs: number;
  many: ManyParams;
  retention: RetentionParams;
}

const common = {
  reps: 3,
  enqueueClients: 8,
  bulkChunk: 5000,
  chainSteps: 5,
  latencyGapMs: 20,
  // Issue 11's floor: 2 connections, SKIP LOCKED claims of 100, DELETE.
  floorConnections: 2,
  floorBatch: 100,
  timeoutMs: 300_000,
  analyze: true,
  countStatements: true,
} as const;

const FULL: BenchParams = {
  ...common,
  mode: 'full',
  enqueueSingleJobs: 200,
  enqueuePerClient: 40,
  bulkJobs: 50_000,
  chainJobs: 1_500,
  latencyJobs: 300,
  drainCapMs: 8_000,
  node: '22',
  sweepJobs: 20_000,
  many: {
    databases: 20,
    hotJobs: 20_000,
    quietJobs: 3,
    maxConnections: 60,
    concurrency: 24,
    idleSeconds: 10,
    idleDelaySeconds: 1,
    statsWaitSeconds: 11,
    appendTenant: true,
    startConcurrency: null,
  },
  retention: {
    jobs: 500_000,
    retentionMs: 10_000,
    maintenanceIntervalMs: 1000,
    backlog: 5000,
    batch: 1000,
    concurrency: 20,
    ratePerSecond: 2000,
    sampleMs: 2000,
  },
};

const QUICK: BenchParams = {
  ...common,
  mode: 'quick',
  reps: 1,
  enqueueSingleJobs: 100,
  enqueuePerClient: 20,
  bulkJobs: 2000,
  chainJobs: 200,
  latencyJobs: 20,
  drainCapMs: 4_000,
  // CI runs this: no 50 MB download, the children run on the Node that runs the benchmark.
  node: 'current',
  sweepJobs: 3000,
  many: {
    databases: 5,
    hotJobs: 500,
    quietJobs: 3,
    maxConnections: 20,
    concurrency: 24,
    idleSeconds: 2,
    idleDelaySeconds: 1,
    statsWaitSeconds: 2,
    appendTenant: false,
    startConcurrency: null,
  },
  retention: {
    jobs: 20_000,
    retentionMs: 2000,
    maintenanceIntervalMs: 500,
    backlog: 2000,
    batch: 500,
    concurrency: 20,
    ratePerSecond: 0,
    sampleMs: 500,
  },
};

/** Scenario names accepted by --only. `sweep` runs only when asked for. */
export const SCENARIOS = [
  'enqueue',
  'bulk-drain',
  'chain',
  'latency',
  'floor',
  'many-databases',
  'retention',
  'sweep',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Parsed command line. */
export interface CliOptions {
  params: BenchParams;
  only: Set<ScenarioName>;
  /** The configurations of the per-library scenarios. */
  variants: Variant[];
  /** The configurations of the sweep. */
  sweep: Variant[];
  /** Where to write the JSON (default bench/results/latest.json; --out). */
  out: string | null;
}

/** Picks variants by id (`stepping:best`) or library (`graphile`). */
function pick(list: readonly Variant[], selector: string, strict = true): Variant[] {
  const wanted = selector.split(',');
  const out = list.filter((v) => wanted.includes(v.id) || wanted.includes(v.library));
  if (out.length === 0 && strict) {
    throw new Error(`--variants ${selector}: none of ${list.map((v) => v.id).join(', ')}`);
  }
  return out;
}

/**
 * Parses `--quick`, `--reps N`, `--only a,b`, `--variants a,b` (ids or library names),
 * `--out FILE`, `--node 22|current|PATH`, `--no-analyze`, `--no-count`, `--bulk-jobs N`,
 * `--cap-ms N`, for many-databases `--databases N`, `--hot-jobs N`, `--no-append`,
 * `--idle-delay-s N`, and for
 * retention `--retention-jobs N`, `--retention-rate N` (jobs/s; 0: unpaced).
 */
export function parseArgs(argv: readonly string[]): CliOptions {
  const quick = argv.includes('--quick');
  const params: BenchParams = structuredClone(quick ? QUICK : FULL);
  // sweep and retention (minutes of its own) run only when asked for.
  let only = new Set<ScenarioName>(SCENARIOS.filter((s) => s !== 'sweep' && s !== 'retention'));
  let out: string | null = null;
  // Quick mode (CI): every library at its best, and Stepping at its defaults.
  let variants = quick
    ? VARIANTS.filter((v) => v.tuning === 'best' || v.library === 'stepping')
    : [...VARIANTS];
  let sweep = sweepVariants();
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  const int = (i: number, flag: string, min = 1): number => {
    const n = Number(value(i, flag));
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick' || arg === '--') continue;
    if (arg === '--reps') params.reps = int(i++, arg);
    else if (arg === '--out') out = value(i++, arg);
    else if (arg === '--bulk-jobs') params.bulkJobs = params.sweepJobs = int(i++, arg);
    else if (arg === '--cap-ms') params.drainCapMs = int(i++, arg);
    else if (arg === '--node') params.node = value(i++, arg);
    else if (arg === '--no-analyze') params.analyze = false;
    else if (arg === '--no-count') params.countStatements = false;
    else if (arg === '--databases') params.many.databases = int(i++, arg, 2);
    else if (arg === '--hot-jobs') params.many.hotJobs = int(i++, arg);
    else if (arg === '--no-append') params.many.appendTenant = false;
    else if (arg === '--idle-delay-s') params.many.idleDelaySeconds = int(i++, arg, 0);
    else if (arg === '--start-concurrency') params.many.startConcurrency = int(i++, arg);
    else if (arg === '--retention-jobs') params.retention.jobs = int(i++, arg);
    else if (arg === '--retention-rate') params.retention.ratePerSecond = int(i++, arg, 0);
    else if (arg === '--variants') {
      const selector = value(i++, arg);
      variants = pick(VARIANTS, selector, false);
      sweep = pick(sweepVariants(), selector, false);
      if (variants.length + sweep.length === 0) pick(VARIANTS, selector);
    } else if (arg === '--only') {
      const names = value(i++, arg).split(',');
      for (const n of names) {
        if (!(SCENARIOS as readonly string[]).includes(n)) {
          throw new Error(`unknown scenario ${n}; known: ${SCENARIOS.join(', ')}`);
        }
      }
      only = new Set(names as ScenarioName[]);
    } else throw new Error(`unknown argument ${arg}`);
  }
  return { params, only, variants, sweep, out };
}
