/**
 * Where a multi-database worker learns its databases: a static list, a function, or a
 * SQL query against a catalog database; the last two are re-read periodically.
 */
import pg from 'pg';

import { ConfigError } from '../errors.js';
import { isValidHostList, maskConnectionString, parseConnectionUrl } from '../redact.js';
import { textOf } from '../text.js';

/** One database: a connection string, optionally with a stable id (shown as ctx.database). */
export type DatabaseSpec =
  | string
  | {
      id?: string;
      connectionString: string;
      /** A direct server URL for LISTEN when connectionString goes through a transaction-pooling PgBouncer. */
      listenConnectionString?: string;
    };

/** A list, or something that yields the list again every `refreshMs`. */
export type DatabaseSource =
  | readonly DatabaseSpec[]
  | { list: () => Promise<readonly DatabaseSpec[]> | readonly DatabaseSpec[]; refreshMs?: number }
  | { catalog: string; query: string; refreshMs?: number };

/** A database with its resolved id. */
export interface ResolvedDatabase {
  id: string;
  connectionString: string;
  listenConnectionString?: string;
}

/** Default period for re-reading a resolver (a function: it may be costly, so not often). */
export const DEFAULT_REFRESH_MS = 30_000;
/**
 * Default period for re-reading a catalog query: a new tenant is served within about a
 * second. The worker reads it on one connection it keeps, so this is one cheap statement a
 * second, not a connection.
 */
export const DEFAULT_CATALOG_REFRESH_MS = 1000;

/**
 * The id of a database: the configured one, or `host:port/dbname` from its URL (never
 * credentials, even when an unencoded `/`, `?` or `#` in the password defeats URL
 * parsers: see src/redact.ts). A connection string that cannot be read is a ConfigError
 * that shows it with its password masked.
 */
export function resolveDatabase(spec: DatabaseSpec): ResolvedDatabase {
  const connectionString = typeof spec === 'string' ? spec : spec?.connectionString;
  if (typeof connectionString !== 'string' || connectionString.length === 0) {
    const shown = typeof spec === 'object' && spec !== null ? { ...spec, connectionString } : spec;
    throw new ConfigError(
      `a database needs a connection string, got ${maskConnectionString(JSON.stringify(shown) ?? textOf(shown))}`,
    );
  }
  const listen =
    typeof spec === 'object' && spec.listenConnectionString
      ? { listenConnectionString: spec.listenConnectionString }
      : {};
  if (typeof spec === 'object' && spec.id) return { id: spec.id, connectionString, ...listen };
  const url = parseConnectionUrl(connectionString);
  if (url === null) {
    // Shown only when its password can be found (keyword form); anything else may be all secret.
    if (/^\s*[A-Za-z_]+\s*=/.test(connectionString)) {
      throw new ConfigError(
        `cannot use the connection string of a database: keyword/value strings are not supported by ` +
          `node-postgres, write a postgres:// URL: ${maskConnectionString(connectionString)}`,
      );
    }
    throw new ConfigError(
      `cannot parse the connection string of a database (${connectionString.length} characters, not shown): ` +
        `expected postgres://user:password@host:port/dbname`,
    );
  }
  if (url.ambiguity === 'unclear' || !isValidHostList(url.hosts)) {
    // An id from a misreading could name another database (two tenants would then share
    // one id and one would be dropped), or show part of the password.
    throw new ConfigError(
      `cannot tell where the credentials of a database's connection string end: give the database ` +
        `an id, or percent-encode "@" in its query (%40) and "/", "?", "#" in its password ` +
        `(%2F, %3F, %23): ${maskConnectionString(connectionString)}`,
    );
  }
  const name = decode(url.path.replace(/^\//, '')) || 'postgres';
  return { id: `${url.hosts}/${name}`, connectionString, ...listen };
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** True when the source is re-read periodically. */
export function isDynamic(source: DatabaseSource): boolean {
  return !Array.isArray(source);
}

/** How often a dynamic source is re-read. */
export function refreshMs(source: DatabaseSource): number {
  if (Array.isArray(source)) return 0;
  const given = (source as { refreshMs?: number }).refreshMs;
  return given ?? ('catalog' in source ? DEFAULT_CATALOG_REFRESH_MS : DEFAULT_REFRESH_MS);
}

/** Reads a catalog query's rows as database specs. */
async function catalogSpecs(client: pg.ClientBase, query: string): Promise<DatabaseSpec[]> {
  const { rows } = await client.query<Record<string, unknown>>(query);
  return rows.map((r) => {
    const url = r.url ?? r.connection_string ?? Object.values(r)[0];
    const id = r.id;
    return typeof id === 'string' || typeof id === 'number'
      ? { id: String(id), connectionString: String(url) }
      : String(url);
  });
}

/** Reads a source again and again; a catalog's connection is kept between reads. */
export class SourceReader {
  private client: pg.Client | null = null;

  constructor(private readonly source: DatabaseSource) {}

  /** The current list, as readSource returns it. */
  async read(onInvalid?: (error: ConfigError) => void): Promise<ResolvedDatabase[]> {
    if (Array.isArray(this.source) || !('catalog' in this.source)) return readSource(this.source, onInvalid);
    const catalog = this.source as { catalog: string; query: string };
    if (!this.client) {
      const client = new pg.Client({
        connectionString: catalog.catalog,
        connectionTimeoutMillis: 10_000,
        application_name: 'stepping-worker',
      });
      client.on('error', () => {}); // the next read fails and reconnects
      client.once('end', () => {
        if (this.client === client) this.client = null;
      });
      await client.connect();
      this.client = client;
    }
    let specs: DatabaseSpec[];
    try {
      specs = await catalogSpecs(this.client, catalog.query);
    } catch (error) {
      await this.close();
      throw error;
    }
    return resolveAll(specs, onInvalid);
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }
}

/**
 * Reads the current list (deduplicated by id). An entry that cannot be used throws, or,
 * with `onInvalid`, is reported there and left out, so one bad row of a tenant catalog
 * never stops the others from being served.
 */
export async function readSource(
  source: DatabaseSource,
  onInvalid?: (error: ConfigError) => void,
): Promise<ResolvedDatabase[]> {
  let specs: readonly DatabaseSpec[];
  if (Array.isArray(source)) {
    specs = source as readonly DatabaseSpec[];
  } else if ('list' in source) {
    specs = await source.list();
  } else {
    const catalog = source as { catalog: string; query: string };
    const client = new pg.Client({ connectionString: catalog.catalog, connectionTimeoutMillis: 10_000 });
    await client.connect();
    try {
      specs = await catalogSpecs(client, catalog.query);
    } finally {
      await client.end();
    }
  }
  return resolveAll(specs, onInvalid);
}

/** Resolves specs, deduplicated by id; see readSource for `onInvalid`. */
function resolveAll(
  specs: readonly DatabaseSpec[],
  onInvalid?: (error: ConfigError) => void,
): ResolvedDatabase[] {
  const byId = new Map<string, ResolvedDatabase>();
  for (const spec of specs) {
    let db: ResolvedDatabase;
    try {
      db = resolveDatabase(spec);
    } catch (error) {
      if (!onInvalid || !(error instanceof ConfigError)) throw error;
      onInvalid(error);
      continue;
    }
    byId.set(db.id, db);
  }
  return [...byId.values()];
}
