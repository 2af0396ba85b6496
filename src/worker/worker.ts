/**
 * The public worker: validated config, the databases it serves, the shared slots and
 * dispatcher, typed events, start/stop. One database (connectionString or pool) is a
 * static list of one, with no connection budget and always a listener; `databases` is a
 * list or a refreshable source under a connection budget. `createWorker(options)` is the
 * entry point.
 */
import { EventEmitter } from 'node:events';

import type pg from 'pg';

import type { Misbehaviour } from '../db/deadline.js';
import { Engine } from '../db/engine.js';
import { createPool } from '../db/pool.js';
import {
  ConfigError,
  EngineCallTimeoutError,
  ResponseTooLargeError,
  SchemaNotReadyError,
} from '../errors.js';
import { MAX_WORKER_HEARTBEAT_MS } from '../limits.js';
import { ActivityWatch, type ActivityWatcher, serverKey } from '../multidb/activity-watch.js';
import { budgetedClient, ConnectionBudget, ConnectionReclaimedError } from '../multidb/budget.js';
import {
  type DatabaseSource,
  isDynamic,
  readSource,
  refreshMs,
  resolveDatabase,
  type ResolvedDatabase,
  SourceReader,
} from '../multidb/sources.js';
import { maskConnectionString, parseConnectionUrl } from '../redact.js';
import { escapeControl } from '../text.js';
import { DatabaseWorker, type Emit } from './database-worker.js';
import { Dispatcher } from './dispatcher.js';
import { asError } from './error-record.js';
import type { WorkerEventMap, WorkerEventName } from './events.js';
import { resolveWorkerConfig, type WorkerConfig, type WorkerOptions } from './options.js';
import { Permits } from './permits.js';
import { Slots } from './slots.js';

/**
 * Many-databases mode: units a tenant claims beyond its slot grants (see ManyDatabasesMode),
 * and the safety poll of a database that a listener or the activity watch covers: this
 * much per served database, so all of them together poll about once in two seconds.
 */
const CLAIM_AHEAD = 8;
const SAFETY_POLL_PER_DATABASE_MS = 2000;
/**
 * Many-databases mode: a database's registry beat and maintenance run at least this often
 * times the number of databases apart (about one of each a second in total), capped at the
 * engine's longest registry period (an hour).
 */
const PRESENCE_PER_DATABASE_MS = 1000;
/**
 * Many-databases mode: the k-th database managed sits at phase frac(k × this) of the grid
 * its periodic calls keep (the golden ratio's fraction: any run of databases added in turn
 * is spread evenly over the period, without depending on their names).
 */
const GRID_PHASE_STEP = 0.6180339887498949;
/** Many-databases mode: how long startLimit() keeps its answer. */
const START_LIMIT_REFRESH_MS = 100;
/**
 * Many-databases mode: a database set aside because an engine call did not answer is
 * retried after 1 s, doubling with each such time-out up to a minute; the count is
 * forgotten after this long without one.
 */
const UNRESPONSIVE_MEMORY_MS = 600_000;
const MAX_DOWN_RETRY_MS = 60_000;

/** A served database's lifecycle state. */
export type DatabaseLifecycle = 'starting' | 'up' | 'down' | 'removed';

/** One served database and its lifecycle. */
interface ManagedDatabase {
  id: string;
  pool: pg.Pool;
  ownsPool: boolean;
  listenConfig: pg.ClientConfig;
  worker: DatabaseWorker | null;
  state: DatabaseLifecycle;
  hasListenerPermit: boolean;
  retryTimer: NodeJS.Timeout | undefined;
  retryDelayMs: number;
  /** When the current run of failed starts began (0: up). */
  downSince: number;
  lastError: string | null;
  /** Stops the activity watch of this database (null: not watched). */
  unwatch: (() => void) | null;
  /** Its entry in the activity watch (rows this worker inserted itself are counted there). */
  watcher: ActivityWatcher | null;
  /** The activity watch's last reading covered this database. */
  watched: boolean;
  /** Engine calls that did not answer in time, in a row (see UNRESPONSIVE_MEMORY_MS), and the last one's time. */
  timeouts: number;
  lastTimeoutAt: number;
  /** Where on the grid of periodic calls this database sits, a fraction of the period (see gridOffsetMs). */
  gridPhase: number;
}

