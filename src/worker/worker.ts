/**
 * The public worker: validated config, its databases (one, or many with a connection
 * budget and a refreshable list), the shared slots and dispatcher, typed events,
 * start/stop. `createWorker(options)` is the entry point.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { quoteIdent } from '../config.js';
import { ConfigError, SchemaNotReadyError } from '../errors.js';
import { budgetedClient, ConnectionBudget } from '../multidb/budget.js';
import {
  databaseId,
  isDynamic,
  readSource,
  refreshMs,
  type DatabaseSource,
  type ResolvedDatabase,
} from '../multidb/sources.js';
import { DatabaseWorker } from './database-worker.js';
import { Dispatcher } from './dispatcher.js';
import type { WorkerEventMap, WorkerEventName } from './events.js';
import { resolveWorkerConfig, type WorkerConfig, type WorkerOptions } from './options.js';
import { Slots } from './slots.js';

/** One served database and its lifecycle. */
interface ManagedDatabase {
  id: string;
  pool: pg.Pool;
  ownsPool: boolean;
  listenConfig: pg.ClientConfig | null;
  worker: DatabaseWorker | null;
  state: 'starting' | 'up' | 'down' | 'removed';
  hasListenerPermit: boolean;
  retryTimer: NodeJS.Timeout | undefined;
  retryDelayMs: number;
  lastError: string | null;
}

/** A database's state as reported by Worker.databaseStates(). */
export interface DatabaseState {
  database: string;
  state: 'starting' | 'up' | 'down' | 'removed';
  listening: boolean;
  running: number;
  lastError: string | null;
}

/**
 * Labels the worker's connections in pg_stat_activity (application_name), unless the URL
 * sets its own. pg ignores an application_name option next to a connection string, so it
 * goes into the URL.
 */
function withApplicationName(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    if (!url.searchParams.has('application_name'))
      url.searchParams.set('application_name', 'stepping-worker');
    return url.toString();
  } catch {
    return connectionString;
  }
}

