/**
 * Producers: keep a backlog of unfinished jobs in each torture database, enqueuing
 * through the public API inside their own transactions, together with the job's design
 * row (torture.jobs) — so the design exists exactly when the job does. A few transactions
 * roll back on purpose; their job ids must never appear. Database errors (outages,
 * restarts) are counted and retried.
 */
import pg from 'pg';

import { createStepping, type Stepping } from '../../src/index.js';
import { designJob, stepCalls } from './jobs.js';
import type { JobSpec } from './protocol.js';
import { Random } from './random.js';

/** Counters of one database's producers. */
export interface ProducerStats {
  committedJobs: number;
  committedTransactions: number;
  rolledBackJobs: number;
  /** COMMIT failed: the outcome is unknown (torture.jobs decides). */
  unknownOutcome: number;
  errors: number;
}

/** One torture database as the producers see it. */
export class ProducerDatabase {
  readonly pool: pg.Pool;
  readonly stepping: Stepping;
  readonly stats: ProducerStats = {
    committedJobs: 0,
    committedTransactions: 0,
    rolledBackJobs: 0,
    unknownOutcome: 0,
    errors: 0,
  };
  /** Ids returned by enqueues that were rolled back on purpose. */
  readonly rolledBackIds: string[] = [];
  /** Unfinished jobs, as last read from stepping.queue_stats. */
  backlog = 0;
  private monitor: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    url: string,
  ) {
    const u = new URL(url);
    u.searchParams.set('application_name', 'torture-producer');
    this.pool = new pg.Pool({ connectionString: u.toString(), max: 6, connectionTimeoutMillis: 5000 });
    this.pool.on('error', () => {});
    this.stepping = createStepping({ pool: this.pool });
  }

  /** Reads the backlog every 250 ms (from the documented view). */
  startMonitor(): void {
    const read = async () => {
      try {
        const { rows } = await this.pool.query<{ n: string }>(
          `SELECT coalesce(sum(jobs), 0) AS n FROM stepping.queue_stats
           WHERE status IN ('pending', 'running', 'compensating')`,
        );
        this.backlog = Number(rows[0]!.n);
      } catch {
        // Server down: keep the last figure; the producers' own enqueues fail meanwhile.
      }
      this.monitor = setTimeout(() => void read(), 250);
    };
    void read();
  }

  async close(): Promise<void> {
    clearTimeout(this.monitor);
    await this.pool.end().catch(() => {});
  }
}

/** Lets the fault runner hold the producers (an observed outage: no NOTIFY from new jobs wakes the workers). */
export class ProducerGate {
  private closedUntil = 0;

  /** Stops new enqueues until `release` (or for good, until then). */
  close(): void {
    this.closedUntil = Infinity;
  }

  /** Enqueues resume at `at` (ms since the epoch). */
  openAt(at: number): void {
    this.closedUntil = at;
  }

  get closed(): boolean {
    return Date.now() < this.closedUntil;
  }
}

/** Producer settings. */
export interface ProducerOptions {
  /** Keep at least this many unfinished jobs in the database. */
  backlogTarget: number;
  /** The workers' lease (long steps are designed just over it). */
  leaseMs: number;
  seed: number;
}

const ignore = () => {};
const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One producer loop over one database; `running()` false ends it. */
export async function produce(
  db: ProducerDatabase,
  index: number,
  options: ProducerOptions,
  running: () => boolean,
  gate: ProducerGate,
): Promise<void> {
  const rng = new Random(options.seed, `producer:${db.name}:${index}`);
  let seq = 0;
  while (running()) {
    if (gate.closed || db.backlog >= options.backlogTarget) {
      await pause(100);
      continue;
    }
    const batch = rng.chance(0.3) ? rng.int(5, 20) : 1;
    const specs: { tag: string; spec: JobSpec; key: string | undefined }[] = [];
    for (let i = 0; i < batch; i++) {
      const tag = `${db.name}:p${index}-${++seq}`;
      specs.push({ tag, spec: designJob(rng, tag, options.leaseMs), key: rng.chance(0.2) ? tag : undefined });
    }
    const rollback = rng.chance(0.04);
    let client: pg.PoolClient | undefined;
    let committing = false;
    try {
      client = await db.pool.connect();
      // A server restart between two statements must not crash the driver.
      client.on('error', ignore);
      await client.query('BEGIN');
      const jobs = specs.map((s) => ({
        steps: stepCalls(s.spec),
        options: s.key !== undefined ? { key: s.key } : {},
      }));
      const ids =
        batch === 1
          ? [await db.stepping.enqueue(client, jobs[0]!.steps, jobs[0]!.options)]
          : (await db.stepping.enqueueMany(client, jobs)).map((r) => r.jobId);
      await client.query(
        `INSERT INTO torture.jobs (job_id, kind, expected, spec)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[])`,
        [
          ids,
          specs.map((s) => s.spec.kind),
          specs.map((s) => s.spec.expected),
          specs.map((s) => JSON.stringify(s.spec)),
        ],
      );
      if (rollback) {
        await client.query('ROLLBACK');
        db.stats.rolledBackJobs += ids.length;
        db.rolledBackIds.push(...ids);
      } else {
        committing = true;
        await client.query('COMMIT');
        db.stats.committedJobs += ids.length;
        db.stats.committedTransactions++;
        db.backlog += ids.length;
      }
      client.off('error', ignore);
      client.release();
    } catch (error) {
      if (committing) db.stats.unknownOutcome += batch;
      db.stats.errors++;
      if (client) {
        await client.query('ROLLBACK').catch(() => {});
        client.off('error', ignore);
        client.release(error as Error);
      }
      await pause(200);
    }
  }
}
