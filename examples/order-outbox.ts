/**
 * Transactional outbox: the order row and its "send e-mail" and "send SMS" jobs commit in
 * one transaction — all or nothing. A checkout that rolls back leaves no order and sends
 * nothing. E-mails and SMS run in their own queues with their own concurrency limits.
 *
 *   npx tsx examples/order-outbox.ts
 */
import pg from 'pg';

import { createStepping, createWorker, defineStep } from '../src/index.js';
import { isMain, runExample } from './run-example.js';

/** Places one order that commits and one that rolls back; returns what was sent. */
export async function main(connectionString: string) {
  const stepping = createStepping({ connectionString });
  await stepping.migrate();
  const db = new pg.Pool({ connectionString });
  db.on('error', () => {}); // idle clients dropped at shutdown
  await db.query(`CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, email text, phone text)`);
  const sent: string[] = [];

  const sendEmail = defineStep('email.send', async (a: { to: string; orderId: string }, ctx) => {
    sent.push(`email to ${a.to} for ${a.orderId} (key ${ctx.idempotencyKey})`);
  });
  const sendSms = defineStep('sms.send', async (a: { to: string; orderId: string }) => {
    sent.push(`sms to ${a.to} for ${a.orderId}`);
  });

  async function checkout(orderId: string, email: string, phone: string, fail: boolean): Promise<string[]> {
    const tx = await db.connect();
    try {
      await tx.query('BEGIN');
      await tx.query('INSERT INTO orders VALUES ($1, $2, $3)', [orderId, email, phone]);
      const jobs = [
        await stepping.enqueue(tx, [sendEmail({ to: email, orderId })], {
          queue: 'emails',
          key: `email:${orderId}`,
        }),
        await stepping.enqueue(tx, [sendSms({ to: phone, orderId })], {
          queue: 'sms',
          key: `sms:${orderId}`,
        }),
      ];
      if (fail) throw new Error('payment declined');
      await tx.query('COMMIT');
      return jobs;
    } catch (error) {
      await tx.query('ROLLBACK');
      throw error;
    } finally {
      tx.release();
    }
  }

  const worker = createWorker({
    connectionString,
    steps: [sendEmail, sendSms],
    concurrency: 10,
    queues: { emails: 5, sms: 2 },
  });
  await worker.start();
  try {
    const jobs = await checkout('o-1', 'ann@example.com', '+100', false);
    const declined = await checkout('o-2', 'bob@example.com', '+200', true).catch((e: Error) => e.message);
    const states = await Promise.all(jobs.map((id) => stepping.waitForJob(id, { timeoutMs: 20_000 })));
    const orders = await db.query('SELECT id FROM orders ORDER BY id');
    const jobCount = await db.query('SELECT count(*)::int AS n FROM stepping.job_overview');
    return {
      declined,
      orders: orders.rows.map((r) => r.id as string),
      jobs: jobCount.rows[0].n as number,
      statuses: states.map((s) => s.status),
      sent: sent.sort(),
    };
  } finally {
    await worker.stop();
    await db.end();
    await stepping.close();
  }
}

if (isMain(import.meta.url)) await runExample(main);