/** A database's state as reported by Worker.databaseStates(). */
export interface DatabaseState {
  database: string;
  state: DatabaseLifecycle;
  /** True when the database has a LISTEN connection (else it is polled). */
  listening: boolean;
  running: number;
  lastError: string | null;
}

/** ctx.database for a pool given by the caller: `host:port/dbname`, never credentials. */
function poolDatabaseId(pool: pg.Pool): string {
  const options = pool.options as pg.PoolConfig;
  if (options.connectionString) return resolveDatabase(options.connectionString).id;
  const host = options.host ?? process.env.PGHOST ?? 'localhost';
  const port = options.port ?? (process.env.PGPORT ? Number(process.env.PGPORT) : 5432);
  return `${host}:${port}/${options.database ?? process.env.PGDATABASE ?? 'postgres'}`;
}

/** A running (or stopped) worker. Listen to its events for logs and metrics. */
export class Worker {
  /** The validated configuration (defaults applied). */
  readonly config: WorkerConfig;
  private readonly engine: Engine;
  private readonly emitter = new EventEmitter();
  private readonly slots: Slots;
  private readonly dispatcher: Dispatcher;
  private readonly databases = new Map<string, ManagedDatabase>();
  /** startLimit()'s last answer and when it was worked out. */
  private startLimitAt = 0;
  private startLimitValue = 0;
  /** Databases managed so far: the next one's grid phase (see GRID_PHASE_STEP). */
  private managedCount = 0;
  /** Where the databases come from; a given pool is its own single source. */
  private readonly source: DatabaseSource | { pool: pg.Pool };
  /** Many databases: the databases starting now (startConcurrency, plus startBurst at start); null: one database. */
  private readonly starts: Permits | null;
  /** The connection budget of `databases` mode; null: one database, unbounded. */
  private readonly budget: ConnectionBudget | null;
  /** listenConnectionString given with a pool. */
  private readonly listenOverride: string | null;
  /** Reads `databases` again at every refresh (keeps a catalog's connection). */
  private reader: SourceReader | null = null;
  /** Many-databases mode: one activity watch per server (key: host:port). */
  private readonly watches = new Map<string, ActivityWatch>();
  private refreshTimer: NodeJS.Timeout | undefined;
  /** The latest refresh started or queued, and the one queued behind a running one. */
  private lastRefresh: Promise<void> = Promise.resolve();
  private nextRefresh: Promise<void> | null = null;
  /** A listener permit is being handed to another database (see handOnListener). */
  private handingOn = false;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    this.config = resolveWorkerConfig(options);
    this.engine = new Engine(this.config.schema);
    this.slots = new Slots(this.config.concurrency, this.config.queueLimits);
    this.dispatcher = new Dispatcher(this.slots);
    const given = [options.databases, options.pool, options.connectionString].filter(
      (x) => x !== undefined,
    ).length;
    if (given > 1) throw new ConfigError('give one of databases, pool or connectionString');
    if (options.databases !== undefined) {
      this.source = options.databases;
      this.budget = new ConnectionBudget(this.config.maxConnections);
      this.starts = new Permits(() => this.startLimit(), this.config.startBurst);
    } else if (options.pool) {
      this.source = { pool: options.pool };
      this.budget = null;
      this.starts = null;
    } else {
      const connectionString = options.connectionString ?? process.env.DATABASE_URL;
      if (!connectionString)
        throw new ConfigError('createWorker needs connectionString, pool, databases or DATABASE_URL');
      this.source = [
        options.listenConnectionString
          ? { connectionString, listenConnectionString: options.listenConnectionString }
          : connectionString,
      ];
      this.budget = null;
      this.starts = null;
    }
    if (options.databases !== undefined && options.listenConnectionString !== undefined) {
      throw new ConfigError(
        'with databases, give listenConnectionString per database ({ connectionString, listenConnectionString })',
      );
    }
    this.listenOverride = options.pool ? (options.listenConnectionString ?? null) : null;
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

