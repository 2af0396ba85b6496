/**
 * The worker's one validated configuration object. Worker defaults live here
 * (WORKER_DEFAULTS, from which `stepping-worker --help` prints its defaults); engine
 * defaults shared with SQL (lease, backoff) come from src/defaults.ts.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';

import type pg from 'pg';

import { checkConnectionString, checkInt, schemaName } from '../config.js';
import {
  DEFAULT_LEASE_MS,
  DEFAULT_MAINTENANCE_INTERVAL_MS,
  DEFAULT_RETENTION_MS,
  DEFAULT_WORKER_HEARTBEAT_MS,
} from '../defaults.js';
import { ConfigError } from '../errors.js';
import {
  MAX_CLAIM_BATCH,
  MAX_LEASE_MS,
  MAX_QUEUE_LENGTH,
  MAX_WORKER_HEARTBEAT_MS,
  MAX_WORKER_ID_LENGTH,
  MAX_WORKER_NAMES,
  MAX_WORKER_QUEUES,
  MIN_LEASE_MS,
  MIN_WORKER_HEARTBEAT_MS,
} from '../limits.js';
import type { DatabaseSource } from '../multidb/sources.js';
import type { ScheduleDefinition } from '../schedules/schedules.js';
import { type AnyStepDefinition, isStepDefinition } from '../steps.js';
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
  /**
   * Multi-database mode: most databases starting at once (checking their schema,
   * registering, first claim). A start is a new server process and a few statements: more
   * at once than the server has cores only crowds out the databases already at work. Half
   * of it (rounded up) while a served database has a backlog (its last claim came back full).
   */
  startConcurrency?: number;
  /**
   * Multi-database mode: at the worker's start, this many more of the listed databases may
   * start at once, beyond startConcurrency (then startConcurrency holds). A few tenants
   * starting together are up sooner than in rounds of four; thousands at once would crowd
   * out the databases at work for as long as they start.
   */
  startBurst?: number;
  /**
   * Multi-database mode: longest wait for one engine call (claim, report, heartbeat,
   * registry, schedules) in a database. Past it the call's connection is closed and the
   * database is set aside with a growing backoff, like one that is down, so a database
   * whose functions never answer cannot hold the slots and connections other tenants share.
   */
  callTimeoutMs?: number;
  /** Schema name. Default `stepping`. */
  schema?: string;
  /** The steps this worker can run (handlers). Steps with other names are never claimed. */
  steps: readonly AnyStepDefinition[];
  /**
   * Queues to serve: a list, or per-queue concurrency limits `{ emails: 2, default: 8 }`
   * (each at most `concurrency`). Default: all queues.
   */
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
  /** Name shown in locked_by and live_workers. Default host:pid:random. */
  workerId?: string;
  /**
   * How long finished jobs (succeeded, compensated, cancelled) are kept before maintenance
   * prunes them, in ms. Default 7 days. `false` or 0: this worker prunes nothing. Failed
   * jobs are never pruned by maintenance.
   */
  retention?: number | false;
  /** How often this worker calls maintenance_run (plus up to 20% jitter). Default 30 s; 0: never. */
  maintenanceIntervalMs?: number;
  /** How often this worker marks itself alive in live_workers (dead after 3 periods). Default 10 s. */
  registryHeartbeatMs?: number;
  /** Recurring schedules to create or update at start (README "Recurring schedules"). */
  schedules?: readonly ScheduleDefinition[];
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
  databasePoolSize: 4,
  maxConnections: 100,
  idlePollMaxMs: 30000,
  startConcurrency: 4,
  startBurst: 16,
  callTimeoutMs: 30000,
  retentionMs: DEFAULT_RETENTION_MS,
  maintenanceIntervalMs: DEFAULT_MAINTENANCE_INTERVAL_MS,
  registryHeartbeatMs: DEFAULT_WORKER_HEARTBEAT_MS,
} as const;

/** The numeric options whose default is the WORKER_DEFAULTS value of the same name. */
type DefaultedOption = Extract<keyof typeof WORKER_DEFAULTS, keyof WorkerOptions>;

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
  startConcurrency: number;
  startBurst: number;
  callTimeoutMs: number;
  workerId: string;
  /** 0: no pruning. */
  retentionMs: number;
  /** 0: no maintenance from this worker. */
  maintenanceIntervalMs: number;
  registryHeartbeatMs: number;
  schedules: readonly ScheduleDefinition[];
  /** Spans and metrics (no-ops without `@opentelemetry/api`); load() before serving. */
  telemetry: WorkerTelemetry;
}

/** Retention of up to 100 years (a number of ms PostgreSQL's interval arithmetic takes). */
const MAX_RETENTION_MS = 3_155_760_000_000;

function checkWorkerId(id: string): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_WORKER_ID_LENGTH) {
    throw new ConfigError(`workerId must be 1 to ${MAX_WORKER_ID_LENGTH} characters`);
  }
  return id;
}

