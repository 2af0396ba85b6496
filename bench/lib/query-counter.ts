/**
 * Counts the SQL statements a library sends, in the driver: every client a counted pool
 * connects has its query() wrapped, so each call (including BEGIN/COMMIT, prepared
 * statements and LISTEN) is counted once, grouped by its text, with the round-trip time
 * seen by the client. pg_stat_statements is not loaded on the embedded server, so this
 * is the method the report uses for "statements per step".
 */
import pg from 'pg';

/** Calls of one statement text. */
export interface StatementStat {
  /** The statement, whitespace collapsed, cut to 120 characters. */
  text: string;
  count: number;
  /** Sum of client-observed times from the call to its result (includes waiting in pg's per-client queue). */
  totalMs: number;
}

/** Accumulates statement counts over every client of the pools it instruments. */
export class QueryCounter {
  private readonly byText = new Map<string, StatementStat>();
  total = 0;

  /** Wraps `client.query` so every call is counted. */
  instrument(client: pg.Client | pg.PoolClient): void {
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    const wrapped = (...args: unknown[]): unknown => {
      const first = args[0];
      const raw =
        typeof first === 'string'
          ? first
          : typeof first === 'object' && first !== null && 'text' in first
            ? String((first as { text: unknown }).text)
            : '?';
      const stat = this.statFor(raw);
      stat.count += 1;
      this.total += 1;
      const started = performance.now();
      const done = () => {
        stat.totalMs += performance.now() - started;
      };
      // pool.query() calls client.query with a callback; other callers use the promise.
      const last = args.length - 1;
      const callback = args[last];
      if (typeof callback === 'function') {
        args[last] = (...cbArgs: unknown[]) => {
          done();
          return (callback as (...a: unknown[]) => unknown)(...cbArgs);
        };
      }
      const result = original(...args);
      if (result instanceof Promise) result.then(done, done);
      return result;
    };
    (client as unknown as { query: unknown }).query = wrapped;
  }

  private statFor(raw: string): StatementStat {
    const text = raw.replace(/\s+/g, ' ').trim().slice(0, 120);
    let stat = this.byText.get(text);
    if (!stat) {
      stat = { text, count: 0, totalMs: 0 };
      this.byText.set(text, stat);
    }
    return stat;
  }

  /** Every statement text seen, most frequent first. */
  snapshot(): StatementStat[] {
    return [...this.byText.values()].map((s) => ({ ...s })).sort((a, b) => b.count - a.count);
  }
}

/** A pg Pool whose clients are counted by `counter`. */
export function countingPool(config: pg.PoolConfig, counter: QueryCounter): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on('connect', (client) => counter.instrument(client));
  // A benchmark pool's idle-client errors are reported, not fatal.
  pool.on('error', (error) => console.error(`bench pool: ${error.message}`));
  return pool;
}
