/**
 * Benchmark parameters: one object for quick mode and one for the full run, plus the
 * command-line parsing. Every figure in the report is produced with these values, and
 * they are written into results/latest.json.
 */

/** Settings of graphile-worker's batching (preset.worker.*) used in every worker scenario. */
export interface GraphileBatching {
  /** preset.worker.localQueue.size: jobs fetched and locked per fetch. */
  localQueueSize: number;
  /** preset.worker.completeJobBatchDelay (ms; -1 disables). */
  completeJobBatchDelay: number;
  /** preset.worker.failJobBatchDelay (ms; -1 disables). */
  failJobBatchDelay: number;
}

/** Everything that sizes a run. */
export interface BenchParams {
  mode: 'quick' | 'full';
  reps: number;
  /** Scenario 1: jobs enqueued by the single client. */
  enqueueSingleJobs: number;
  /** Scenario 1: concurrent clients, and jobs each of them enqueues. */
  enqueueClients: number;
  enqueuePerClient: number;
  /** Scenarios 2 and 3: jobs bulk-enqueued, then drained. */
  bulkJobs: number;
  bulkChunk: number;
  /** Scenario 4: jobs of chainSteps steps each. */
  chainJobs: number;
  chainSteps: number;
  /** Scenario 5: jobs enqueued one by one, latencyGapMs apart, to an idle worker. */
  latencyJobs: number;
  latencyGapMs: number;
  /** Worker settings shared by both libraries. */
  concurrency: number;
  poolSize: number;
  pollIntervalMs: number;
  graphile: GraphileBatching;
  /** Scenario 6: connections running claim/delete loops, and rows claimed per statement. */
  floorConnections: number;
  floorBatch: number;
  /** A drain that takes longer than this is reported as failed. */
  timeoutMs: number;
  /** Many databases (Stepping only): queued jobs of the hot tenant (19 quiet ones have 10 each). */
  manyHotJobs: number;
}

const common = {
  reps: 3,
  enqueueClients: 8,
  bulkChunk: 5000,
  chainSteps: 5,
  latencyGapMs: 10,
  concurrency: 24,
  // Both libraries' default pool size (node-postgres' default of 10).
  poolSize: 10,
  pollIntervalMs: 1000,
  graphile: { localQueueSize: 25, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
  floorConnections: 10,
  floorBatch: 24,
  timeoutMs: 300_000,
} as const;

const FULL: BenchParams = {
  ...common,
  graphile: { ...common.graphile },
  mode: 'full',
  enqueueSingleJobs: 1500,
  enqueuePerClient: 250,
  bulkJobs: 50_000,
  chainJobs: 10_000,
  latencyJobs: 500,
  manyHotJobs: 10_000,
};

const QUICK: BenchParams = {
  ...common,
  graphile: { ...common.graphile },
  mode: 'quick',
  enqueueSingleJobs: 150,
  enqueuePerClient: 20,
  bulkJobs: 3000,
  chainJobs: 300,
  latencyJobs: 40,
  manyHotJobs: 1000,
};

/** Scenario names accepted by --only. */
export const SCENARIOS = ['enqueue', 'bulk-drain', 'chain', 'latency', 'floor', 'many-databases'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Parsed command line. */
export interface CliOptions {
  params: BenchParams;
  only: Set<ScenarioName>;
  /** Libraries to run (--libs stepping,graphile; default both). */
  libraries: ('stepping' | 'graphile')[];
  /** Where to write the JSON (default bench/results/latest.json; --out). */
  out: string | null;
}

/**
 * Parses `--quick`, `--reps N`, `--only a,b`, `--libs a,b`, `--out FILE`, and for trying
 * settings `--bulk-jobs N`, `--graphile-local-queue N`, `--graphile-complete-delay N`.
 */
export function parseArgs(argv: readonly string[]): CliOptions {
  const quick = argv.includes('--quick');
  const params: BenchParams = structuredClone(quick ? QUICK : FULL);
  let only = new Set<ScenarioName>(SCENARIOS);
  let out: string | null = null;
  let libraries: CliOptions['libraries'] = ['stepping', 'graphile'];
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  const int = (i: number, flag: string): number => {
    const n = Number(value(i, flag));
    if (!Number.isInteger(n)) throw new Error(`${flag} needs an integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick' || arg === '--') continue;
    if (arg === '--reps') params.reps = Math.max(1, int(i++, arg));
    else if (arg === '--out') out = value(i++, arg);
    else if (arg === '--bulk-jobs') params.bulkJobs = int(i++, arg);
    else if (arg === '--libs') {
      libraries = value(i++, arg)
        .split(',')
        .map((l) => {
          if (l !== 'stepping' && l !== 'graphile') throw new Error(`unknown library ${l}`);
          return l;
        });
    } else if (arg === '--graphile-local-queue') params.graphile.localQueueSize = int(i++, arg);
    else if (arg === '--graphile-complete-delay') params.graphile.completeJobBatchDelay = int(i++, arg);
    else if (arg === '--only') {
      const names = value(i++, arg).split(',');
      for (const n of names) {
        if (!(SCENARIOS as readonly string[]).includes(n)) {
          throw new Error(`unknown scenario ${n}; known: ${SCENARIOS.join(', ')}`);
        }
      }
      only = new Set(names as ScenarioName[]);
    } else throw new Error(`unknown argument ${arg}`);
  }
  return { params, only, libraries, out };
}
