/**
 * The configurations the benchmark compares: every library at its defaults and at its
 * best documented high-throughput settings. Each carries the settings as a user would
 * write them, printed beside its figures. The "best" settings are the winners of
 * `npm run bench -- --only sweep` (docs/benchmarks.md has the sweep's table).
 */

/** The libraries compared. */
export type LibraryName = 'stepping' | 'graphile' | 'pgboss';

/** Stepping's createWorker options the benchmark varies (the rest stay at their defaults). */
export interface SteppingSettings {
  concurrency?: number;
  batchSize?: number;
  poolSize?: number;
}

/** graphile-worker's run() options and preset.worker batching options the benchmark varies. */
export interface GraphileSettings {
  concurrency: number;
  maxPoolSize?: number;
  localQueueSize?: number;
  completeJobBatchDelay?: number;
  failJobBatchDelay?: number;
}

/** pg-boss's constructor and work() options the benchmark varies. */
export interface PgBossSettings {
  /** work(): workers polling the queue in this process. */
  localConcurrency?: number;
  /** work(): jobs fetched per poll and handed to the handler as one array. */
  batchSize?: number;
  /** work(): fetch again at once while fetches come back full. */
  burstWhenBatchFull?: boolean;
  /** useListenNotify on the instance and notify on the queue: NOTIFY wake-ups instead of polling. */
  notify?: boolean;
  /** Pool size (constructor `max`). */
  max?: number;
}

interface VariantBase {
  /** `library:name`, e.g. `graphile:best`. */
  id: string;
  /** default: the library's defaults (concurrency aside, see settings); best: tuned for throughput. */
  tuning: 'default' | 'best' | 'sweep';
  /** The settings in the library's own words. */
  settings: string;
}

/** One configuration of one library. */
export type Variant =
  | (VariantBase & { library: 'stepping'; options: SteppingSettings })
  | (VariantBase & { library: 'graphile'; options: GraphileSettings })
  | (VariantBase & { library: 'pgboss'; options: PgBossSettings });

/** Display names. */
export const LIBRARY_LABEL: Record<LibraryName, string> = {
  stepping: 'Stepping',
  graphile: 'graphile-worker',
  pgboss: 'pg-boss',
};

/** Describes Stepping settings as createWorker options. */
export function steppingVariant(id: string, tuning: Variant['tuning'], options: SteppingSettings): Variant {
  const parts = Object.entries(options).map(([k, v]) => `${k}: ${v}`);
  const settings =
    parts.length === 0
      ? 'createWorker({ connectionString, steps }): concurrency 10, batchSize 1000 (a claim takes the free slots plus, during a backlog, a prefetch), pool 10 (all defaults)'
      : `createWorker({ ${parts.join(', ')} }), other options at their defaults`;
  return { id, library: 'stepping', tuning, settings, options };
}

/** Describes graphile-worker settings as run() options. */
export function graphileVariant(id: string, tuning: Variant['tuning'], options: GraphileSettings): Variant {
  const batching = [
    options.localQueueSize !== undefined ? `localQueue: { size: ${options.localQueueSize} }` : null,
    options.completeJobBatchDelay !== undefined
      ? `completeJobBatchDelay: ${options.completeJobBatchDelay}`
      : null,
    options.failJobBatchDelay !== undefined ? `failJobBatchDelay: ${options.failJobBatchDelay}` : null,
  ].filter((p): p is string => p !== null);
  const settings =
    `run({ concurrency: ${options.concurrency}` +
    (options.maxPoolSize !== undefined ? `, maxPoolSize: ${options.maxPoolSize}` : '') +
    (batching.length ? `, preset.worker: { ${batching.join(', ')} }` : '') +
    ' })' +
    (batching.length === 0 ? ': no localQueue, no completion batching, pool 10 (defaults)' : '');
  return { id, library: 'graphile', tuning, settings, options };
}

