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

/** Checks that a numeric option is an integer within bounds, naming it in the error. */
export function checkInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}
