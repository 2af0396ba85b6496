/**
 * "Anything new anywhere?" for many databases on one PostgreSQL server, in one query: every
 * `intervalMs` one connection reads a signature of the server's pg_stat_database (one row)
 * and, when it moved, the served databases' tup_inserted, and wakes those whose count moved
 * (readActivity). Enqueues insert rows; a worker's own claims, reports
 * and heartbeats only update them, so a drained tenant stays quiet. This replaces a poll per
 * idle database (a connection and a transaction each) with one statement per server.
 *
 * The statistics reach the view when the inserting backend flushes them: at once when its
 * last flush is a second old or more, otherwise within about 10 s (PostgreSQL's idle flush).
 * A database the view does not list (track_counts off, a PgBouncer alias whose server name
 * differs and could not be learnt) is reported unwatched, and its fetcher polls as before.
 *
 * A database joins with its own count when its start read one (in the round trip of its
 * schema check): any count read before its first claim is a baseline (an insert it counts
 * committed before that claim, which finds its rows; one after moves the count), so a
 * live watch takes it without a reading. Before, every start asked for a reading begun
 * after it joined: at 1,000 tenants the watch read the view about 55 times a second, back
 * to back, while databases started (each reading computes every database's row on the
 * server), and each start waited for one.
 *
 * Under a connection budget the watch's connection takes one of the listener permits (at
 * most a quarter of the budget): while none is free its databases are reported unwatched
 * and poll, and each reading tries again. It never waits for a permit: it would keep it for
 * good, and its databases' first claims wait for its first reading while their pools hold
 * the other permits — with a budget under 4, or more servers than permits, nothing moved.
 */
import pg from 'pg';

import type { ConnectionBudget } from './budget.js';

/** How often the watch reads the statistics. */
export const ACTIVITY_WATCH_INTERVAL_MS = 500;

/** One watched database. */
export interface ActivityWatcher {
  /** The server's own name of the database (current_database()). */
  readonly datname: string;
  /** How to connect to it (the watch connects to one of the databases it watches). */
  readonly config: pg.ClientConfig;
  /** New rows appeared: work may be waiting. */
  wake(): void;
  /** Whether the statistics cover this database (false: poll instead). */
  watched(covered: boolean): void;
  /**
   * Rows the worker itself inserted here and not yet seen in the statistics (its
   * registration): that many new rows wake nobody. The watch counts them down.
   */
  ownInserts: number;
}

/** The watch of one server, shared by every served database on it. */
export class ActivityWatch {
  private client: pg.Client | null = null;
  /** The watcher whose database the connection is to: when it goes, so does the connection. */
  private host: ActivityWatcher | null = null;
  /** Holds one of the budget's listener permits (kept until close()). */
  private permit = false;
  private readonly watchers = new Set<ActivityWatcher>();
  /** datname → tup_inserted last seen (text: a bigint), for the watched databases. */
  private readonly seen = new Map<string, string>();
  /** The server's activity signature at the last reading (see readActivity). */
  private signature: string | null = null;
  /** The next reading must read every database's count (a watcher has no baseline yet). */
  private dirty = true;
  /** The watched databases' names as a text[] literal, built again after a change (null). */
  private names: string | null = null;
  /** The names in that literal: a reading counts only these (see tick). */
  private asked = new Set<string>();
  /** The last reading found the server counting (track_counts) on a connection still open. */
  private counting = false;
  /** Waiting for a reading taken after they asked (see firstLook). */
  private looks: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private again = false;
  private closed = false;

  constructor(
    private readonly budget: ConnectionBudget | null,
    private readonly onError: (error: Error) => void,
    private readonly intervalMs = ACTIVITY_WATCH_INTERVAL_MS,
  ) {
    // Taken at once if free, before the databases starting now take listener permits.
    this.permit = budget?.tryAcquireListener() ?? false;
  }

  /** Number of databases watched. */
  get size(): number {
    return this.watchers.size;
  }

  /**
   * Starts watching a database; returns the function that stops. Await
   * firstLook(datname) before the database's first claim: an insert after its baseline
   * wakes it, one before it is found by that claim, so none falls between the two.
   * `inserted` is its tup_inserted read by the caller (text: a bigint; null: not read):
   * taken as its baseline at once while the watch is live (the watcher is told it is
   * watched), else the next reading sets one.
   */
  add(watcher: ActivityWatcher, inserted: string | null = null): () => void {
    // Closed (the worker stopped while this database was starting): a new timer would keep
    // the process alive for good.
    if (this.closed) return () => {};
    this.watchers.add(watcher);
    this.names = null;
    if (this.live && inserted !== null && /^\d{1,19}$/.test(inserted)) {
      // The lower of two baselines: a count only grows, so the earlier one misses nothing.
      const before = this.seen.get(watcher.datname);
      if (before === undefined || BigInt(inserted) < BigInt(before)) this.seen.set(watcher.datname, inserted);
    }
    // A baseline held (its own, or another watcher's of the same database): watched now.
    if (this.hasBaseline(watcher.datname)) watcher.watched(true);
    // The next reading reads every watched database's count, whatever the signature: it
    // sets the baselines still missing, and finds a database the view does not list (a
    // PgBouncer host in front of several servers), which then polls.
    this.dirty = true;
    this.timer ??= setInterval(() => this.request(), this.intervalMs);
    return () => {
      this.watchers.delete(watcher);
      this.names = null;
      if (![...this.watchers].some((w) => w.datname === watcher.datname)) this.seen.delete(watcher.datname);
      // A reading in flight shuts down when it ends (see tick): ended under it, its
      // connection failed the reading, which was reported as an error.
      if ((this.watchers.size === 0 || this.host === watcher) && !this.ticking) void this.shutdown();
    };
  }

