/**
 * enqueue through clients configured the way applications configure them: result columns
 * renamed by a casing transform (Kysely's CamelCasePlugin, postgres.js `transform:
 * postgres.camel`, a camelCasing Knex postProcessResponse), and pool-like instances used
 * outside any transaction, where a refused duplicate must leave none of its batch behind.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import knexFactory, { type Knex } from 'knex';
import { CamelCasePlugin, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import postgres from 'postgres';

import { defineStep, DuplicateJobError, SteppingError, type TransactionLike } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
// No worker serves this queue: a job holding a key stays unfinished.
const QUEUE = 'nobody-serves-this';
const noop = defineStep('clients.noop', async () => {});

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const camelRow = (row: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [camel(k), v]));

/** One client, with a transaction runner and a handle used outside any transaction. */
interface Client {
  name: string;
  instance: TransactionLike;
  transaction<T>(body: (tx: TransactionLike) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function kyselyCamel(): Client {
  const db = new Kysely<unknown>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: h.url, max: 2 }) }),
    plugins: [new CamelCasePlugin()],
  });
  return {
    name: 'Kysely with CamelCasePlugin',
    instance: db,
    transaction: (body) => db.transaction().execute((trx) => body(trx)),
    close: () => db.destroy(),
  };
}

function postgresJsCamel(): Client {
  const sql = postgres(h.url, { transform: postgres.camel, max: 2, onnotice: () => {} });
  return {
    name: 'postgres.js with transform: postgres.camel',
    instance: sql as unknown as TransactionLike,
    transaction: async (body) =>
      (await sql.begin((tx) => body(tx as unknown as TransactionLike))) as Awaited<ReturnType<typeof body>>,
    close: () => sql.end(),
  };
}

function knexCamel(): Client {
  const knex: Knex = knexFactory({
    client: 'pg',
    connection: h.url,
    pool: { min: 0, max: 2 },
    // The usual camelCasing hook; knex.raw on pg resolves to the driver's result ({ rows }).
    postProcessResponse: (result: unknown) => {
      const r = result as { rows?: Record<string, unknown>[] } | Record<string, unknown>[];
      if (Array.isArray(r)) return r.map(camelRow);
      if (r && Array.isArray(r.rows)) return { ...r, rows: r.rows.map(camelRow) };
      return result;
    },
  });
  return {
    name: 'Knex with a camelCasing postProcessResponse',
    instance: knex as unknown as TransactionLike,
    transaction: (body) => knex.transaction((trx) => body(trx as unknown as TransactionLike)),
    close: () => knex.destroy(),
  };
}

async function jobsWithKey(key: string): Promise<number> {
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM stepping.jobs WHERE key = $1', [key]);
  return rows[0].n;
}

async function jobExists(id: string): Promise<boolean> {
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM stepping.jobs WHERE id::text = $1', [
    id,
  ]);
  return rows[0].n === 1;
}

for (const open of [kyselyCamel, postgresJsCamel, knexCamel]) {
  const client = open();
  after(() => client.close());
  describe(`enqueue through ${client.name}`, () => {
    test('returns the real job id and refuses a duplicate', async () => {
      const key = `camel:${client.name}`;
      const [id, many] = await client.transaction(async (tx) => {
        const id = await h.stepping.enqueue(tx, [noop({})], { key, queue: QUEUE });
        await assert.rejects(
          h.stepping.enqueue(tx, [noop({})], { key, queue: QUEUE, onDuplicate: 'error' }),
          (e: unknown) => {
            assert.ok(e instanceof DuplicateJobError, `expected DuplicateJobError, got ${String(e)}`);
            assert.equal(e.existingJobId, id);
            return true;
          },
        );
        const many = await h.stepping.enqueueMany(tx, [
          { steps: [noop({})], options: { queue: QUEUE } },
          { steps: [noop({})], options: { key, queue: QUEUE } },
        ]);
        return [id, many] as const;
      });
      assert.match(id, /^[1-9][0-9]*$/);
      assert.equal(await jobExists(id), true);
      assert.equal(many[0]!.created, true);
      assert.equal(await jobExists(many[0]!.jobId), true);
      assert.deepEqual(many[1], { jobId: id, created: false });
      assert.equal(await jobsWithKey(key), 1);
    });

    test('used outside a transaction, a batch with a refused duplicate leaves none of its jobs', async () => {
      await refusedBatchLeavesNothing(client.instance, `instance:${client.name}`);
    });
  });
}