/** Validates options and applies defaults. */
export function resolveWorkerConfig(options: WorkerOptions): WorkerConfig {
  if (!options || !Array.isArray(options.steps) || options.steps.length === 0) {
    throw new ConfigError('createWorker needs steps: a non-empty array of step definitions (defineStep)');
  }
  // Refused here, at createWorker, rather than as a DNS error (`ENOTFOUND base`) at start.
  if (options.connectionString !== undefined)
    checkConnectionString(options.connectionString, 'connectionString');
  else if (options.pool === undefined && options.databases === undefined && process.env.DATABASE_URL)
    checkConnectionString(process.env.DATABASE_URL, 'DATABASE_URL');
  if (options.listenConnectionString !== undefined)
    checkConnectionString(options.listenConnectionString, 'listenConnectionString');
  const handlers = new Map<string, AnyStepDefinition>();
  for (const [i, step] of options.steps.entries()) {
    if (!isStepDefinition(step))
      throw new ConfigError(`steps[${i}] is not a step definition made by defineStep`);
    if (handlers.has(step.stepName) && handlers.get(step.stepName) !== step) {
      throw new ConfigError(`two different steps are named ${step.stepName}`);
    }
    handlers.set(step.stepName, step);
  }
  // worker_register refuses more; the worker would run jobs yet never register (so
  // unrunnable_steps would report its steps and maintenance would not count it).
  if (handlers.size > MAX_WORKER_NAMES)
    throw new ConfigError(
      `a worker can handle at most ${MAX_WORKER_NAMES} step names, got ${handlers.size}: split the steps among several workers`,
    );
  // A numeric option: as given, else its default of the same name; within [min, max].
  const defaulted = (name: DefaultedOption, min: number, max: number): number =>
    checkInt(name, options[name] ?? WORKER_DEFAULTS[name], min, max);
  const concurrency = defaulted('concurrency', 1, 10000);
  let queues: string[] | null = null;
  const queueLimits = new Map<string, number>();
  if (options.queues !== undefined) {
    if (Array.isArray(options.queues)) {
      queues = [...(options.queues as readonly string[])];
    } else {
      for (const [queue, limit] of Object.entries(options.queues as Record<string, number>)) {
        // A queue can never run more than the worker does: name that bound, or 20 with
        // the default concurrency of 10 reads as an arbitrary limit.
        queueLimits.set(
          queue,
          checkInt(`queues.${queue}`, limit, 1, concurrency, "the worker's concurrency"),
        );
      }
      queues = [...queueLimits.keys()];
    }
    if (queues.length === 0) throw new ConfigError('queues, when given, must name at least one queue');
    if (queues.length > MAX_WORKER_QUEUES)
      throw new ConfigError(
        `queues, when given, must name at most ${MAX_WORKER_QUEUES} queues, got ${queues.length}: split them among several workers`,
      );
    for (const q of queues) {
      if (typeof q !== 'string' || q.length === 0 || q.length > MAX_QUEUE_LENGTH) {
        throw new ConfigError(
          `queue names must be 1 to ${MAX_QUEUE_LENGTH} characters, got ${JSON.stringify(q)}`,
        );
      }
    }
  }
  const leaseMs = defaulted('leaseMs', MIN_LEASE_MS, MAX_LEASE_MS);
  return {
    schema: schemaName(options.schema),
    handlers,
    names: [...handlers.keys()],
    queues,
    queueLimits,
    concurrency,
    batchSize: checkInt('batchSize', options.batchSize ?? MAX_CLAIM_BATCH, 1, MAX_CLAIM_BATCH),
    pollIntervalMs: defaulted('pollIntervalMs', 10, 86_400_000),
    leaseMs,
    heartbeatMs: checkInt(
      'heartbeatMs',
      options.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 3)),
      10,
      leaseMs,
    ),
    gracefulStopMs: defaulted('gracefulStopMs', 0, 86_400_000),
    poolSize: checkInt(
      'poolSize',
      options.poolSize ?? (options.databases ? WORKER_DEFAULTS.databasePoolSize : WORKER_DEFAULTS.poolSize),
      2,
      1000,
    ),
    maxConnections: defaulted('maxConnections', 2, 100_000),
    idlePollMaxMs: defaulted('idlePollMaxMs', 10, 86_400_000),
    startConcurrency: defaulted('startConcurrency', 1, 10_000),
    startBurst: defaulted('startBurst', 0, 100_000),
    callTimeoutMs: defaulted('callTimeoutMs', 100, 86_400_000),
    workerId: checkWorkerId(
      options.workerId ?? `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
    ),
    retentionMs:
      options.retention === false
        ? 0
        : checkInt('retention', options.retention ?? WORKER_DEFAULTS.retentionMs, 0, MAX_RETENTION_MS),
    maintenanceIntervalMs: defaulted('maintenanceIntervalMs', 0, 86_400_000),
    registryHeartbeatMs: defaulted('registryHeartbeatMs', MIN_WORKER_HEARTBEAT_MS, MAX_WORKER_HEARTBEAT_MS),
    schedules: checkSchedules(options.schedules),
    telemetry: new WorkerTelemetry(options.telemetry),
  };
}

function checkSchedules(schedules: unknown): readonly ScheduleDefinition[] {
  if (schedules === undefined) return [];
  if (!Array.isArray(schedules)) throw new ConfigError('schedules must be an array of schedule definitions');
  return schedules as readonly ScheduleDefinition[];
}