  /**
   * A listener permit came free: taken now if this watch has none and databases to watch
   * (ahead of a database's listener, as one watch wakes every database of its server), and
   * a reading starts. Returns whether it took the permit.
   */
  takeFreePermit(): boolean {
    if (!this.budget || this.permit || this.closed || this.watchers.size === 0) return false;
    if (!this.budget.tryAcquireListener()) return false;
    this.permit = true;
    this.request();
    return true;
  }

  /** Drops every count seen: the next reading is a full one, and sets the baselines again. */
  private forget(): void {
    this.seen.clear();
    this.signature = null;
    this.counting = false;
    this.dirty = true;
  }

  /** Connected, and the last reading (or the baseline it set) stands: counts can be taken as baselines. */
  private get live(): boolean {
    return this.client !== null && this.counting && this.signature !== null;
  }

  /** The watch is live and holds a count of `datname` read before now. */
  private hasBaseline(datname: string): boolean {
    return this.live && this.seen.has(datname);
  }

  /**
   * Resolves once a reading that began after this call has completed (or failed); at once
   * when `datname` is given and the watch holds a baseline for it (see add).
   */
  firstLook(datname?: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (datname !== undefined && this.hasBaseline(datname)) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.looks.push(resolve));
    this.request();
    return done;
  }

  private request(): void {
    if (this.ticking) this.again = true;
    else void this.tick();
  }

  /**
   * A connection to one of the watched databases (pg_stat_database lists them all); null
   * when no listener permit is free (the databases poll meanwhile).
   */
  private async connection(): Promise<pg.Client | null> {
    if (this.client) return this.client;
    const host = this.watchers.values().next().value as ActivityWatcher;
    // The watch keeps one listener permit for its whole life, taken when it was made (before
    // the databases starting then took theirs) or at a reading that found one free.
    if (this.budget && !this.permit) {
      if (!this.budget.tryAcquireListener()) return null;
      this.permit = true;
    }
    const client = new pg.Client({ ...host.config, connectionTimeoutMillis: 10_000 });
    client.on('error', () => {}); // reported by the next failing query
    client.once('end', () => {
      if (this.client === client) this.client = null;
    });
    await client.connect();
    this.client = client;
    this.host = host;
    return client;
  }

  private async tick(): Promise<void> {
    if (this.closed || this.watchers.size === 0) {
      for (const resolve of this.looks.splice(0)) resolve();
      return;
    }
    this.ticking = true;
    const looks = this.looks.splice(0);
    try {
      const client = await this.connection();
      if (!client) {
        // No permit: the databases poll (their first claim does not wait for a reading).
        for (const w of this.watchers) w.watched(false);
        this.forget();
        return;
      }
      // A watcher added from here on makes the next reading a full one again.
      const full = this.dirty;
      this.dirty = false;
      if (this.names === null) {
        this.asked = new Set([...this.watchers].map((w) => w.datname));
        this.names = textArrayLiteral([...this.asked]);
      }
      const asked = this.asked;
      const reading = await readActivity(client, full ? null : this.signature, this.names);
      this.signature = reading.signature;
      this.counting = reading.counting;
      // Nothing moved anywhere on the server since the last full reading, and no database
      // joined since: every count is as seen, and every watcher as it was told.
      if (reading.inserted === null) return;
      const now = reading.counting ? reading.inserted : new Map<string, string>();
      for (const w of this.watchers) {
        // Joined while this reading ran, which did not ask for it: its baseline stands.
        if (!asked.has(w.datname)) continue;
        const inserted = now.get(w.datname);
        w.watched(inserted !== undefined);
        const before = this.seen.get(w.datname);
        if (inserted !== undefined && before !== undefined && inserted !== before) {
          const added = Number(BigInt(inserted) - BigInt(before));
          const own = Math.min(w.ownInserts, Math.max(added, 0));
          w.ownInserts -= own;
          if (added !== own) w.wake();
        }
      }
      for (const name of asked) {
        const inserted = now.get(name);
        if (inserted === undefined) this.seen.delete(name);
        else this.seen.set(name, inserted);
      }
    } catch (error) {
      // Meanwhile the databases poll; the connection is made again on the next tick.
      for (const w of this.watchers) w.watched(false);
      this.forget();
      const client = this.client;
      this.client = null;
      this.host = null;
      await client?.end().catch(() => {});
      if (!this.closed) this.onError(error as Error);
    } finally {
      this.ticking = false;
      for (const resolve of looks) resolve();
      // Its database (or every database) left, or close(), while this reading ran: drop
      // what it connected.
      if (this.closed || this.watchers.size === 0 || (this.host && !this.watchers.has(this.host)))
        void this.shutdown();
      if (this.again) {
        this.again = false;
        this.request();
      }
    }
  }

  /**
   * Closes the connection; with no database left also stops the timer (add() starts it
   * again), else the next reading connects to a database still watched.
   */
  private async shutdown(): Promise<void> {
    if (this.watchers.size === 0 || this.closed) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    const client = this.client;
    this.client = null;
    this.host = null;
    await client?.end().catch(() => {});
  }

  /** Stops for good, giving the permit back. */
  async close(): Promise<void> {
    this.closed = true;
    for (const resolve of this.looks.splice(0)) resolve();
    await this.shutdown();
    if (this.permit) {
      this.permit = false;
      this.budget?.release(true);
    }
  }
}

