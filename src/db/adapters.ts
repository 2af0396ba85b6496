/**
 * Small duck-typed adapters that let the engine run its statement through the caller's
 * own client, inside the caller's transaction, without depending on any ORM: each
 * adapter turns one client's raw-SQL call into `query(text, values) → { rows }`.
 *
 * Detection order (first match wins; each test is a method only that client has among
 * the supported ones, so an object offering several is still read as the right client):
 *
 * 1. `executeQuery` → Kysely (instance or transaction).
 * 2. `$queryRawUnsafe` → Prisma (client or interactive transaction).
 * 3. callable with `unsafe` → postgres.js (`sql`, or the `sql` of `sql.begin`).
 * 4. callable with `raw` → Knex (instance or transaction).
 * 5. `query` → pg Client/PoolClient/Pool, TypeORM EntityManager/QueryRunner, or any
 *    `query(text, values)` client (Drizzle's `query` is an object, not a method).
 * 6. `execute`, `select` and `insert` → Drizzle (database or transaction).
 *
 * Result shapes differ and are normalised to `{ rows }`: pg, Knex's `raw` and Drizzle on
 * node-postgres resolve to `{ rows }`; postgres.js, TypeORM and Prisma resolve to the rows
 * array. Prisma returns int8 columns as BigInt; they become decimal strings, as pg returns them.
 * Placeholders: pg, TypeORM, postgres.js and Prisma take `$1`; Knex takes `?` and Drizzle
 * takes `sql` chunks, so for those two the statement is split at its `$n` placeholders.
 */
import { EnqueueValidationError, SteppingError, translateDatabaseError } from '../errors.js';
import { splitPlaceholders } from './placeholders.js';
import type {
  KnexExecutor,
  KyselyExecutor,
  PrismaExecutor,
  Queryable,
  QueryClient,
  TransactionLike,
} from './queryable.js';

/** The kinds of client that enqueue recognises, named after the package (`query`: anything with `query(text, values)`). */
export type ClientKind = 'kysely' | 'prisma' | 'postgres.js' | 'knex' | 'query' | 'drizzle';

/** The accepted clients, as error messages name them. */
export const ACCEPTED_CLIENTS =
  'a pg Client, PoolClient or Pool; a Kysely, Drizzle, Knex or postgres.js (sql.begin) transaction; ' +
  'a TypeORM EntityManager or QueryRunner; a Prisma interactive transaction; or any object with query(text, values)';

/** The methods detection looks at, in detection order (for the error message). */
const DETECTED_METHODS = ['executeQuery', '$queryRawUnsafe', 'unsafe', 'raw', 'query', 'execute'];

function hasMethod(value: object, name: string): boolean {
  return typeof (value as Record<string, unknown>)[name] === 'function';
}

/** Which client `value` is, or undefined when it is none of the accepted ones (see the module comment). */
export function clientKind(value: unknown): ClientKind | undefined {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined;
  if (hasMethod(value, 'executeQuery')) return 'kysely';
  if (hasMethod(value, '$queryRawUnsafe')) return 'prisma';
  // Both postgres.js and Knex objects are functions (tagged template, query builder).
  if (typeof value === 'function' && hasMethod(value, 'unsafe')) return 'postgres.js';
  if (typeof value === 'function' && hasMethod(value, 'raw')) return 'knex';
  if (hasMethod(value, 'query')) return 'query';
  if (hasMethod(value, 'execute') && hasMethod(value, 'select') && hasMethod(value, 'insert'))
    return 'drizzle';
  return undefined;
}

/**
 * True for a pg Pool: each of its query() calls runs on whichever connection is free and
 * commits at once, so enqueue runs its statement in a transaction on a connection of its
 * own (as it does with Stepping's pool), keeping a batch all-or-nothing.
 */
export function isPgPool(value: unknown): value is import('pg').Pool {
  return (
    typeof value === 'object' &&
    value !== null &&
    hasMethod(value, 'connect') &&
    hasMethod(value, 'query') &&
    hasMethod(value, 'end') &&
    typeof (value as { totalCount?: unknown }).totalCount === 'number' &&
    typeof (value as { idleCount?: unknown }).idleCount === 'number'
  );
}

/** Names what `value` is, for the "not a client" message. */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value !== 'object' && typeof value !== 'function') return `a ${typeof value}`;
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  const what =
    typeof value === 'function'
      ? 'a function'
      : typeof name === 'string' && name !== 'Object'
        ? `a ${name}`
        : 'an object';
  return `${what} without any of the methods ${DETECTED_METHODS.join(', ')}`;
}

/** The message for a first argument that is neither the steps nor an accepted client. */
export function notTransactionLikeMessage(value: unknown): string {
  return `the first argument must be the steps, or the client to enqueue in: ${ACCEPTED_CLIENTS}; got ${describeValue(value)}`;
}

