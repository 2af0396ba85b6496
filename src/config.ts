import { ConfigError } from './errors.js';

/** Default schema name. */
export const DEFAULT_SCHEMA = 'stepping';

/**
 * Schema names are restricted to lower-case identifiers of up to 48 characters so that
 * the NOTIFY channels built from them (`<schema>_ready`) stay under PostgreSQL's 63-byte limit.
 */
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,47}$/;

/**
 * Schemas Stepping must never take over: migrate replaces every function and view in its
 * schema and revokes PUBLIC's rights there, which would wreck an application's `public`.
 */
function isReservedSchema(name: string): boolean {
  return name === 'public' || name === 'information_schema' || name.startsWith('pg_');
}

/** The schema name to use: `schema` (default `stepping`) once validated. */
export function schemaName(schema: string | undefined): string {
  const value = schema ?? DEFAULT_SCHEMA;
  if (typeof value !== 'string' || !SCHEMA_PATTERN.test(value)) {
    throw new ConfigError(
      `schema ${JSON.stringify(String(value))} is invalid: use 1-48 characters of a-z, 0-9 and _, not starting with a digit`,
    );
  }
  if (isReservedSchema(value)) {
    throw new ConfigError(
      `schema ${value} is reserved: Stepping needs a schema of its own (it owns every function and view in it); use e.g. "stepping"`,
    );
  }
  return value;
}

/** Quotes an identifier for SQL text (schema names are validated first; this is belt and braces). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Checks that a numeric option is an integer within bounds, naming it in the error;
 * `maxIs` says where an upper bound that is not a constant comes from.
 */
export function checkInt(name: string, value: unknown, min: number, max: number, maxIs?: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const bound = maxIs === undefined ? `${max}` : `${max} (${maxIs})`;
    throw new ConfigError(`${name} must be an integer from ${min} to ${bound}, got ${String(value)}`);
  }
  return value;
}

/**
 * The connection string forms node-postgres reads as meant: an absolute URL of any scheme
 * (it reads postgres://, postgresql://, postgis://, pgsql://... alike), a socket URL or a
 * socket directory.
 */
const READABLE_CONNECTION = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/|socket:|\/)/;

/**
 * Checks a connection string before node-postgres sees it: it reads anything that is not
 * a URL as a URL relative to `postgres://base`, so `host=db dbname=orders` fails later
 * with `getaddrinfo ENOTFOUND base`. Accepts absolute URLs (`postgres://`, `postgresql://`
 * and the other schemes node-postgres reads alike), `socket:/dir?db=name` and `/dir dbname`.
 * The error never shows the value (a keyword/value string's password may be spelled in
 * ways no masking knows: Pwd=, quoted, with spaces); the example URL has no password part,
 * so the CLI's credential masking leaves the advice whole. `what` names the option
 * (`connectionString`, `DATABASE_URL`, ...).
 */
export function checkConnectionString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConfigError(`${what} must be a non-empty string (a postgres:// URL), got ${typeof value}`);
  }
  if (READABLE_CONNECTION.test(value)) return value;
  if (/^\s*[A-Za-z_]+\s*=/.test(value)) {
    throw new ConfigError(
      `${what}: keyword/value connection strings (host=... dbname=...) are not supported by ` +
        `node-postgres; write a URL such as postgres://USER@HOST:5432/DBNAME, with the password ` +
        `percent-encoded after USER: (the value is not shown: it may hold a password)`,
    );
  }
  throw new ConfigError(
    `${what} must be a URL such as postgres://USER@HOST:5432/DBNAME (the password percent-encoded ` +
      `after USER:), or socket:/dir?db=name; got ${value.length} characters, not shown`,
  );
}
