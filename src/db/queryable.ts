import type { CompiledQuery } from 'kysely';

/** Anything that runs a parameterised query: a pg Pool, Client or PoolClient. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** A Kysely instance or transaction (`db.transaction().execute(async (trx) => ...)`). */
export interface KyselyExecutor {
  executeQuery(query: CompiledQuery): Promise<{ rows: unknown[] }>;
}

/** What `enqueue(tx, ...)` accepts as the caller's transaction. */
export type TransactionLike = Queryable | KyselyExecutor;

/** True when `value` can run queries (pg client/pool, or Kysely). */
export function isTransactionLike(value: unknown): value is TransactionLike {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.query === 'function' || typeof v.executeQuery === 'function';
}

/** Adapts a pg or Kysely executor to one `query(text, values)` shape. */
export function toQueryable(tx: TransactionLike): Queryable {
  if ('executeQuery' in tx && typeof tx.executeQuery === 'function') {
    const kysely = tx;
    return {
      query: async (text, values = []) => {
        // Loaded on first use: workers and pg-only producers never pay for kysely.
        const { CompiledQuery } = await import('kysely');
        const result = await kysely.executeQuery(CompiledQuery.raw(text, values));
        return { rows: [...result.rows] };
      },
    };
  }
  return tx as Queryable;
}