/** Name of the database a pool connects to, for ctx.database: never the password. */
function poolDatabaseId(pool: pg.Pool): string {
  const options = pool.options as pg.PoolConfig;
  if (options.connectionString) {
    try {
      return databaseId(options.connectionString).id.replace(/^.*\//, '');
    } catch {
      return 'database';
    }
  }
  return options.database ?? process.env.PGDATABASE ?? 'postgres';
}

/** A running (or stopped) worker. Listen to its events for logs and metrics. */
export class Worker {
  /** The validated configuration (defaults applied). */
  readonly config: WorkerConfig;
  private readonly emitter = new EventEmitter();
  private readonly slots: Slots;
  private readonly dispatcher: Dispatcher;
  private readonly databases = new Map<string, ManagedDatabase>();
  private readonly source: DatabaseSource | null;
  private readonly budget: ConnectionBudget | null;
  private single: ManagedDatabase | null = null;
  private refreshTimer: NodeJS.Timeout | undefined;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    this.config = resolveWorkerConfig(options);
    this.slots = new Slots(this.config.concurrency, this.config.queueLimits);
    this.dispatcher = new Dispatcher(this.slots, this.config.batchSize);
    const given = [options.databases, options.pool, options.connectionString].filter(
      (x) => x !== undefined,
    ).length;
    if (given > 1) throw new ConfigError('give one of databases, pool or connectionString');
    if (options.databases !== undefined) {
      this.source = options.databases;
      this.budget = new ConnectionBudget(this.config.maxConnections);
      return;
    }
    this.source = null;
    this.budget = null;
    let pool = options.pool;
    const ownsPool = !pool;
    if (!pool) {
      const connectionString = options.connectionString ?? process.env.DATABASE_URL;
      if (!connectionString)
        throw new ConfigError('createWorker needs connectionString, pool, databases or DATABASE_URL');
      pool = new pg.Pool({ connectionString, max: this.config.poolSize });
    }
    this.single = this.manage(poolDatabaseId(pool), pool, ownsPool, pool.options as pg.ClientConfig);
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

  /** Units held now (running or being reported), over all databases. */
  get running(): number {
    let n = 0;
    for (const m of this.databases.values()) n += m.worker?.running ?? 0;
    return n;
  }

  /** Each served database's state (for status displays and health checks). */
  databaseStates(): DatabaseState[] {
    return [...this.databases.values()].map((m) => ({
      database: m.id,
      state: m.state,
      listening: m.hasListenerPermit || (this.single !== null && m === this.single),
      running: m.worker?.running ?? 0,
      lastError: m.lastError,
    }));
  }

  private manage(
    id: string,
    pool: pg.Pool,
    ownsPool: boolean,
    listenConfig: pg.ClientConfig | null,
  ): ManagedDatabase {
    // An idle client's connection error (database restart) must not crash the process.
    pool.on('error', (error) => this.emit('error', { database: id, error, during: 'pool' }));
    const m: ManagedDatabase = {
      id,
      pool,
      ownsPool,
      listenConfig,
      worker: null,
      state: 'starting',
      hasListenerPermit: false,
      retryTimer: undefined,
      retryDelayMs: 0,
      lastError: null,
    };
    this.databases.set(id, m);
    return m;
  }

  private async checkSchema(pool: pg.Pool): Promise<void> {
    const { rows } = await pool.query(`SELECT to_regprocedure($1) IS NOT NULL AS ready`, [
      `${quoteIdent(this.config.schema)}.step_claim(text,text[],text[],integer,integer)`,
    ]);
    if (!rows[0]?.ready) {
      throw new SchemaNotReadyError(
        `schema ${this.config.schema} has no Stepping engine in this database: run \`stepping migrate\` (or stepping.migrate()) first`,
      );
    }
  }

  private async launch(m: ManagedDatabase, listenConfig: pg.ClientConfig | null): Promise<void> {
    const worker = new DatabaseWorker(
      this.config,
      m.pool,
      m.id,
      this.slots,
      (e, p) => this.emit(e, p),
      () => this.dispatcher.kick(),
      listenConfig,
    );
    m.worker = worker;
    this.dispatcher.add(worker);
    await worker.start();
  }

  /** Checks the schema is migrated, then starts listening and claiming. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new ConfigError(`worker already ${this.state}`);
    this.state = 'running';
    if (this.single) {
      try {
        await this.checkSchema(this.single.pool);
      } catch (error) {
        this.state = 'new';
        throw error;
      }
      await this.launch(this.single, this.single.listenConfig);
      this.single.state = 'up';
      return;
    }
    await this.refresh();
    if (this.source && isDynamic(this.source)) {
      this.refreshTimer = setInterval(() => {
        this.refresh().catch((error: Error) =>
          this.emit('error', { database: '(resolver)', error, during: 'resolve' }),
        );
      }, refreshMs(this.source));
      this.refreshTimer.unref();
    }
  }

  /** Re-reads the database list: starts new databases, drains and closes removed ones. */
  async refresh(): Promise<void> {
    if (!this.source || this.state !== 'running') return;
    const wanted = await readSource(this.source);
    const ids = new Set(wanted.map((d) => d.id));
    for (const d of wanted) if (!this.databases.has(d.id)) this.add(d);
    await Promise.all([...this.databases.values()].filter((m) => !ids.has(m.id)).map((m) => this.remove(m)));
  }

  private add(d: ResolvedDatabase): void {
    const connectionString = withApplicationName(d.connectionString);
    const pool = new pg.Pool({
      connectionString,
      max: this.config.poolSize,
      // Idle connections hold budget permits: give them back quickly to busier databases.
      idleTimeoutMillis: 250,
      // No pool connect timeout: it would also count the wait for a budget permit and end
      // a client that is still queued for one. A down database refuses at once.
      Client: budgetedClient(this.budget!, () => this.databases.get(d.id)?.worker?.busy ?? false),
    });
    const m = this.manage(d.id, pool, true, { connectionString, connectionTimeoutMillis: 10_000 });
    void this.bringUp(m);
  }

  /** True once the database was removed or the worker is stopping (state changes across awaits). */
  private gone(m: ManagedDatabase): boolean {
    return m.state === 'removed' || this.state !== 'running';
  }

  /** Starts serving a database; on failure reports it and tries again with backoff. */
  private async bringUp(m: ManagedDatabase): Promise<void> {
    if (this.gone(m)) return;
    // Taken before any pool connection of this start (synchronously), so the pools of many
    // databases starting at once cannot crowd out every listener.
    if (!m.hasListenerPermit) m.hasListenerPermit = this.budget!.tryAcquireListener();
    try {
      await this.checkSchema(m.pool);
      if (this.gone(m)) return;
      await this.launch(m, m.hasListenerPermit ? m.listenConfig : null);
      m.state = 'up';
      m.retryDelayMs = 0;
      m.lastError = null;
      this.emit('database:up', { database: m.id, listening: m.hasListenerPermit });
    } catch (error) {
      if (m.worker) {
        this.dispatcher.remove(m.worker);
        await m.worker.stop().catch(() => {});
        m.worker = null;
      }
      if (m.hasListenerPermit) {
        m.hasListenerPermit = false;
        this.budget!.release(true);
      }
      if (this.gone(m)) return;
      m.state = 'down';
      m.lastError = (error as Error).message;
      m.retryDelayMs = Math.min(Math.max(m.retryDelayMs * 2, 500), 60_000);
      this.emit('database:down', { database: m.id, error: error as Error, retryInMs: m.retryDelayMs });
      m.retryTimer = setTimeout(() => void this.bringUp(m), m.retryDelayMs);
      m.retryTimer.unref();
    }
  }

  /** Stops serving a database: in-flight units finish (or are released), connections close. */
  private async remove(m: ManagedDatabase): Promise<void> {
    m.state = 'removed';
    clearTimeout(m.retryTimer);
    this.databases.delete(m.id);
    if (m.worker) {
      await m.worker.stop();
      this.dispatcher.remove(m.worker);
    }
    if (m.hasListenerPermit) {
      m.hasListenerPermit = false;
      this.budget?.release(true);
    }
    if (m.ownsPool) await m.pool.end().catch(() => {});
    if (this.source) this.emit('database:removed', { database: m.id });
  }

  /**
   * Graceful stop: no new claims; in-flight steps finish within gracefulStopMs, the rest
   * are aborted and released for other workers; then connections close. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.state = 'stopping';
      clearInterval(this.refreshTimer);
      await Promise.all([...this.databases.values()].map((m) => this.remove(m)));
      this.state = 'stopped';
    })();
    return this.stopped;
  }
}

/** Creates a worker; call start() to run it. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}
