/**
 * The worker's one validated configuration object. Worker defaults live here
 * (WORKER_DEFAULTS, from which `stepping-worker --help` prints its defaults); engine
 * defaults shared with SQL (lease, backoff) come from src/defaults.ts.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { checkInt, schemaName } from '../config.js';
import { DEFAULT_LEASE_MS } from '../defaults.js';
import { ConfigError } from '../errors.js';
import { MAX_CLAIM_BATCH, MAX_LEASE_MS, MAX_QUEUE_LENGTH, MIN_LEASE_MS } from '../limits.js';
import { isStepDefinition, type AnyStepDefinition } from '../steps.js';
import type { DatabaseSource } from '../multidb/sources.js';
import type { TelemetryOptions } from '../telemetry/types.js';
import { WorkerTelemetry } from '../telemetry/worker.js';

/** Options of createWorker(). */
export interface WorkerOptions {
  /** PostgreSQL connection string. Default: DATABASE_URL. */
  connectionString?: string;
  /** Your own pool (Stepping will not end it). */
  pool?: pg.Pool;
  /**
   * A direct server URL for the LISTEN connection, when connectionString/pool go through
   * PgBouncer in transaction pooling mode (where LISTEN hears nothing). Without it the
   * worker checks that notifications arrive and otherwise polls, saying so once.
   */
  listenConnectionString?: string;
  /**
   * Serve many databases from this one worker (instead of connectionString/pool): a list
   * of connection strings or `{ id, connectionString }`, a `{ list(), refreshMs }` resolver,
   * or a `{ catalog, query, refreshMs }` SQL query returning url (and optionally id) rows.
   */
  databases?: DatabaseSource;
  /** Multi-database mode: most connections the process opens in total (listeners + pools). */
  maxConnections?: number;
  /** Multi-database mode: a database without a listener is polled at most this far apart when idle. */
  idlePollMaxMs?: number;
  /** Schema name. Default `stepping`. */
  schema?: string;
  /** The steps this worker can run (handlers). Steps with other names are never claimed. */
  steps: readonly AnyStepDefinition[];
  /** Queues to serve: a list, or per-queue concurrency limits `{ emails: 5, default: 20 }`. Default: all queues. */
  queues?: readonly string[] | Readonly<Record<string, number>>;
  /** Handlers running at once. */
  concurrency?: number;
  /**
   * Most units one claim statement takes. Default MAX_CLAIM_BATCH (1000): claims are sized
   * to the free slots plus, while a backlog lasts, units claimed ahead for about half a
   * second of the recent handler rate, so there is nothing to tune.
   */
  batchSize?: number;
  /** Fallback poll when no NOTIFY arrives (lost notifications); scheduled work wakes the worker precisely. */
  pollIntervalMs?: number;
  /** Lease length: a unit whose worker stops heart-beating is claimable again after this. */
  leaseMs?: number;
  /** Heartbeat period. Default: leaseMs / 3. */
  heartbeatMs?: number;
  /** On stop(), how long in-flight handlers may run before their leases are released. */
  gracefulStopMs?: number;
  /**
   * Connections in the worker's pool (when it makes its own); per database in
   * multi-database mode. At least 2: transactional handlers hold at most all but one, so
   * heartbeats and reports always have a connection.
   */
  poolSize?: number;
  /** Name shown in locked_by. Default host:pid:random. */
  workerId?: string;
  /**
   * OpenTelemetry (with `@opentelemetry/api` installed): a span per step attempt and the
   * worker's metrics. Default: the global tracer and meter providers. See README, Tracing
   * and metrics.
   */
  telemetry?: TelemetryOptions;
}

/** Defaults of WorkerOptions, with the text `--help` prints. */
export const WORKER_DEFAULTS = {
  concurrency: 10,
  pollIntervalMs: 2000,
  leaseMs: DEFAULT_LEASE_MS,
  gracefulStopMs: 10000,
  poolSize: 10,
  databasePoolSize: 2,
  maxConnections: 100,
  idlePollMaxMs: 30000,
} as const;