/** Rows of a result: `{ rows }` (pg, Knex, Drizzle on node-postgres) or the rows array (postgres.js, TypeORM, Prisma). */
function rowsOf(kind: ClientKind, result: unknown): unknown[] {
  // A plain array: postgres.js resolves to a Result, an Array subclass carrying metadata.
  if (Array.isArray(result)) return [...(result as unknown[])];
  const rows = (result as { rows?: unknown } | null)?.rows;
  if (Array.isArray(rows)) return rows;
  throw new SteppingError(
    `stepping: the ${kind} client returned neither an array of rows nor { rows } (got ${describeValue(result)})`,
  );
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

type ErrorLike = {
  code?: unknown;
  message?: unknown;
  originalCode?: unknown;
  originalMessage?: unknown;
  cause?: unknown;
  clientVersion?: unknown;
  meta?: { code?: unknown; message?: unknown; driverAdapterError?: { cause?: ErrorLike } };
};

/**
 * The SQLSTATE and the database's message of an error as a client reports it: `code` on
 * pg, postgres.js, Knex and TypeORM errors; on the `cause` when a client wraps the
 * driver's error (Drizzle); for Prisma (whose own `code` is P2010, "raw query failed"),
 * `meta.driverAdapterError.cause.originalCode` with a driver adapter, `meta.code` without.
 */
export function databaseErrorOf(error: unknown): { code: string; message: string } | undefined {
  const found = (code: unknown, message: unknown) =>
    typeof code === 'string' && SQLSTATE.test(code)
      ? { code, message: typeof message === 'string' ? message : String(message) }
      : undefined;
  let e = error as ErrorLike | null | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    if (typeof e.clientVersion === 'string') {
      const adapterCause = e.meta?.driverAdapterError?.cause;
      return (
        found(adapterCause?.originalCode, adapterCause?.originalMessage) ??
        found(adapterCause?.code, adapterCause?.message) ??
        found(e.meta?.code, e.meta?.message)
      );
    }
    const here = found(e.code, e.message);
    if (here) return here;
    e = e.cause as ErrorLike | null | undefined;
  }
  return undefined;
}

/**
 * Runs `call`, turning a wrapped engine error (SQLSTATE found below the surface) into
 * Stepping's typed error, as a pg error would be. Any other error passes unchanged.
 */
async function translating<T>(call: () => PromiseLike<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const found = databaseErrorOf(error);
    if (found !== undefined && (error as ErrorLike).code !== found.code) {
      const translated = translateDatabaseError(
        Object.assign(new Error(found.message, { cause: error }), { code: found.code }),
      );
      if (translated instanceof SteppingError) throw translated;
    }
    throw error;
  }
}

/** Parameter values: `undefined` becomes null (Knex and postgres.js refuse undefined). */
function paramValues(values: readonly unknown[]): unknown[] {
  return values.map((v) => (v === undefined ? null : v));
}

/** The values for the placeholders of a split statement, in order of appearance. */
function orderedValues(params: number[], values: readonly unknown[]): unknown[] {
  return params.map((n) => {
    if (n < 1 || n > values.length)
      throw new SteppingError(`stepping: $${n} has no value (${values.length} given)`);
    const v = values[n - 1];
    return v === undefined ? null : v;
  });
}

/** int8 columns come from Prisma as BigInt; pg's convention (and the engine's) is a decimal string. */
function bigintsToStrings(rows: unknown[]): unknown[] {
  return rows.map((row) => {
    if (typeof row !== 'object' || row === null) return row;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row)) out[k] = typeof v === 'bigint' ? v.toString() : v;
    return out;
  });
}

/** Knex: `?` placeholders (`\?` is a literal question mark), so `$n` becomes `?` with values in order. */
function knexStatement(text: string, values: readonly unknown[]): { sql: string; bindings: unknown[] } {
  const { chunks, params } = splitPlaceholders(text);
  const escaped = chunks.map((chunk) => {
    // Knex reads `\\?` inconsistently (its escape handling drops backslashes); no Stepping statement has one.
    if (/\\\?/.test(chunk))
      throw new SteppingError('stepping: this statement cannot go through knex.raw (\\? in its text)');
    return chunk.replace(/\?/g, '\\?');
  });
  // A space keeps a literal `?` from fusing with the binding after it (`\??` would read as one token).
  const sql = escaped.reduce(
    (acc, chunk, i) => (i === 0 ? chunk : `${acc}${acc.endsWith('?') ? ' ' : ''}?${chunk}`),
    '',
  );
  return { sql, bindings: orderedValues(params, values) };
}

type DrizzleSql = typeof import('drizzle-orm').sql;
let drizzleSql: Promise<DrizzleSql> | undefined;

