/**
 * Saga: move money between two banks. Step 1 takes it out of bank 1 and returns bank 1's
 * id for that debit; step 2 pays it into bank 2. When bank 2 refuses (a permanent
 * failure), the compensation of step 1 refunds bank 1, naming the debit it undoes: it gets
 * step 1's result (`compensate: (args, result) => ...`), not only its args. The job ends
 * `compensated`. Each bank call is idempotent by ctx.idempotencyKey.
 *
 *   npx tsx examples/money-transfer.ts
 */
import pg from 'pg';

import { createStepping, createWorker, defineStep, PermanentError } from '../src/index.js';
import { isMain, runExample } from './run-example.js';

interface Transfer {
  transferId: string;
  from: string;
  to: string;
  cents: number;
}

/** Runs two transfers (one accepted, one refused by bank 2) and returns statuses, results and balances. */
export async function main(connectionString: string) {
  const stepping = createStepping({ connectionString });
  await stepping.migrate();
  const db = new pg.Pool({ connectionString });
  db.on('error', () => {}); // idle clients dropped at shutdown
  await db.query(`CREATE TABLE IF NOT EXISTS accounts (bank text, id text, cents bigint, frozen boolean DEFAULT false,
                                                       PRIMARY KEY (bank, id))`);
  // Applied operations, so a retried call never moves money twice; op_id is the bank's id.
  await db.query(`CREATE TABLE IF NOT EXISTS bank_ops (idempotency_key text PRIMARY KEY,
                                                       op_id bigint GENERATED ALWAYS AS IDENTITY)`);
  await db.query(`INSERT INTO accounts VALUES ('bank1', 'alice', 10000, false), ('bank2', 'bob', 0, false),
                                              ('bank2', 'carol', 0, true) ON CONFLICT DO NOTHING`);

  /** Moves `delta` cents once per idempotency key; refuses frozen accounts. Returns the bank's operation id. */
  async function bankCall(bank: string, account: string, delta: number, key: string): Promise<string> {
    const c = await db.connect();
    try {
      await c.query('BEGIN');
      const fresh = await c.query(
        'INSERT INTO bank_ops (idempotency_key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING op_id',
        [key],
      );
      if (fresh.rowCount === 1) {
        const r = await c.query(
          'UPDATE accounts SET cents = cents + $3 WHERE bank = $1 AND id = $2 AND NOT frozen',
          [bank, account, delta],
        );
        if (r.rowCount === 0) {
          await c.query('ROLLBACK');
          throw new PermanentError(`${bank} refuses account ${account}`);
        }
      }
      const op = await c.query('SELECT op_id FROM bank_ops WHERE idempotency_key = $1', [key]);
      await c.query('COMMIT');
      return `${bank}-op-${String(op.rows[0].op_id)}`;
    } catch (error) {
      await c.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      c.release();
    }
  }

  // Returns bank 1's id of the debit: stored as the step's result.
  const transferOut = defineStep(
    'bank1.transfer-out',
    async (t: Transfer, ctx) => ({ debitId: await bankCall('bank1', t.from, -t.cents, ctx.idempotencyKey) }),
    // The refund needs the debit's id: the result. (It is undefined when this step itself
    // failed; then there is nothing to undo.)
    {
      compensate: (t, result) => ({ name: 'bank1.refund', args: { ...t, debitId: result?.debitId ?? null } }),
    },
  );
  const refund = defineStep('bank1.refund', async (t: Transfer & { debitId: string | null }, ctx) => {
    if (t.debitId === null) return;
    const refundId = await bankCall('bank1', t.from, t.cents, ctx.idempotencyKey);
    console.log(`refunded debit ${t.debitId} of transfer ${t.transferId} as ${refundId}`);
  });
  const transferIn = defineStep('bank2.transfer-in', async (t: Transfer, ctx) => ({
    creditId: await bankCall('bank2', t.to, t.cents, ctx.idempotencyKey),
  }));

  const worker = createWorker({ connectionString, steps: [transferOut, refund, transferIn], concurrency: 4 });
  await worker.start();
  try {
    const ok: Transfer = { transferId: 't1', from: 'alice', to: 'bob', cents: 2500 };
    const refused: Transfer = { transferId: 't2', from: 'alice', to: 'carol', cents: 4000 };
    const ids = await Promise.all(
      [ok, refused].map((t) =>
        stepping.enqueue([transferOut(t), transferIn(t)], { key: `transfer:${t.transferId}` }),
      ),
    );
    const [a, b] = await Promise.all(ids.map((id) => stepping.waitForJob(id, { timeoutMs: 20_000 })));
    const balances = await db.query(
      `SELECT bank || ':' || id AS account, cents::int FROM accounts ORDER BY 1`,
    );
    return {
      accepted: a!.status,
      // waitForJob returns every step's result; the output is the last step's.
      acceptedResults: a!.results,
      acceptedOutput: a!.output,
      refused: b!.status,
      refusedDebit: b!.results[0],
      balances: Object.fromEntries(balances.rows.map((r) => [r.account as string, r.cents as number])),
    };
  } finally {
    await worker.stop();
    await db.end();
    await stepping.close();
  }
}

if (isMain(import.meta.url)) await runExample(main);
