/**
 * The shapes of client that `enqueue(tx, ...)` accepts, and the one shape the engine runs
 * its SQL through. Detection and the per-client adapters live in adapters.ts.
 */
import { adaptClient, clientKind } from './adapters.js';

/** What the engine runs SQL through: `query(text, values)` resolving to `{ rows }` (a pg Pool, Client or PoolClient). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

/**
 * Any client with `query(text, values)` using `$1` placeholders and resolving to `{ rows }`
 * or to the rows themselves: pg's Client, PoolClient and Pool, TypeORM's EntityManager
 * and QueryRunner, and look-alikes.
 */
export interface QueryClient {
  query(text: string, values?: unknown[]): PromiseLike<unknown>;
}

/**
 * A Kysely instance or transaction (`db.transaction().execute(async (trx) => ...)`).
 * Written out rather than imported, so kysely stays an optional peer dependency; the
 * query is Kysely's CompiledQuery (built with kysely's own CompiledQuery.raw at run time).
 */
export interface KyselyExecutor {
  // `never`: any executeQuery fits, whatever query type its kysely version declares.
  executeQuery(query: never, ...rest: never[]): PromiseLike<{ rows: readonly unknown[] }>;
}

/** A Knex instance or transaction (`knex.transaction(async (trx) => ...)`): a callable with `raw(sql, bindings)`. */
export interface KnexExecutor {
  raw(sql: string, bindings: readonly unknown[]): PromiseLike<unknown>;
}

/**
 * A postgres.js `sql`, or the `sql` of `sql.begin(async (sql) => ...)`: a callable with
 * `unsafe(text, values, options)`. The arguments after the text are left open (`never`)
 * so that postgres.js's own, narrower parameter types fit.
 */
export interface PostgresJsExecutor {
  unsafe(query: string, ...rest: never[]): PromiseLike<unknown>;
}

/** A Prisma client or interactive transaction (`prisma.$transaction(async (tx) => ...)`). */
export interface PrismaExecutor {
  $queryRawUnsafe(query: string, ...values: unknown[]): PromiseLike<unknown>;
}

/**
 * A Drizzle PostgreSQL database or transaction (`db.transaction(async (tx) => ...)`).
 * `execute` receives a statement built with drizzle-orm's `sql`; its parameter is left
 * open (`never`) so that Drizzle's own type fits.
 */
export interface DrizzleExecutor {
  execute(query: never): PromiseLike<unknown>;
  select(...fields: never[]): unknown;
  insert(...tables: never[]): unknown;
}

/**
 * What `enqueue(tx, ...)` accepts as the caller's transaction: a pg client, or a
 * transaction of Kysely, Knex, postgres.js, Prisma, Drizzle or TypeORM, or any object
 * with `query(text, values)`. A pool or an ORM instance outside a transaction works too;
 * the job then commits at once.
 */
export type TransactionLike =
  QueryClient | KyselyExecutor | KnexExecutor | PostgresJsExecutor | PrismaExecutor | DrizzleExecutor;

/** True when `value` is a client that enqueue can run its statement through (see adapters.ts for the detection order). */
export function isTransactionLike(value: unknown): value is TransactionLike {
  return clientKind(value) !== undefined;
}

/** Adapts any accepted client to the engine's `query(text, values) → { rows }`. */
export function toQueryable(tx: TransactionLike): Queryable {
  return adaptClient(tx);
}
