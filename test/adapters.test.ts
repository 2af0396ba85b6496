/**
 * enqueue(tx, ...) through the transactions of the clients applications use, each with
 * its real package on real PostgreSQL: commit ⇒ the job exists and a worker runs it;
 * rollback ⇒ neither the job nor the business row exists; a rejected enqueue leaves the
 * transaction usable.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import pg from 'pg';

import { ACCEPTED_CLIENTS, clientKind, notTransactionLikeMessage } from '../src/db/adapters.js';
import { isTransactionLike, toQueryable } from '../src/db/queryable.js';
import {
  createStepping,
  defineStep,
  DuplicateJobError,
  EnqueueValidationError,
  SchemaNotReadyError,
} from '../src/index.js';
import { CLIENT_NAMES, type ClientCase, generatePrisma, openClient, ORDERS_DDL } from './support/clients.js';
import { setup } from './support/harness.js';
import type { GeneratedPrisma } from './support/prisma.js';

const h = await setup(import.meta.url);
await h.pool.query(ORDERS_DDL);

const seen = new Map<string, string>();
const record = defineStep('adapters.record', async (args: { orderId: string }, ctx) => {
  seen.set(ctx.jobId, args.orderId);
});
// No worker handles this name: a job holding a key stays unfinished (pending) for the duplicate test.
const parked = defineStep('adapters.parked', async () => {});
await h.worker({ steps: [record], concurrency: 4 });

let prisma: GeneratedPrisma;
before(async () => {
  prisma = await generatePrisma();
});
after(async () => {
  await prisma?.remove();
});

async function jobsInQueue(queue: string): Promise<number> {
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM stepping.jobs WHERE queue = $1', [
    queue,
  ]);
  return rows[0].n;
}

async function orderExists(id: string): Promise<boolean> {
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM adapter_orders WHERE id = $1', [id]);
  return rows[0].n === 1;
}

const slug = (name: string) => name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();

for (const name of CLIENT_NAMES) {
  describe(`enqueue through ${name}`, () => {
    let client: ClientCase;
    const q = slug(name);
    before(async () => {
      client = await openClient(name, h.url, { prisma });
    });
    after(async () => {
      await client?.close();
    });

    test('is detected as its own kind of client', async () => {
      await client.transaction(async (tx) => {
        assert.equal(clientKind(tx), client.kind);
        assert.equal(isTransactionLike(tx), true);
      });
    });

    test('runs a statement as pg would: same rows, placeholders only outside literals', async () => {
      const rows = await client.transaction(async (tx) => {
        const { rows } = await toQueryable(tx).query(
          `SELECT $1::int + $1::int AS two, '{"a": 1}'::jsonb ? 'a' AS has, '$2 ?' AS lit,
                  $2::jsonb AS j, $3::int AS n, 9007199254740993::int8 AS big, $4::text[] AS arr`,
          [5, JSON.stringify({ b: [1, 'x'] }), null, ['p', 'q']],
        );
        return rows;
      });
      assert.deepEqual(rows, [
        {
          two: 10,
          has: true,
          lit: '$2 ?',
          j: { b: [1, 'x'] },
          n: null,
          big: '9007199254740993',
          arr: ['p', 'q'],
        },
      ]);
    });

    test('commit: the job and the business row exist together, and a worker runs the job', async () => {
      const orderId = `${q}-committed`;
      const [jobId, many] = await client.transaction(async (tx, insertOrder) => {
        await insertOrder(orderId);
        const id = await h.stepping.enqueue(tx, [record({ orderId })], { queue: `${q}-commit` });
        const bulk = await h.stepping.enqueueMany(tx, [
          { steps: [record({ orderId: `${orderId}-a` })], options: { queue: `${q}-commit` } },
          { steps: [record({ orderId: `${orderId}-b` })], options: { queue: `${q}-commit` } },
        ]);
        // Inside the transaction: invisible to everyone else until it commits.
        assert.equal(await jobsInQueue(`${q}-commit`), 0);
        return [id, bulk] as const;
      });
      assert.equal(await orderExists(orderId), true);
      assert.match(jobId, /^\d+$/);
      assert.deepEqual(
        many.map((m) => m.created),
        [true, true],
      );
      for (const id of [jobId, ...many.map((m) => m.jobId)]) {
        const final = await h.stepping.waitForJob(id, { timeoutMs: 60_000 });
        assert.equal(final.status, 'succeeded', `job ${id}`);
      }
      assert.equal(seen.get(jobId), orderId);
      assert.equal(seen.get(many[1]!.jobId), `${orderId}-b`);
    });

    test('rollback: neither the job nor the business row exists', async () => {
      const orderId = `${q}-rolled-back`;
      await assert.rejects(
        client.transaction(async (tx, insertOrder) => {
          await insertOrder(orderId);
          await h.stepping.enqueue(tx, [record({ orderId })], { queue: `${q}-rollback` });
          throw new Error('business rule failed');
        }),
        /business rule failed/,
      );
      assert.equal(await jobsInQueue(`${q}-rollback`), 0);
      assert.equal(await orderExists(orderId), false);
    });

    test('a rejected enqueue (invalid input, refused duplicate) leaves the transaction usable', async () => {
      const key = `${q}-key`;
      const holder = await h.stepping.enqueue([parked({})], { queue: `${q}-holder`, key });
      const orderId = `${q}-after-errors`;
      const jobId = await client.transaction(async (tx, insertOrder) => {
        await insertOrder(`${orderId}-1`);
        await assert.rejects(h.stepping.enqueue(tx, []), EnqueueValidationError);
        await assert.rejects(
          h.stepping.enqueue(tx, [record({ orderId })], { queue: `${q}-usable`, priority: 0.5 }),
          EnqueueValidationError,
        );
        await assert.rejects(
          h.stepping.enqueue(tx, [record({ orderId })], { queue: `${q}-usable`, key, onDuplicate: 'error' }),
          (e: unknown) => e instanceof DuplicateJobError && e.message.includes(holder),
        );
        // The default onDuplicate returns the holder's id, through this client too.
        assert.equal(await h.stepping.enqueue(tx, [record({ orderId })], { key }), holder);
        // The transaction still works: a write and an enqueue after the errors, then commit.
        await insertOrder(`${orderId}-2`);
        return await h.stepping.enqueue(tx, [record({ orderId })], { queue: `${q}-usable` });
      });
      assert.equal(await orderExists(`${orderId}-1`), true);
      assert.equal(await orderExists(`${orderId}-2`), true);
      assert.equal(await jobsInQueue(`${q}-usable`), 1);
      assert.equal((await h.stepping.waitForJob(jobId, { timeoutMs: 60_000 })).status, 'succeeded');
    });

    test('a database error is translated to Stepping’s typed error (schema not migrated)', async () => {
      const elsewhere = createStepping({ pool: h.pool, schema: 'not_migrated' });
      try {
        await assert.rejects(
          client.transaction((tx) => elsewhere.enqueue(tx, [record({ orderId: 'x' })])),
          (e: unknown) => e instanceof SchemaNotReadyError && /stepping migrate/.test(e.message),
        );
      } finally {
        await elsewhere.close();
      }
    });
  });
}

describe('anything else', () => {
  test('is refused before any SQL, naming the accepted clients and what was given', async () => {
    const c = await h.client();
    await c.query('BEGIN');
    const notClients: [unknown, RegExp][] = [
      [
        { exec: () => {} },
        /got an object without any of the methods executeQuery, \$queryRawUnsafe, unsafe, raw, query, execute$/,
      ],
      [new (class Session {})(), /got a Session without/],
      [() => {}, /got a function without/],
      ['postgres://', /got a string$/],
      [null, /got null$/],
    ];
    for (const [value, got] of notClients) {
      assert.equal(isTransactionLike(value), false);
      assert.throws(
        () => toQueryable(value as never),
        (e: unknown) => {
          assert.ok(e instanceof EnqueueValidationError);
          assert.ok(e.message.includes(ACCEPTED_CLIENTS), e.message);
          assert.match(e.message, got);
          return true;
        },
      );
    }
    assert.match(notTransactionLikeMessage(undefined), /got undefined$/);
    // Nothing ran on the connection: the transaction still commits a job.
    const id = await h.stepping.enqueue(c, [record({ orderId: 'plain' })], { queue: 'plain-after-refusals' });
    await c.query('COMMIT');
    assert.equal((await h.stepping.getJob(id))?.queue, 'plain-after-refusals');
  });

  test('a client whose query resolves to neither rows nor { rows } gets a clear error', async () => {
    const pool = new pg.Pool({ connectionString: h.url, max: 1 });
    try {
      const odd = {
        query: async (text: string, values?: unknown[]) => (await pool.query(text, values)).rowCount,
      };
      await assert.rejects(
        h.stepping.enqueue(odd, [record({ orderId: 'odd' })]),
        /the query client returned neither an array of rows nor \{ rows \} \(got a number\)/,
      );
    } finally {
      await pool.end();
    }
  });
});
