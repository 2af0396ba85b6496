/**
 * The clients applications enqueue through, each opened with its real package: a way to
 * run a body inside one of its transactions and to write a business row with its own API.
 * Shared by the adapter tests (direct server) and the PgBouncer tests.
 */
import { drizzle } from 'drizzle-orm/node-postgres';
import { pgTable, text } from 'drizzle-orm/pg-core';
import knexFactory from 'knex';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import postgres from 'postgres';
import { DataSource } from 'typeorm';

import type { ClientKind } from '../../src/db/adapters.js';
import type { TransactionLike } from '../../src/index.js';
import { type GeneratedPrisma, generatePrisma } from './prisma.js';

/** The business table every client writes to, next to the job. */
export const ORDERS_DDL = 'CREATE TABLE IF NOT EXISTS adapter_orders (id text PRIMARY KEY)';

/** One client, connected to one database. */
export interface ClientCase {
  /** Label for test names. */
  readonly name: string;
  /** What clientKind() must detect for this client's transaction object. */
  readonly kind: ClientKind;
  /**
   * Runs `body` inside a transaction of this client: commits when it resolves, rolls back
   * (and rethrows) when it throws. `insertOrder` writes a row of adapter_orders through the
   * client's own API, in that transaction.
   */
  transaction<T>(
    body: (tx: TransactionLike, insertOrder: (id: string) => Promise<void>) => Promise<T>,
  ): Promise<T>;
  close(): Promise<void>;
}

/** Every client, in the order the tests run them. */
export const CLIENT_NAMES = [
  'pg PoolClient',
  'query(text, values) object',
  'Kysely',
  'Drizzle (node-postgres)',
  'Knex',
  'TypeORM EntityManager',
  'TypeORM QueryRunner',
  'postgres.js',
  'Prisma (adapter-pg)',
] as const;
/** A client's name. */
export type ClientName = (typeof CLIENT_NAMES)[number];

const adapterOrders = pgTable('adapter_orders', { id: text('id').primaryKey() });

/** Runs body between BEGIN and COMMIT on a pg client (ROLLBACK when it throws). */
async function pgTransaction<T>(client: pg.ClientBase, body: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await body();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

/**
 * Opens `name` on `url`. `prisma` is the generated Prisma client (needed for the Prisma
 * case only); `behindPgBouncer` turns off what a transaction-pooling PgBouncer cannot
 * carry in the client's own statements (postgres.js's named prepared statements).
 */
export async function openClient(
  name: ClientName,
  url: string,
  options: { prisma?: GeneratedPrisma; behindPgBouncer?: boolean } = {},
): Promise<ClientCase> {
  switch (name) {
    case 'pg PoolClient': {
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      return {
        name,
        kind: 'query',
        async transaction(body) {
          const client = await pool.connect();
          try {
            return await pgTransaction(client, () =>
              body(client, async (id) => {
                await client.query('INSERT INTO adapter_orders (id) VALUES ($1)', [id]);
              }),
            );
          } finally {
            client.release();
          }
        },
        close: () => pool.end(),
      };
    }
    case 'query(text, values) object': {
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      return {
        name,
        kind: 'query',
        async transaction(body) {
          const client = await pool.connect();
          // Not a pg object: only a query method, as a hand-written wrapper would offer.
          const wrapper = { query: (text: string, values?: unknown[]) => client.query(text, values) };
          try {
            return await pgTransaction(client, () =>
              body(wrapper, async (id) => {
                await wrapper.query('INSERT INTO adapter_orders (id) VALUES ($1)', [id]);
              }),
            );
          } finally {
            client.release();
          }
        },
        close: () => pool.end(),
      };
    }
    case 'Kysely': {
      const db = new Kysely<{ adapter_orders: { id: string } }>({
        dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }),
      });
      return {
        name,
        kind: 'kysely',
        transaction: (body) =>
          db.transaction().execute((trx) =>
            body(trx, async (id) => {
              await trx.insertInto('adapter_orders').values({ id }).execute();
            }),
          ),
        close: () => db.destroy(),
      };
    }
    case 'Drizzle (node-postgres)': {
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      const db = drizzle(pool);
      return {
        name,
        kind: 'drizzle',
        transaction: (body) =>
          db.transaction((tx) =>
            body(tx, async (id) => {
              await tx.insert(adapterOrders).values({ id });
            }),
          ),
        close: () => pool.end(),
      };
    }
    case 'Knex': {
      const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 2 } });
      return {
        name,
        kind: 'knex',
        transaction: (body) =>
          knex.transaction((trx) =>
            body(trx, async (id) => {
              await trx('adapter_orders').insert({ id });
            }),
          ),
        close: () => knex.destroy(),
      };
    }
    case 'TypeORM EntityManager':
    case 'TypeORM QueryRunner': {
      const dataSource = new DataSource({ type: 'postgres', url, poolSize: 2 });
      await dataSource.initialize();
      const insert = (runner: { query(q: string, p: unknown[]): Promise<unknown> }) => async (id: string) => {
        await runner.query('INSERT INTO adapter_orders (id) VALUES ($1)', [id]);
      };
      if (name === 'TypeORM EntityManager') {
        return {
          name,
          kind: 'query',
          transaction: (body) => dataSource.transaction((manager) => body(manager, insert(manager))),
          close: () => dataSource.destroy(),
        };
      }
      return {
        name,
        kind: 'query',
        async transaction(body) {
          const runner = dataSource.createQueryRunner();
          await runner.connect();
          await runner.startTransaction();
          try {
            const result = await body(runner, insert(runner));
            await runner.commitTransaction();
            return result;
          } catch (error) {
            await runner.rollbackTransaction();
            throw error;
          } finally {
            await runner.release();
          }
        },
        close: () => dataSource.destroy(),
      };
    }
    case 'postgres.js': {
      const sql = postgres(url, {
        max: 2,
        onnotice: () => {},
        // Named prepared statements do not survive transaction pooling.
        ...(options.behindPgBouncer ? { prepare: false } : {}),
      });
      return {
        name,
        kind: 'postgres.js',
        transaction: async (body) =>
          (await sql.begin((tx) =>
            body(tx, async (id) => {
              await tx`INSERT INTO adapter_orders ${tx({ id })}`;
            }),
          )) as Awaited<ReturnType<typeof body>>,
        close: () => sql.end(),
      };
    }
    case 'Prisma (adapter-pg)': {
      if (!options.prisma) throw new Error('the Prisma case needs the generated client (generatePrisma())');
      const prisma = await options.prisma.connect(url);
      return {
        name,
        kind: 'prisma',
        transaction: (body) =>
          prisma.$transaction(
            (tx) =>
              body(tx, async (id) => {
                await tx.adapterOrder.create({ data: { id } });
              }),
            // Prisma's 5 s default is tight for a loaded machine.
            { maxWait: 60_000, timeout: 60_000 },
          ),
        close: () => prisma.$disconnect(),
      };
    }
  }
}

export { generatePrisma };