/** WorkerOptions after validation and defaults. */
export interface WorkerConfig {
  schema: string;
  handlers: Map<string, AnyStepDefinition>;
  names: string[];
  /** null: every queue. */
  queues: string[] | null;
  /** Per-queue concurrency caps (only queues given with a number). */
  queueLimits: Map<string, number>;
  concurrency: number;
  batchSize: number;
  pollIntervalMs: number;
  leaseMs: number;
  heartbeatMs: number;
  gracefulStopMs: number;
  poolSize: number;
  maxConnections: number;
  idlePollMaxMs: number;
  workerId: string;
  /** Spans and metrics (no-ops without `@opentelemetry/api`); load() before serving. */
  telemetry: WorkerTelemetry;
}

/** Validates options and applies defaults. */
export function resolveWorkerConfig(options: WorkerOptions): WorkerConfig {
  if (!options || !Array.isArray(options.steps) || options.steps.length === 0) {
    throw new ConfigError('createWorker needs steps: a non-empty array of step definitions (defineStep)');
  }
  const handlers = new Map<string, AnyStepDefinition>();
  for (const [i, step] of options.steps.entries()) {
    if (!isStepDefinition(step))
      throw new ConfigError(`steps[${i}] is not a step definition made by defineStep`);
    if (handlers.has(step.stepName) && handlers.get(step.stepName) !== step) {
      throw new ConfigError(`two different steps are named ${step.stepName}`);
    }
    handlers.set(step.stepName, step);
  }
  const concurrency = checkInt('concurrency', options.concurrency ?? WORKER_DEFAULTS.concurrency, 1, 10000);
  let queues: string[] | null = null;
  const queueLimits = new Map<string, number>();
  if (options.queues !== undefined) {
    if (Array.isArray(options.queues)) {
      queues = [...(options.queues as readonly string[])];
    } else {
      for (const [queue, limit] of Object.entries(options.queues as Record<string, number>)) {
        queueLimits.set(queue, checkInt(`queues.${queue}`, limit, 1, concurrency));
      }
      queues = [...queueLimits.keys()];
    }
    if (queues.length === 0) throw new ConfigError('queues, when given, must name at least one queue');
    for (const q of queues) {
      if (typeof q !== 'string' || q.length === 0 || q.length > MAX_QUEUE_LENGTH) {
        throw new ConfigError(
          `queue names must be 1 to ${MAX_QUEUE_LENGTH} characters, got ${JSON.stringify(q)}`,
        );
      }
    }
  }
  const leaseMs = checkInt('leaseMs', options.leaseMs ?? WORKER_DEFAULTS.leaseMs, MIN_LEASE_MS, MAX_LEASE_MS);
  return {
    schema: schemaName(options.schema),
    handlers,
    names: [...handlers.keys()],
    queues,
    queueLimits,
    concurrency,
    batchSize: checkInt('batchSize', options.batchSize ?? MAX_CLAIM_BATCH, 1, MAX_CLAIM_BATCH),
    pollIntervalMs: checkInt(
      'pollIntervalMs',
      options.pollIntervalMs ?? WORKER_DEFAULTS.pollIntervalMs,
      10,
      86_400_000,
    ),
    leaseMs,
    heartbeatMs: checkInt(
      'heartbeatMs',
      options.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 3)),
      10,
      leaseMs,
    ),
    gracefulStopMs: checkInt(
      'gracefulStopMs',
      options.gracefulStopMs ?? WORKER_DEFAULTS.gracefulStopMs,
      0,
      86_400_000,
    ),
    poolSize: checkInt(
      'poolSize',
      options.poolSize ?? (options.databases ? WORKER_DEFAULTS.databasePoolSize : WORKER_DEFAULTS.poolSize),
      2,
      1000,
    ),
    maxConnections: checkInt(
      'maxConnections',
      options.maxConnections ?? WORKER_DEFAULTS.maxConnections,
      2,
      100_000,
    ),
    idlePollMaxMs: checkInt(
      'idlePollMaxMs',
      options.idlePollMaxMs ?? WORKER_DEFAULTS.idlePollMaxMs,
      10,
      86_400_000,
    ),
    workerId: options.workerId ?? `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
    telemetry: new WorkerTelemetry(options.telemetry),
  };
}