  /** emit, for the database workers: with wants(), so they build no payload nobody reads. */
  private readonly emitForDatabases: Emit = Object.assign(
    <K extends WorkerEventName>(event: K, payload: WorkerEventMap[K]) => this.emit(event, payload),
    { wants: (event: WorkerEventName) => event === 'error' || this.emitter.listenerCount(event) > 0 },
  );

  private emit<K extends WorkerEventName>(event: K, payload: WorkerEventMap[K]): void {
    // An 'error' without listeners would throw inside the worker; print it instead.
    if (event === 'error' && this.emitter.listenerCount('error') === 0) {
      const p = payload as WorkerEventMap['error'];
      // Errors may quote data and connection strings: never a password or a terminal escape.
      console.error(
        escapeControl(
          maskConnectionString(`stepping worker: ${p.during} failed on ${p.database}: ${p.error.message}`),
        ),
      );
      return;
    }
    // A listener is the application's code: what it throws, or an async one rejects with,
    // must not reach the claim or report path that emitted (a throw there stranded units
    // and hung stop()), nor silence the listeners after it.
    // rawListeners: a once() listener's wrapper, which removes it when called.
    const database = (payload as { database?: string }).database ?? '(events)';
    for (const listener of this.emitter.rawListeners(event) as ((p: WorkerEventMap[K]) => unknown)[]) {
      try {
        const returned = listener.call(this.emitter, payload);
        if (returned instanceof Promise)
          returned.catch((error: unknown) => this.listenerFailed(event, database, error));
      } catch (error) {
        this.listenerFailed(event, database, error);
      }
    }
  }

