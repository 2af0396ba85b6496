/**
 * The connection settings behind a pool or a client config. A pg.Pool keeps them in its
 * `options` object; a client config's own `options` is libpq's options string (`-c
 * statement_timeout=...`), so only an object there means a pool.
 */
import type pg from 'pg';

/** A pool's client settings, or the client config itself. */
export function connectionConfig(source: pg.Pool | pg.ClientConfig): pg.ClientConfig {
  const options: unknown = (source as { options?: unknown }).options;
  return typeof options === 'object' && options !== null
    ? (options as pg.ClientConfig)
    : (source as pg.ClientConfig);
}
