/**
 * The engine's calls about workers and housekeeping: the worker registry
 * (sql/workers.sql), leader-only maintenance (sql/maintenance.sql), bulk retry, and the
 * live_workers / unrunnable_steps views. Values travel as parameters; the schema is quoted.
 */
import { quoteIdent } from '../config.js';
import { translateDatabaseError } from '../errors.js';
import type { Queryable } from './queryable.js';

/** What a worker registers about itself in one database. */
export interface WorkerRegistration {
  id: string;
  host: string;
  pid: number;
  /** null: every queue. */
  queues: string[] | null;
  names: string[];
  concurrency: number;
  /** Its registry heartbeat period: it counts as dead after three periods without a beat. */
  heartbeatMs: number;
}

/** What one maintenance_run call did. */
export interface MaintenanceOutcome {
  /** False when another session held the maintenance lock: nothing was done. */
  leader: boolean;
  /** Unclaimed jobs whose deadline had passed, now ended (failed, compensating, or cancelled). */
  expired: number;
  /** Finished jobs deleted after their retention. */
  pruned: number;
  /** Dead worker rows deleted. */
  workersRemoved: number;
}

/** A row of the live_workers view. */
export interface LiveWorker {
  workerId: string;
  host: string;
  pid: number;
  queues: string[] | null;
  stepNames: string[];
  concurrency: number;
  startedAt: Date;
  heartbeatAt: Date;
  heartbeatAgeMs: number;
}

/** A live row of the worker_overview view. */
export interface WorkerStatus extends LiveWorker {
  /** Units it holds now. */
  running: number;
}

/** Filters of a job list (job_overview); null: not filtered. */
export interface JobListFilter {
  status: string | null;
  queue: string | null;
  /** Jobs with a step of this name. */
  step: string | null;
  /** Jobs with exactly this key. */
  key: string | null;
  /** Created at least this long ago. */
  olderThanMs: number | null;
  /** Created at most this long ago. */
  newerThanMs: number | null;
  /** Jobs with a smaller id (the next page, newest first). */
  beforeId: string | null;
}

/** A row of the unrunnable_steps view. */
export interface UnrunnableStep {
  queue: string;
  stepName: string;
  jobs: number;
  oldestWaitMs: number;
}

type Row = Record<string, unknown>;

/** Seconds (an interval extracted as epoch) to whole milliseconds. */
function ms(value: unknown): number {
  return Math.round(Number(value ?? 0) * 1000);
}

function liveWorker(r: Row): LiveWorker {
  return {
    workerId: String(r.worker_id),
    host: String(r.host),
    pid: Number(r.pid),
    queues: (r.queues as string[] | null) ?? null,
    stepNames: r.step_names as string[],
    concurrency: Number(r.concurrency),
    startedAt: r.started_at as Date,
    heartbeatAt: r.heartbeat_at as Date,
    heartbeatAgeMs: ms(r.heartbeat_age),
  };
}

/** Calls of the worker registry, maintenance, bulk retry and their views. */
export class OpsCalls {
  private readonly q: string;

  constructor(schema: string) {
    this.q = quoteIdent(schema);
  }

  private async run(db: Queryable, text: string, values: unknown[]): Promise<Row[]> {
    try {
      return (await db.query(text, values)).rows as Row[];
    } catch (error) {
      throw translateDatabaseError(error);
    }
  }

  /** Registers (or refreshes) a worker. */
  async register(db: Queryable, r: WorkerRegistration): Promise<void> {
    await this.run(db, `SELECT ${this.q}.worker_register($1, $2, $3, $4, $5, $6, $7)`, [
      r.id,
      r.host,
      r.pid,
      r.queues,
      r.names,
      r.concurrency,
      r.heartbeatMs,
    ]);
  }

  /** Marks a worker alive; false when it is not registered (it aged out). */
  async heartbeat(db: Queryable, id: string): Promise<boolean> {
    const rows = await this.run(db, `SELECT ${this.q}.worker_heartbeat($1) AS ok`, [id]);
    return rows[0]?.ok === true;
  }

  /** Removes a worker's registration. */
  async deregister(db: Queryable, id: string): Promise<void> {
    await this.run(db, `SELECT ${this.q}.worker_deregister($1)`, [id]);
  }

  /**
   * One round of leader-only maintenance. retentionMs null: no pruning; batch null: the
   * engine's default.
   */
  async maintenance(
    db: Queryable,
    retentionMs: number | null,
    batch: number | null = null,
  ): Promise<MaintenanceOutcome> {
    const rows = await this.run(
      db,
      `SELECT leader, expired, pruned, workers_removed
       FROM ${this.q}.maintenance_run($1::bigint * interval '1 millisecond', $2, $3)`,
      [retentionMs ?? 0, retentionMs !== null, batch],
    );
    const r = rows[0] ?? {};
    return {
      leader: r.leader === true,
      expired: Number(r.expired ?? 0),
      pruned: Number(r.pruned ?? 0),
      workersRemoved: Number(r.workers_removed ?? 0),
    };
  }

