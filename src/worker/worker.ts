/**
 * The public worker: validated config, its pool, its DatabaseWorker(s), typed events,
 * start/stop. `createWorker(options)` is the entry point.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { ConfigError, SchemaNotReadyError } from '../errors.js';
import { quoteIdent } from '../config.js';
import { DatabaseWorker } from './database-worker.js';
import type { WorkerEventMap, WorkerEventName } from './events.js';
import { resolveWorkerConfig, type WorkerConfig, type WorkerOptions } from './options.js';
import { Slots } from './slots.js';

/** Name of the database a pool connects to, for ctx.database: never the password. */
function databaseName(pool: pg.Pool): string {
  const options = pool.options as pg.PoolConfig;
  if (options.database) return options.database;
  if (options.connectionString) {
    try {
      return decodeURIComponent(new URL(options.connectionString).pathname.replace(/^\//, '')) || 'postgres';
    } catch {
      return 'database';
    }
  }
  return process.env.PGDATABASE ?? 'postgres';
}

/** A running (or stopped) worker. Listen to its events for logs and metrics. */
export class Worker {
  /** The validated configuration (defaults applied). */
  readonly config: WorkerConfig;
  private readonly emitter = new EventEmitter();
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly databaseWorker: DatabaseWorker;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    this.config = resolveWorkerConfig(options);
    if (options.pool) {
      this.pool = options.pool;
      this.ownsPool = false;
    } else {
      const connectionString = options.connectionString ?? process.env.DATABASE_URL;
      if (!connectionString)
        throw new ConfigError('createWorker needs connectionString, pool or DATABASE_URL');
      this.pool = new pg.Pool({ connectionString, max: this.config.poolSize });
      this.ownsPool = true;
    }
    // An idle client's connection error (database restart) must not crash the process.
    this.pool.on('error', (error) =>
      this.emit('error', { database: databaseName(this.pool), error, during: 'pool' }),
    );
    const slots = new Slots(this.config.concurrency, this.config.queueLimits);
    this.databaseWorker = new DatabaseWorker(this.config, this.pool, databaseName(this.pool), slots, (e, p) =>
      this.emit(e, p),
    );
  }

  /** Subscribes to an event. */
  on<K extends WorkerEventName>(event: K, listener: (payload: WorkerEventMap[K]) => void): this {
    this.emitter.on(event, listener);
    return this;
  }

  /** Unsubscribes. */
  off<K extends WorkerEventName>(event: K, listener: (payload: WorkerEventMap[K]) => void): this {
    this.emitter.off(event, listener);
    return this;
  }

  private emit<K extends WorkerEventName>(event: K, payload: WorkerEventMap[K]): void {
    // An 'error' without listeners would throw inside the worker; print it instead.
    if (event === 'error' && this.emitter.listenerCount('error') === 0) {
      const p = payload as WorkerEventMap['error'];
      console.error(`stepping worker: ${p.during} failed on ${p.database}: ${p.error.message}`);
      return;
    }
    this.emitter.emit(event, payload);
  }

  /** Units held now (running or being reported). */
  get running(): number {
    return this.databaseWorker.running;
  }

  /** Checks the schema is migrated, then starts listening and claiming. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new ConfigError(`worker already ${this.state}`);
    const { rows } = await this.pool.query(`SELECT to_regprocedure($1) IS NOT NULL AS ready`, [
      `${quoteIdent(this.config.schema)}.step_claim(text,text[],text[],integer,integer)`,
    ]);
    if (!rows[0]?.ready) {
      throw new SchemaNotReadyError(
        `schema ${this.config.schema} has no Stepping engine in this database: run \`stepping migrate\` (or stepping.migrate()) first`,
      );
    }
    this.state = 'running';
    await this.databaseWorker.start();
  }

  /**
   * Graceful stop: no new claims; in-flight steps finish within gracefulStopMs, the rest
   * are aborted and released for other workers; then connections close. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.state = 'stopping';
      await this.databaseWorker.stop();
      if (this.ownsPool) await this.pool.end();
      this.state = 'stopped';
    })();
    return this.stopped;
  }
}

/** Creates a worker; call start() to run it. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}
