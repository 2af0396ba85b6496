/**
 * Counts the SQL statements a library sends, in the driver: pg.Client.prototype.query is
 * wrapped once in the worker child, so every call on every connection any library opens
 * (its own pools, LISTEN connections, BEGIN/COMMIT, prepared statements) is counted the
 * same way, grouped by text, with the round-trip time seen by the client. The libraries
 * keep their own pools, made from the connection string as a user's would be.
 * pg_stat_statements is not loaded on the servers the benchmark uses, so this is the
 * method behind "statements per job". Its cost was measured (docs/benchmarks.md): within
 * run-to-run noise.
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

type QueryFn = (...args: unknown[]) => unknown;

/** Accumulates statement counts over every pg.Client of the process. */
export class QueryCounter {
  private readonly byText = new Map<string, StatementStat>();
  private readonly ignored = new WeakSet<object>();
  total = 0;
  private original: QueryFn | null = null;

  /** Wraps pg.Client.prototype.query; every client made afterwards or before is counted. */
  install(): void {
    if (this.original) return;
    const proto = pg.Client.prototype as unknown as { query: QueryFn };
    const original = proto.query;
    this.original = original;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const counter = this;
    proto.query = function (this: object, ...args: unknown[]): unknown {
      if (counter.ignored.has(this)) return original.apply(this, args);
      const first = args[0];
      const raw =
        typeof first === 'string'
          ? first
          : typeof first === 'object' && first !== null && 'text' in first
            ? String((first as { text: unknown }).text)
            : '?';
      const stat = counter.statFor(raw);
      stat.count += 1;
      counter.total += 1;
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
          return (callback as QueryFn)(...cbArgs);
        };
      }
      const result = original.apply(this, args);
      if (result instanceof Promise) result.then(done, done);
      return result;
    };
  }

  /** Leaves this client's statements uncounted (the benchmark's own probe). */
  ignore(client: pg.Client): void {
    this.ignored.add(client);
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

  /** Forgets what was counted so far (statements of start-up). */
  reset(): void {
    this.byText.clear();
    this.total = 0;
  }

  /** Every statement text seen, most frequent first. */
  snapshot(): StatementStat[] {
    return [...this.byText.values()].map((s) => ({ ...s })).sort((a, b) => b.count - a.count);
  }
}