/** One reading of a server's statistics (see readActivity). */
export interface ActivityReading {
  /**
   * Moves when any database's insert count moves, a database is created, dropped or has
   * its statistics reset, or track_counts is switched.
   */
  signature: string;
  /** Whether the server counts (track_counts): when not, no database is watched. */
  counting: boolean;
  /** datname → tup_inserted (text: a bigint) of the named databases; null when the signature was `since`. */
  inserted: Map<string, string> | null;
}

/**
 * Reads the server's activity signature, and the insert counts of the databases named in
 * `names` (a text[] literal, see textArrayLiteral) unless the signature is still `since`.
 * One statement, so one statistics snapshot: a count read with a signature was read with
 * it. An idle server costs one row per reading, however many databases it holds (the
 * per-database rows of 300 tenants twice a second were a fifth of an idle worker's busy
 * time); the names travel as one prepared string, not an array built for each reading.
 */
export async function readActivity(
  client: pg.ClientBase,
  since: string | null,
  names: string,
): Promise<ActivityReading> {
  const { rows } = await client.query<{ datname: string | null; inserted: string; counting: boolean | null }>(
    // Every name qualified: a watched database's owner may put look-alikes before
    // pg_catalog in its search_path, and this connection serves every tenant. The sum of
    // the oids moves when a database is dropped and another created; stats_reset when
    // one's counts are reset (a sum could otherwise come out where it was).
    `WITH s AS MATERIALIZED (
       SELECT datid, datname, tup_inserted, stats_reset FROM pg_catalog.pg_stat_database
        WHERE datname IS NOT NULL),
     sig AS (
       SELECT pg_catalog.concat_ws('/', pg_catalog.sum(tup_inserted), pg_catalog.count(*),
                pg_catalog.sum(datid::pg_catalog.int8), pg_catalog.max(stats_reset),
                pg_catalog.current_setting('track_counts')) AS v FROM s)
     SELECT NULL::pg_catalog.text AS datname, sig.v AS inserted,
            pg_catalog.current_setting('track_counts')::pg_catalog.bool AS counting
       FROM sig
     UNION ALL
     SELECT s.datname, s.tup_inserted::pg_catalog.text, NULL FROM s, sig
      WHERE ($1::pg_catalog.text IS NULL OR sig.v OPERATOR(pg_catalog.<>) $1::pg_catalog.text)
        AND s.datname OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.text[])`,
    [since, names],
  );
  const head = rows.find((r) => r.datname === null);
  if (!head) throw new Error('the activity reading returned no signature row');
  const counting = head.counting === true;
  if (since !== null && head.inserted === since)
    return { signature: head.inserted, counting, inserted: null };
  const inserted = new Map<string, string>();
  for (const r of rows) if (r.datname !== null) inserted.set(r.datname, r.inserted);
  return { signature: head.inserted, counting, inserted };
}

/** `values` as a PostgreSQL text[] literal: each element double-quoted, `"` and `\` escaped. */
export function textArrayLiteral(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;
}

/** The server a connection string points at (`host:port`), or null when it cannot tell. */
export function serverKey(config: pg.ClientConfig): string | null {
  const cs = config.connectionString;
  if (cs) {
    try {
      const url = new URL(cs);
      if (!url.hostname || url.hostname.includes(',')) return null;
      return `${url.hostname}:${url.port || '5432'}`;
    } catch {
      return null;
    }
  }
  if (typeof config.host === 'string') return `${config.host}:${config.port ?? 5432}`;
  return null;
}