/** Holds `held` with a parked job, then enqueues a batch of a fresh key and `held` (onDuplicate: 'error') through `tx`. */
async function refusedBatchLeavesNothing(tx: TransactionLike, tag: string): Promise<void> {
  const held = `${tag}:held`;
  const existing = await h.stepping.enqueue([noop({})], { key: held, queue: QUEUE });
  await assert.rejects(
    h.stepping.enqueueMany(tx, [
      { steps: [noop({})], options: { key: `${tag}:fresh`, queue: QUEUE } },
      { steps: [noop({})], options: { key: held, queue: QUEUE, onDuplicate: 'error' } },
    ]),
    (e: unknown) => {
      assert.ok(e instanceof DuplicateJobError, `expected DuplicateJobError, got ${String(e)}`);
      assert.equal(e.existingJobId, existing);
      assert.match(e.message, /nothing was enqueued by this call/);
      return true;
    },
  );
  assert.equal(await jobsWithKey(`${tag}:fresh`), 0, "the batch's other job was committed");
}

test('a pg Client without BEGIN: a batch with a refused duplicate leaves none of its jobs', async () => {
  const c = await h.client();
  await refusedBatchLeavesNothing(c, 'client-autocommit');
  // The client is left outside any transaction.
  const { rows } = await c.query('SELECT now() = statement_timestamp() AS alone');
  assert.equal(rows[0].alone, true);
});

test("in the caller's transaction, a batch with a refused duplicate leaves none of its jobs and the transaction usable", async () => {
  const c = await h.client();
  await c.query('BEGIN');
  const before = await h.stepping.enqueue(c, [noop({})], { key: 'tx:before', queue: QUEUE });
  await refusedBatchLeavesNothing(c, 'in-tx');
  const { rows } = await c.query("SELECT count(*)::int AS n FROM stepping.jobs WHERE key = 'in-tx:fresh'");
  assert.equal(rows[0].n, 0, "the batch's other job is still in the transaction");
  await c.query('COMMIT');
  assert.equal(await jobExists(before), true);
});

test('a query() object over a pool (no transaction of its own): a batch with a refused duplicate leaves none of its jobs', async () => {
  // The engine undoes the batch in its own statement: no client needs a transaction for it.
  const viaPool = { query: (text: string, values: unknown[]) => h.pool.query(text, values) };
  await refusedBatchLeavesNothing(viaPool, 'unknown');
});

test('batches enqueued at once on one connection: a refused one undoes only itself', async () => {
  // Two enqueueMany calls (and a single enqueue) in flight together on one connection, as
  // Promise.all in a transaction makes them: the refusal of one must not undo the others.
  for (const inTransaction of [true, false]) {
    const tag = `together-${inTransaction}`;
    const held = `${tag}:held`;
    await h.stepping.enqueue([noop({})], { key: held, queue: QUEUE });
    const c = await h.client();
    if (inTransaction) await c.query('BEGIN');
    const [refused, other, single] = await Promise.allSettled([
      h.stepping.enqueueMany(c, [
        { steps: [noop({})], options: { key: `${tag}:a1`, queue: QUEUE } },
        { steps: [noop({})], options: { key: held, queue: QUEUE, onDuplicate: 'error' } },
      ]),
      h.stepping.enqueueMany(c, [
        { steps: [noop({})], options: { key: `${tag}:b1`, queue: QUEUE, onDuplicate: 'error' } },
        { steps: [noop({})], options: { key: `${tag}:b2`, queue: QUEUE, onDuplicate: 'error' } },
      ]),
      h.stepping.enqueue(c, [noop({})], { key: `${tag}:c1`, queue: QUEUE }),
    ]);
    if (inTransaction) await c.query('COMMIT');
    assert.equal(refused.status, 'rejected');
    assert.ok(refused.status === 'rejected' && refused.reason instanceof DuplicateJobError);
    assert.equal(other.status, 'fulfilled', inTransaction ? 'in a transaction' : 'autocommit');
    assert.equal(single.status, 'fulfilled');
    assert.deepEqual(
      await Promise.all([`${tag}:a1`, `${tag}:b1`, `${tag}:b2`, `${tag}:c1`].map((k) => jobsWithKey(k))),
      [0, 1, 1, 1],
      inTransaction ? 'in a transaction' : 'autocommit',
    );
  }
});

test('a client that renames the result columns gets a typed error naming the column, never "undefined"', async () => {
  const c = await h.client();
  // Upper-cases every column name, as no supported transform does.
  const shouting = {
    query: async (text: string, values: unknown[]) => {
      const result = await c.query(text, values);
      return {
        rows: result.rows.map((row: Record<string, unknown>) =>
          Object.fromEntries(Object.entries(row).map(([k, v]) => [k.toUpperCase(), v])),
        ),
      };
    },
  };
  await c.query('BEGIN');
  await assert.rejects(h.stepping.enqueue(shouting, [noop({})], { queue: QUEUE }), (e: unknown) => {
    assert.ok(e instanceof SteppingError, `expected a SteppingError, got ${String(e)}`);
    assert.match(e.message, /column "id"/);
    return true;
  });
  await c.query('ROLLBACK');
});
