/**
 * pg-boss as the benchmark runs it: one queue `bench` and a no-op handler; a job with
 * `left` > 0 adds the next job of its chain (one insert() per fetched batch), the pg-boss
 * equivalent of a multi-step job. Its own pool from the connection string, as a user's.
 */
import { type Job, PgBoss } from 'pg-boss';

import type { WorkerStarter } from './adapter.js';

/** The queue every pg-boss scenario uses (created in the template database). */
export const PGBOSS_QUEUE = 'bench';

let boss: PgBoss | null = null;

/**
 * Makes the queue NOTIFY-enabled when the variant asks for it. Runs before any pg-boss
 * instance of the run starts: each reads queue settings into a cache refreshed once a
 * minute, and a producer whose cache says "no notify" sends no NOTIFY.
 */
export async function configurePgBossQueue(connectionString: string, notify: boolean): Promise<void> {
  if (!notify) return;
  const admin = new PgBoss({ connectionString, supervise: false, schedule: false, migrate: false, max: 1 });
  admin.on('error', () => {});
  await admin.start();
  try {
    await admin.updateQueue(PGBOSS_QUEUE, { notify: true });
  } finally {
    await admin.stop({ graceful: false, close: true });
  }
}

/** Starts a pg-boss instance in prepare() and its workers in start(). */
export const pgbossStarter: WorkerStarter = {
  async prepare(spec) {
    if (spec.variant.library !== 'pgboss') throw new Error('not a pg-boss variant');
    const o = spec.variant.options;
    boss = new PgBoss({
      connectionString: spec.connectionString,
      ...(o.notify ? { useListenNotify: true } : {}),
      ...(o.max !== undefined ? { max: o.max } : {}),
    });
    boss.on('error', (error: Error) => console.error(`pg-boss: ${error.message}`));
    await boss.start();
  },
  async start(spec, onRun) {
    if (spec.variant.library !== 'pgboss' || !boss) throw new Error('pg-boss was not prepared');
    const o = spec.variant.options;
    const b = boss;
    const handler = async (jobs: Job<{ seq?: number; left?: number }>[]) => {
      const next: { data: { left: number } }[] = [];
      for (const job of jobs) {
        const left = job.data?.left ?? 0;
        onRun(job.data?.seq, left === 0);
        if (left > 0) next.push({ data: { left: left - 1 } });
      }
      if (next.length > 0) await b.insert(PGBOSS_QUEUE, next);
    };
    await b.work(
      PGBOSS_QUEUE,
      {
        ...(o.localConcurrency !== undefined ? { localConcurrency: o.localConcurrency } : {}),
        ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
        ...(o.burstWhenBatchFull ? { burstWhenBatchFull: true } : {}),
      },
      handler,
    );
    return {
      stop: async () => {
        await b.stop({ graceful: true, close: true, timeout: 10_000 });
        boss = null;
      },
    };
  },
};