  /** A listener failed: an 'error' event (during 'event listener'), or stderr when an 'error' listener failed. */
  private listenerFailed(event: WorkerEventName, database: string, thrown: unknown): void {
    const error = asError(thrown);
    if (event === 'error') {
      console.error(
        escapeControl(
          maskConnectionString(`stepping worker: a listener of 'error' failed: ${error.message}`),
        ),
      );
      return;
    }
    this.emit('error', { database, error, during: 'event listener' });
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
      listening: m.worker?.hasListener ?? false,
      running: m.worker?.running ?? 0,
      lastError: m.lastError,
    }));
  }

  /**
   * Checks the schema is migrated, then starts listening and claiming. With one database
   * (connectionString or pool) it throws when that database cannot be served
   * (SchemaNotReadyError when not migrated); with `databases` such a database is reported
   * (`database:down`) and retried while the others run.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new ConfigError(`worker already ${this.state}`);
    this.state = 'running';
    await this.config.telemetry.load(); // @opentelemetry/api, when installed
    if ('pool' in this.source) {
      const m = this.manage(poolDatabaseId(this.source.pool), this.source.pool, false);
      if (this.listenOverride) m.listenConfig = { connectionString: this.listenOverride };
      await this.startSingle(m);
      return;
    }
    if (this.budget === null) {
      const [only] = await readSource(this.source);
      await this.startSingle(this.add(only!));
      return;
    }
    await this.refresh();
    // The burst is for the databases listed at start (see startBurst).
    this.starts?.endBurst();
    if (isDynamic(this.source)) {
      let refreshing = false;
      this.refreshTimer = setInterval(() => {
        // A slow read or a removal still draining: skip this turn rather than overlap.
        if (refreshing) return;
        refreshing = true;
        this.refresh()
          .catch((error: Error) => this.emit('error', { database: '(resolver)', error, during: 'resolve' }))
          .finally(() => (refreshing = false));
      }, refreshMs(this.source));
    }
  }

  private async startSingle(m: ManagedDatabase): Promise<void> {
    try {
      await this.bringUp(m, true);
    } catch (error) {
      this.databases.delete(m.id);
      if (m.ownsPool) await m.pool.end().catch(() => {});
      this.state = 'new';
      throw error;
    }
  }

  /**
   * Re-reads the database list: starts new databases, drains and closes removed ones. One
   * read at a time: a call made while one runs waits for it and shares the next (the
   * periodic re-read and an outside trigger, such as the CLI's watch of its file, never
   * start or remove a database twice).
   */
  refresh(): Promise<void> {
    if (this.nextRefresh) return this.nextRefresh;
    const next = this.lastRefresh
      .catch(() => {})
      .then(() => {
        this.nextRefresh = null;
        return this.refreshOnce();
      });
    this.nextRefresh = next;
    this.lastRefresh = next;
    return next;
  }

  private async refreshOnce(): Promise<void> {
    if (this.budget === null || 'pool' in this.source || this.state !== 'running') return;
    this.reader ??= new SourceReader(this.source);
    const wanted = await this.reader.read((error) =>
      this.emit('error', { database: '(resolver)', error, during: 'resolve' }),
    );
    const ids = new Set(wanted.map((d) => d.id));
    const added = wanted.filter((d) => !this.databases.has(d.id)).map((d) => this.add(d));
    // Every new server's activity watch first: it takes a listener permit (if one is free)
    // ahead of the databases' listeners, as one watch wakes all of its server's databases.
    for (const m of added) this.watchFor(m);
    for (const m of added) void this.bringUp(m, false);
    await Promise.all([...this.databases.values()].filter((m) => !ids.has(m.id)).map((m) => this.remove(m)));
    // A free listener permit that found no idle database earlier may find one now.
    this.handOnListener();
  }

  private manage(id: string, pool: pg.Pool, ownsPool: boolean): ManagedDatabase {
    const m: ManagedDatabase = {
      id,
      pool,
      ownsPool,
      listenConfig: pool.options as pg.ClientConfig,
      worker: null,
      state: 'starting',
      hasListenerPermit: false,
      retryTimer: undefined,
      retryDelayMs: 0,
      downSince: 0,
      lastError: null,
      unwatch: null,
      watcher: null,
      watched: false,
      timeouts: 0,
      lastTimeoutAt: 0,
      gridPhase: (this.managedCount++ * GRID_PHASE_STEP) % 1,
    };
    this.databases.set(id, m);
    return m;
  }

  private add(d: ResolvedDatabase): ManagedDatabase {
    const budget = this.budget;
    const pool = createPool({
      connectionString: d.connectionString,
      applicationName: 'stepping-worker',
      max: this.config.poolSize,
      // An idle error (database restart) must not crash the process; the pool replaces it.
      onError: (error) => {
        if (!(error instanceof ConnectionReclaimedError))
          this.emit('error', { database: d.id, error, during: 'pool' });
      },
      ...(budget
        ? {
            // Idle connections hold budget permits: give them back quickly to busier databases.
            idleTimeoutMillis: 250,
            // No pool connect timeout: it would also count the wait for a budget permit.
            // A starting database counts as busy: the connection that checked its schema
            // is kept for its first claim.
            Client: budgetedClient(
              budget,
              () => {
                const m = this.databases.get(d.id);
                return m ? (m.worker?.busy ?? m.state === 'starting') : false;
              },
              () => {
                const m = this.databases.get(d.id);
                return m ? (m.worker?.usingConnections ?? m.state === 'starting') : false;
              },
            ),
          }
        : {}),
    });
    const m = this.manage(d.id, pool, true);
    m.listenConfig = d.listenConnectionString
      ? { connectionString: d.listenConnectionString, connectionTimeoutMillis: 10_000 }
      : { ...(pool.options as pg.ClientConfig), connectionTimeoutMillis: 10_000 };
    return m;
  }

  /** True once the database was removed or the worker is stopping (state changes across awaits). */
  private gone(m: ManagedDatabase): boolean {
    return m.state === 'removed' || this.state !== 'running';
  }

  /**
   * Starts serving a database. On failure: throws (`throwOnFailure`, one database), or
   * reports it and tries again with backoff while the other databases run.
   */
  private async bringUp(m: ManagedDatabase, throwOnFailure: boolean): Promise<void> {
    if (this.gone(m)) return;
    // Made before any pool connection of this start (synchronously), so its permit is not
    // queued behind the pools of the databases that will wait for its first reading.
    const watch = this.budget ? this.watchFor(m) : null;
    // Taken before any pool connection of this start (synchronously), so the pools of many
    // databases starting at once cannot crowd out every listener.
    if (!m.hasListenerPermit) m.hasListenerPermit = this.budget ? this.budget.tryAcquireListener() : true;
    // Many databases: the whole start, up to its first claim, runs on one connection (see
    // CallDeadline.pin); handed to the database's worker, which gives it back.
    let startConnection: pg.PoolClient | null = null;
    let endStart: (() => void) | null = null;
    try {
      const { connectionString } = m.pool.options as pg.PoolConfig;
      if (connectionString && parseConnectionUrl(connectionString)?.ambiguity === 'password') {
        throw new ConfigError(
          `the password in this database's connection string holds an unencoded "/", "?" or "#", which ` +
            'node-postgres misreads: percent-encode it (/ is %2F, ? is %3F, # is %23)',
        );
      }
      if (this.starts) {
        endStart = await this.starts.acquire();
        if (this.gone(m)) return;
      }
      if (this.budget) startConnection = await m.pool.connect();
      const { ready, name, inserted } = await this.engine.readiness(
        startConnection ?? m.pool,
        watch !== null,
      );
      if (!ready) {
        throw new SchemaNotReadyError(
          `schema ${this.config.schema} has no up-to-date Stepping engine in this database: run \`stepping migrate\` (or stepping.migrate()) first`,
        );
      }
      if (this.gone(m)) return;
      if (watch) await this.watch(m, watch, name, inserted);
      if (this.gone(m)) return;
      const worker = this.databaseWorker(m);
      // What the first reading said, before the worker existed: learnt later, it would read
      // as the watch coming back and cost a claim.
      worker.setWatched(m.watched);
      m.worker = worker;
      this.dispatcher.add(worker);
      const connection = startConnection;
      startConnection = null;
      await worker.start(connection);
      // A call of its start did not answer in time (its calls have failed at once since).
      if (worker.misbehaviour) throw worker.misbehaviour;
      m.state = 'up';
      m.retryDelayMs = 0;
      m.downSince = 0;
      m.lastError = null;
      this.emit('database:up', { database: m.id, listening: worker.hasListener });
    } catch (error) {
      // Before winding down, which may wait for units in flight: other databases may start.
      endStart?.();
      startConnection?.release(error as Error);
      startConnection = null;
      await this.windDown(m);
      if (throwOnFailure) throw error;
      this.retryLater(m, error as Error);
    } finally {
      // A start that ended early (the database removed, the worker stopping).
      startConnection?.release();
      endStart?.();
    }
  }

  /** Stops a database's worker and its activity watch, and gives back its listener permit. */
  private async windDown(m: ManagedDatabase): Promise<void> {
    m.unwatch?.();
    m.unwatch = null;
    m.watcher = null;
    m.watched = false;
    if (m.worker) {
      this.dispatcher.remove(m.worker);
      await m.worker.stop().catch(() => {});
      m.worker = null;
    }
    if (m.hasListenerPermit) {
      m.hasListenerPermit = false;
      this.budget?.release(true);
      this.handOnListener();
    }
  }

  /** Reports a database down and serves it again after a backoff. */
  private retryLater(m: ManagedDatabase, error: Error): void {
    if (this.gone(m)) return;
    m.state = 'down';
    m.lastError = error.message;
    const now = Date.now();
    // Every second for the first minute (a restart or a short outage is over quickly and
    // should not leave the database unserved for long), then doubling up to a minute.
    m.downSince ||= now;
    m.retryDelayMs =
      now - m.downSince < 60_000 ? 1000 : Math.min(Math.max(m.retryDelayMs * 2, 1000), MAX_DOWN_RETRY_MS);
    if (error instanceof EngineCallTimeoutError || error instanceof ResponseTooLargeError) {
      // Not an outage that ends on its own soon: a database that holds calls open holds a
      // connection for callTimeoutMs at every try, so its tries double from the first.
      m.timeouts = now - m.lastTimeoutAt < UNRESPONSIVE_MEMORY_MS ? m.timeouts + 1 : 1;
      m.lastTimeoutAt = now;
      m.retryDelayMs = Math.max(m.retryDelayMs, Math.min(1000 * 2 ** (m.timeouts - 1), MAX_DOWN_RETRY_MS));
    }
    this.emit('database:down', { database: m.id, error, retryInMs: m.retryDelayMs });
    // Not unref'd: a worker whose databases are all down must stay alive to retry them.
    m.retryTimer = setTimeout(() => void this.bringUp(m, false), m.retryDelayMs);
  }

  /**
   * Many databases: an engine call of `worker` did not answer within callTimeoutMs (or
   * answered too much to hold). A database that is up is set aside at once: its worker
   * leaves the dispatcher (no more slots, no more claims) and winds down (its calls now
   * fail at once), and the database is served again after a backoff. One still starting
   * fails its start instead (bringUp).
   */
  private misbehaved(m: ManagedDatabase, worker: DatabaseWorker, error: Misbehaviour): void {
    if (m.worker !== worker || m.state !== 'up' || this.gone(m)) return;
    m.state = 'down';
    void this.windDown(m).then(() => this.retryLater(m, error));
  }

  /**
   * Many databases: how many may start at once. Half of startConcurrency (rounded up) while
   * a served database has a backlog: a start is mostly the server's work (a new backend,
   * its caches, the claim compiled), and on a server with few cores starts at the full
   * rate took most of it from the busy tenant (at 300 tenants on 2 cores it kept 28% of
   * its rate alone, 51% with half the starts, and the quiet tenants were done as soon).
   */
  private startLimit(): number {
    // Looked up at most every START_LIMIT_REFRESH_MS: a start asks several times, and
    // the look walks every served database.
    const now = Date.now();
    if (now - this.startLimitAt < START_LIMIT_REFRESH_MS) return this.startLimitValue;
    const full = this.config.startConcurrency;
    let backlog = false;
    for (const m of this.databases.values()) {
      if (m.worker?.backlogged) {
        backlog = true;
        break;
      }
    }
    this.startLimitAt = now;
    this.startLimitValue = backlog ? Math.ceil(full / 2) : full;
    return this.startLimitValue;
  }

  /** The DatabaseWorker of a served database (with a LISTEN connection when it holds a permit). */
  private databaseWorker(m: ManagedDatabase): DatabaseWorker {
    const worker: DatabaseWorker = new DatabaseWorker(
      this.config,
      m.pool,
      m.id,
      this.slots,
      this.emitForDatabases,
      (now) => this.dispatcher.kick(now),
      m.hasListenerPermit ? m.listenConfig : null,
      this.budget
        ? {
            safetyPollMs: () =>
              Math.max(this.config.idlePollMaxMs, this.databases.size * SAFETY_POLL_PER_DATABASE_MS),
            claimAhead: CLAIM_AHEAD,
            gridOffsetMs: () => m.gridPhase * this.databases.size * PRESENCE_PER_DATABASE_MS,
            spread: (periodMs) =>
              Math.min(
                MAX_WORKER_HEARTBEAT_MS,
                Math.max(periodMs, this.databases.size * PRESENCE_PER_DATABASE_MS),
              ),
            ownInsert: (delta) => {
              if (m.watcher) m.watcher.ownInserts = Math.max(0, m.watcher.ownInserts + delta);
            },
            callTimeoutMs: this.config.callTimeoutMs,
            misbehaved: (error) => this.misbehaved(m, worker, error),
          }
        : null,
    );
    return worker;
  }

  /**
   * A listener permit came free (its database left or went down): hand it to an activity
   * watch without one (its databases poll meanwhile), else to a database that is up without
   * one and holds no work, by serving it again with a listener (its DatabaseWorker is idle,
   * so stopping it loses nothing). One at a time.
   */
  private handOnListener(): void {
    if (!this.budget || this.state !== 'running' || this.handingOn) return;
    for (const watch of this.watches.values()) if (watch.takeFreePermit()) return;
    const m = [...this.databases.values()].find(
      (d) =>
        d.state === 'up' &&
        !d.hasListenerPermit &&
        d.worker !== null &&
        d.worker.running === 0 &&
        !d.worker.busy,
    );
    if (!m || !this.budget.tryAcquireListener()) return;
    m.hasListenerPermit = true;
    this.handingOn = true;
    void this.relisten(m)
      .catch((error: Error) => this.emit('error', { database: m.id, error, during: 'listen' }))
      .finally(() => {
        this.handingOn = false;
        this.handOnListener();
      });
  }

  private async relisten(m: ManagedDatabase): Promise<void> {
    const old = m.worker!;
    this.dispatcher.remove(old);
    await old.stop();
    // Removed meanwhile: remove() gave the permit back (and stopped this worker too).
    if (this.gone(m) || m.worker !== old) return;
    const worker = this.databaseWorker(m);
    m.worker = worker;
    this.dispatcher.add(worker);
    await worker.start();
    this.emit('database:up', { database: m.id, listening: worker.hasListener });
  }

  /** The activity watch of the database's server (made on first use); null: cannot tell the server. */
  private watchFor(m: ManagedDatabase): ActivityWatch | null {
    const key = serverKey(m.pool.options as pg.ClientConfig);
    if (key === null) return null;
    let watch = this.watches.get(key);
    if (!watch) {
      watch = new ActivityWatch(this.budget, (error) =>
        this.emit('error', { database: `(activity watch ${key})`, error, during: 'watch' }),
      );
      this.watches.set(key, watch);
    }
    return watch;
  }

  /**
   * Puts the database under its server's activity watch (many-databases mode) with a
   * baseline of its insert count, so an insert after that wakes it and one before is found
   * by its first claim: `inserted`, read by its start, when the watch is live; else the
   * first reading after it joined, waited for here.
   */
  private async watch(
    m: ManagedDatabase,
    watch: ActivityWatch,
    datname: string,
    inserted: string | null,
  ): Promise<void> {
    if (m.unwatch) return;
    const watcher: ActivityWatcher = {
      datname,
      config: m.pool.options as pg.ClientConfig,
      wake: () => m.worker?.wake(),
      watched: (covered) => {
        m.watched = covered;
        m.worker?.setWatched(covered);
      },
      ownInserts: 0,
    };
    m.watcher = watcher;
    m.unwatch = watch.add(watcher, inserted);
    await watch.firstLook(datname);
  }

  /** Stops serving a database: in-flight units finish (or are released), connections close. */
  private async remove(m: ManagedDatabase): Promise<void> {
    await this.detach(m);
    await this.endPool(m);
  }

  /** remove() up to closing the pool: the database is no longer served, its units are done. */
  private async detach(m: ManagedDatabase): Promise<void> {
    m.state = 'removed';
    clearTimeout(m.retryTimer);
    m.unwatch?.();
    m.unwatch = null;
    m.watcher = null;
    m.watched = false;
    this.databases.delete(m.id);
    if (m.worker) {
      await m.worker.stop();
      this.dispatcher.remove(m.worker);
    }
    if (m.hasListenerPermit) {
      m.hasListenerPermit = false;
      this.budget?.release(true);
      this.handOnListener();
    }
  }

  /** remove() from closing the pool on. */
  private async endPool(m: ManagedDatabase): Promise<void> {
    if (m.ownsPool) await m.pool.end().catch(() => {});
    if (this.budget) this.emit('database:removed', { database: m.id });
  }

  /**
   * Graceful stop: no new claims; in-flight steps finish within gracefulStopMs, the rest
   * are aborted and released for other workers; then connections close. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.state = 'stopping';
      clearInterval(this.refreshTimer);
      await this.reader?.close();
      // Units finish and report first, with permits as usual (a removed database's idle
      // connections may be closed for another's report).
      const served = [...this.databases.values()];
      await Promise.all(served.map((m) => this.detach(m)));
      await Promise.all([...this.watches.values()].map((w) => w.close()));
      this.watches.clear();
      // Then a connection still waiting for a permit (a database that was starting) fails
      // instead of holding its pool's end() until a permit that may never come.
      this.budget?.close();
      await Promise.all(served.map((m) => this.endPool(m)));
      this.state = 'stopped';
    })();
    return this.stopped;
  }
}

/** Creates a worker; call start() to run it. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}