/** Describes pg-boss settings as constructor and work() options. */
export function pgbossVariant(id: string, tuning: Variant['tuning'], options: PgBossSettings): Variant {
  const work = [
    options.localConcurrency !== undefined ? `localConcurrency: ${options.localConcurrency}` : null,
    options.batchSize !== undefined ? `batchSize: ${options.batchSize}` : null,
    options.burstWhenBatchFull ? 'burstWhenBatchFull: true' : null,
  ].filter((p): p is string => p !== null);
  const ctor = [
    options.notify ? 'useListenNotify: true' : null,
    options.max !== undefined ? `max: ${options.max}` : null,
  ].filter((p): p is string => p !== null);
  const settings =
    `new PgBoss({ ${['connectionString', ...ctor].join(', ')} })` +
    (options.notify ? ', queue { notify: true }' : '') +
    `, work(queue, { ${work.join(', ')} }, handler)` +
    (options.batchSize === undefined ? ': batchSize 1, poll every 2 s, no NOTIFY, pool 10 (defaults)' : '');
  return { id, library: 'pgboss', tuning, settings, options };
}

/**
 * The configurations of a normal run. Defaults: each library as `npm install` gives it,
 * except graphile-worker's and pg-boss's concurrency of 1, raised to 24 (the
 * concurrency of graphile-worker's own performance page) so that defaults compare
 * defaults and not one handler at a time; Stepping's default concurrency is 10.
 * Best: the fastest settings of the sweep (docs/benchmarks.md), within each library's
 * documented options.
 */
export const VARIANTS: readonly Variant[] = [
  steppingVariant('stepping:default', 'default', {}),
  steppingVariant('stepping:best', 'best', { concurrency: 200, batchSize: 200, poolSize: 20 }),
  graphileVariant('graphile:default', 'default', { concurrency: 24 }),
  // graphile-worker's performance page: concurrency 24, pool 25, localQueue 500, batch delays 0.
  graphileVariant('graphile:best', 'best', {
    concurrency: 24,
    maxPoolSize: 25,
    localQueueSize: 500,
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  }),
  pgbossVariant('pgboss:default', 'default', { localConcurrency: 24 }),
  pgbossVariant('pgboss:best', 'best', {
    localConcurrency: 4,
    batchSize: 100,
    burstWhenBatchFull: true,
    notify: true,
  }),
];

/** The grid `--only sweep` drains, per library (each setting once per repetition). */
export function sweepVariants(): Variant[] {
  const out: Variant[] = [];
  for (const [concurrency, batchSize, poolSize] of [
    [10, 10, undefined],
    [24, 24, undefined],
    [50, 50, undefined],
    [100, 50, undefined],
    [100, 100, undefined],
    [100, 100, 20],
    [200, 100, undefined],
    [200, 200, undefined],
    [200, 200, 20],
    [300, 300, 20],
    [500, 500, 20],
  ] as const) {
    const id = `stepping:c${concurrency}-b${batchSize}${poolSize ? `-pool${poolSize}` : ''}`;
    out.push(steppingVariant(id, 'sweep', { concurrency, batchSize, ...(poolSize ? { poolSize } : {}) }));
  }
  for (const size of [25, 100, 500]) {
    out.push(
      graphileVariant(`graphile:lq${size}`, 'sweep', {
        concurrency: 24,
        maxPoolSize: 25,
        localQueueSize: size,
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      }),
    );
  }
  out.push(
    graphileVariant('graphile:lq25-pool10', 'sweep', {
      concurrency: 24,
      localQueueSize: 25,
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    }),
  );
  for (const [localConcurrency, batchSize] of [
    [1, 100],
    [2, 100],
    [4, 50],
    [4, 100],
    [8, 100],
    [4, 500],
  ] as const) {
    out.push(
      pgbossVariant(`pgboss:w${localConcurrency}-b${batchSize}`, 'sweep', {
        localConcurrency,
        batchSize,
        burstWhenBatchFull: true,
        notify: true,
      }),
    );
  }
  return out;
}
