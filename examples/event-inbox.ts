/**
 * Inbox: events arrive (some delivered twice). Each is enqueued with its event id as the
 * dedupe key, and a transactional step applies it to a projection in the same
 * transaction that marks the step done — so each event changes the projection exactly
 * once, even if the worker dies at any point.
 *
 *   npx tsx examples/event-inbox.ts
 */
import pg from 'pg';

import { createStepping, createWorker, defineStep } from '../src/index.js';
import { isMain, runExample } from './run-example.js';

interface Deposit {
  eventId: string;
  account: string;
  cents: number;
}

/** Receives six deliveries of four events and returns the projection. */
export async function main(connectionString: string) {
  const stepping = createStepping({ connectionString });
  await stepping.migrate();
  const db = new pg.Pool({ connectionString });
  db.on('error', () => {}); // idle clients dropped at shutdown
  await db.query(`CREATE TABLE IF NOT EXISTS balances (account text PRIMARY KEY, cents bigint NOT NULL)`);

  const applyDeposit = defineStep(
    'inbox.apply-deposit',
    async (e: Deposit, ctx) => {
      // ctx.tx is the transaction that also completes this step: applied exactly once.
      await ctx.tx!.query(
        `INSERT INTO balances VALUES ($1, $2) ON CONFLICT (account) DO UPDATE SET cents = balances.cents + EXCLUDED.cents`,
        [e.account, e.cents],
      );
    },
    { transactional: true },
  );

  const deliveries: Deposit[] = [
    { eventId: 'ev-1', account: 'acme', cents: 100 },
    { eventId: 'ev-2', account: 'acme', cents: 250 },
    { eventId: 'ev-1', account: 'acme', cents: 100 }, // redelivered
    { eventId: 'ev-3', account: 'zeta', cents: 75 },
    { eventId: 'ev-4', account: 'zeta', cents: 25 },
    { eventId: 'ev-3', account: 'zeta', cents: 75 }, // redelivered
  ];
  const ids = new Set<string>();
  for (const d of deliveries)
    ids.add(await stepping.enqueue([applyDeposit(d)], { key: `event:${d.eventId}` }));

  const worker = createWorker({ connectionString, steps: [applyDeposit], concurrency: 4 });
  await worker.start();
  try {
    const states = await Promise.all([...ids].map((id) => stepping.waitForJob(id, { timeoutMs: 20_000 })));
    const balances = await db.query('SELECT account, cents::int FROM balances ORDER BY account');
    return {
      deliveries: deliveries.length,
      jobs: ids.size,
      statuses: states.map((s) => s.status),
      balances: Object.fromEntries(balances.rows.map((r) => [r.account as string, r.cents as number])),
    };
  } finally {
    await worker.stop();
    await db.end();
    await stepping.close();
  }
}

if (isMain(import.meta.url)) await runExample(main);