/** Drizzle's `sql` builder, loaded on first use (drizzle-orm is an optional peer dependency). */
async function loadDrizzleSql(): Promise<DrizzleSql> {
  drizzleSql ??= import('drizzle-orm').then(
    (m) => m.sql,
    (error: unknown) => {
      drizzleSql = undefined;
      throw new EnqueueValidationError(
        `a Drizzle database or transaction was given, but the drizzle-orm package could not be loaded from stepping: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    },
  );
  return await drizzleSql;
}

function kyselyQueryable(db: KyselyExecutor): Queryable {
  return {
    query: async (text, values = []) => {
      // Loaded on first use: workers and pg-only producers never pay for kysely.
      const { CompiledQuery } = await import('kysely');
      // A Kysely executor takes the CompiledQuery its own kysely makes (see KyselyExecutor).
      const run = (query: unknown) =>
        (
          db.executeQuery as (this: typeof db, query: unknown) => PromiseLike<{ rows: readonly unknown[] }>
        ).call(db, query);
      const result = await run(CompiledQuery.raw(text, values));
      return { rows: [...result.rows] };
    },
  };
}

function prismaQueryable(tx: PrismaExecutor): Queryable {
  return {
    query: async (text, values = []) => {
      const result = await translating(() => tx.$queryRawUnsafe(text, ...paramValues(values)));
      return { rows: bigintsToStrings(rowsOf('prisma', result)) };
    },
  };
}

/** How the adapter calls postgres.js (PostgresJsExecutor leaves the arguments open for typing). */
interface PostgresJsSql {
  unsafe(query: string, parameters: unknown[], options: { prepare: boolean }): PromiseLike<unknown>;
  typed?: (value: unknown, oid: number) => unknown;
}

/** PostgreSQL's type oid of `text`. */
const TEXT_OID = 25;

/**
 * postgres.js serialises a value by the type the server infers for its placeholder, so a
 * JSON string bound to `$1::jsonb` would be stored as a JSON string literal (pg sends the
 * text as it is). A string whose placeholder carries an explicit cast is therefore bound
 * as `text` (the cast converts it, as with pg); other values keep postgres.js's handling.
 */
function postgresJsValues(sql: PostgresJsSql, text: string, values: readonly unknown[]): unknown[] {
  const { chunks, params } = splitPlaceholders(text);
  const castParams = new Set(params.filter((_, i) => /^\s*::/.test(chunks[i + 1]!)));
  return paramValues(values).map((v, i) => {
    if (typeof v !== 'string' || !castParams.has(i + 1)) return v;
    if (typeof sql.typed !== 'function')
      throw new SteppingError(
        'stepping: this postgres.js has no sql.typed(); postgres.js 3 or later is needed',
      );
    return sql.typed(v, TEXT_OID);
  });
}

function postgresJsQueryable(sql: PostgresJsSql): Queryable {
  return {
    // Unnamed statements (prepare: false, unsafe's default stated here): a named one would
    // outlive the transaction on a pooled server connection (PgBouncer, transaction mode).
    query: async (text, values = []) => {
      const bound = postgresJsValues(sql, text, values);
      return {
        rows: rowsOf('postgres.js', await translating(() => sql.unsafe(text, bound, { prepare: false }))),
      };
    },
  };
}

function knexQueryable(knex: KnexExecutor): Queryable {
  return {
    query: async (text, values = []) => {
      const { sql, bindings } = knexStatement(text, values);
      return { rows: rowsOf('knex', await translating(() => knex.raw(sql, bindings))) };
    },
  };
}

/** How the adapter calls Drizzle (DrizzleExecutor leaves the argument open for typing). */
interface DrizzleExecute {
  execute(query: ReturnType<DrizzleSql['join']>): PromiseLike<unknown>;
}

function drizzleQueryable(db: DrizzleExecute): Queryable {
  return {
    query: async (text, values = []) => {
      const sql = await loadDrizzleSql();
      const { chunks, params } = splitPlaceholders(text);
      const ordered = orderedValues(params, values);
      const parts = chunks.flatMap((chunk, i) =>
        i === 0 ? [sql.raw(chunk)] : [sql.param(ordered[i - 1]), sql.raw(chunk)],
      );
      return { rows: rowsOf('drizzle', await translating(() => db.execute(sql.join(parts)))) };
    },
  };
}

function queryClientQueryable(client: QueryClient): Queryable {
  return {
    query: async (text, values = []) => ({
      rows: rowsOf('query', await translating(() => client.query(text, values))),
    }),
  };
}

/**
 * Adapts an accepted client (see clientKind) to `query(text, values) → { rows }`.
 * Throws EnqueueValidationError when `tx` is none of them.
 */
export function adaptClient(tx: TransactionLike): Queryable {
  switch (clientKind(tx)) {
    case 'kysely':
      return kyselyQueryable(tx as KyselyExecutor);
    case 'prisma':
      return prismaQueryable(tx as PrismaExecutor);
    case 'postgres.js':
      return postgresJsQueryable(tx as unknown as PostgresJsSql);
    case 'knex':
      return knexQueryable(tx as KnexExecutor);
    case 'query':
      return queryClientQueryable(tx as QueryClient);
    case 'drizzle':
      return drizzleQueryable(tx as unknown as DrizzleExecute);
    case undefined:
      throw new EnqueueValidationError(notTransactionLikeMessage(tx));
  }
}