  /**
   * A registry heartbeat and one maintenance round in one statement (an idle worker on many
   * databases makes both at the same instants: one round trip and one transaction instead of
   * two). Maintenance runs first, so a row of this worker it deleted as dead reads as not
   * registered (alive false), as two separate calls in that order would.
   */
  async heartbeatAndMaintenance(
    db: Queryable,
    id: string,
    retentionMs: number | null,
  ): Promise<{ alive: boolean; outcome: MaintenanceOutcome }> {
    const rows = await this.run(
      db,
      `SELECT ${this.q}.worker_heartbeat($3) AS alive, leader, expired, pruned, workers_removed
       FROM ${this.q}.maintenance_run($1::bigint * interval '1 millisecond', $2, NULL)`,
      [retentionMs ?? 0, retentionMs !== null, id],
    );
    const r = rows[0] ?? {};
    return {
      alive: r.alive === true,
      outcome: {
        leader: r.leader === true,
        expired: Number(r.expired ?? 0),
        pruned: Number(r.pruned ?? 0),
        workersRemoved: Number(r.workers_removed ?? 0),
      },
    };
  }

  /**
   * Retries up to `limit` failed jobs (of a queue and/or failed step name) with ids after
   * `afterId`; lastId null: none left.
   */
  async retryMany(
    db: Queryable,
    filter: { queue: string | null; stepName: string | null },
    limit: number,
    afterId: string,
  ): Promise<{ retried: number; lastId: string | null }> {
    const rows = await this.run(
      db,
      `SELECT retried, last_id::text AS last_id FROM ${this.q}.job_retry_many($1, $2, $3, $4::bigint)`,
      [filter.queue, filter.stepName, limit, afterId],
    );
    const r = rows[0] ?? {};
    return { retried: Number(r.retried ?? 0), lastId: (r.last_id as string | null) ?? null };
  }

  /** True when the installation has the worker views (versions before them do not). */
  async hasWorkerViews(db: Queryable): Promise<boolean> {
    const rows = await this.run(
      db,
      `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS ok`,
      [`${this.q}.worker_overview`, `${this.q}.unrunnable_steps`],
    );
    return rows[0]?.ok === true;
  }

  /** Live workers from worker_overview (with the units each holds), oldest first. */
  async workerStatus(db: Queryable): Promise<WorkerStatus[]> {
    const rows = await this.run(
      db,
      `SELECT worker_id, host, pid, queues, step_names, concurrency, started_at, heartbeat_at, running,
              extract(epoch FROM ${this.q}.engine_now() - heartbeat_at) AS heartbeat_age
       FROM ${this.q}.worker_overview WHERE alive ORDER BY started_at, worker_id`,
      [],
    );
    return rows.map((r) => ({ ...liveWorker(r), running: Number(r.running) }));
  }

  /**
   * job_overview rows matching `filter`, newest first, at most `limit`: keyset paging
   * by job id walks the primary key backwards, so a deep page costs what the first does.
   */
  async listJobs(db: Queryable, filter: JobListFilter, limit: number): Promise<Row[]> {
    return await this.run(
      db,
      // The clock in scalar sub-selects (read once): a VOLATILE call joined in here made
      // the planner read and sort every job instead of walking the primary key.
      `SELECT j.* FROM ${this.q}.job_overview j
       WHERE ($1::text IS NULL OR j.status = $1)
         AND ($2::text IS NULL OR j.queue = $2)
         AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM ${this.q}.step_overview s
                                          WHERE s.job_id = j.job_id AND s.name = $3))
         AND ($4::text IS NULL OR j.key = $4)
         AND ($5::bigint IS NULL
              OR j.created_at <= (SELECT ${this.q}.engine_now_stable()) - $5 * interval '1 millisecond')
         AND ($6::bigint IS NULL
              OR j.created_at >= (SELECT ${this.q}.engine_now_stable()) - $6 * interval '1 millisecond')
         AND ($7::bigint IS NULL OR j.job_id < $7)
       ORDER BY j.job_id DESC
       LIMIT $8`,
      [
        filter.status,
        filter.queue,
        filter.step,
        filter.key,
        filter.olderThanMs,
        filter.newerThanMs,
        filter.beforeId,
        limit,
      ],
    );
  }

  /** Failed jobs of a queue and/or failed step name (null: any), as job_retry_many selects them. */
  async countFailed(
    db: Queryable,
    filter: { queue: string | null; stepName: string | null },
  ): Promise<number> {
    const rows = await this.run(
      db,
      `SELECT count(*)::float8 AS n FROM ${this.q}.job_overview
       WHERE status = 'failed' AND ($1::text IS NULL OR queue = $1)
         AND ($2::text IS NULL OR current_step_name = $2)`,
      [filter.queue, filter.stepName],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** The live_workers view, oldest first. */
  async liveWorkers(db: Queryable): Promise<LiveWorker[]> {
    const rows = await this.run(
      db,
      `SELECT worker_id, host, pid, queues, step_names, concurrency, started_at, heartbeat_at,
              extract(epoch FROM heartbeat_age) AS heartbeat_age
       FROM ${this.q}.live_workers ORDER BY started_at, worker_id`,
      [],
    );
    return rows.map(liveWorker);
  }

  /** The unrunnable_steps view, longest waiting first. */
  async unrunnableSteps(db: Queryable): Promise<UnrunnableStep[]> {
    const rows = await this.run(
      db,
      `SELECT queue, step_name, jobs, extract(epoch FROM oldest_age) AS oldest_age
       FROM ${this.q}.unrunnable_steps ORDER BY oldest_age DESC, queue, step_name`,
      [],
    );
    return rows.map((r) => ({
      queue: String(r.queue),
      stepName: String(r.step_name),
      jobs: Number(r.jobs),
      oldestWaitMs: ms(r.oldest_age),
    }));
  }
}
