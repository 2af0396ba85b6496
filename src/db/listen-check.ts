/**
 * Does LISTEN work on this connection? Behind PgBouncer in transaction pooling mode it
 * does not, and silently: the LISTEN runs on whichever server connection that statement
 * borrowed, which goes back to the pool (and to other clients) right after, so the
 * listener never hears a NOTIFY. The only reliable test is to try: LISTEN on a private
 * channel, NOTIFY a random token through the ordinary pool, and wait for it.
 */
import { randomBytes } from 'node:crypto';

import type pg from 'pg';

import { connectionConfig } from './connection-config.js';
import type { NotificationHub } from './notifications.js';
import type { Queryable } from './queryable.js';

/**
 * How long the probe's NOTIFY may take to arrive before LISTEN is taken to be broken.
 * Generous: waiting costs nothing (callers poll meanwhile), a false "broken" costs
 * polling for the client's lifetime.
 */
export const LISTEN_PROBE_TIMEOUT_MS = 10_000;

/** First wait before a failed probe is tried again; doubles after each failure up to LISTEN_REPROBE_MAX_MS. */
export const LISTEN_REPROBE_FIRST_MS = 5_000;
/** Longest wait between probes while LISTEN seems not to work. */
export const LISTEN_REPROBE_MAX_MS = 300_000;

/** Options of a ListenCheck. */
export interface ListenCheckOptions {
  /** Default LISTEN_PROBE_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Called once, when the first probe did not arrive, with a message for people (what, why, what to do). */
  onUnavailable?: (message: string) => void;
  /** Names the listening connection in that message, e.g. `127.0.0.1:6432/app`. */
  describe?: string;
  /** Default LISTEN_REPROBE_FIRST_MS. */
  reprobeFirstMs?: number;
}

/**
 * Probes whether NOTIFYs reach a hub's connection. A yes is kept. A no is kept until the
 * next probe is due (5 s, doubling to 5 min): a probe can be lost for reasons that pass
 * (the listener reconnecting at that moment, an event loop blocked past the timeout, a
 * probe that could not be sent), and a lost one must not mean polling for good.
 */
export class ListenCheck {
  private answer: Promise<boolean> | undefined;
  private failures = 0;
  private retryAt = 0;
  private settled: boolean | undefined;

  /**
   * `hub` listens; `notifier` sends the probe (the pool ordinary statements use, so the
   * probe travels the same way the engine's own NOTIFYs do); `channel` is private to
   * the probe (e.g. `<schema>_probe`).
   */
  constructor(
    private readonly hub: NotificationHub,
    private readonly notifier: Queryable,
    private readonly channel: string,
    private readonly options: ListenCheckOptions = {},
  ) {}

  /**
   * True once a probe arrived; false when the last one did not in time (or could not be
   * sent). Probes on the first call, and again on a call once a failed probe's retry is due.
   */
  delivers(): Promise<boolean> {
    if (this.answer === undefined || (this.settled === false && Date.now() >= this.retryAt)) {
      this.settled = undefined;
      this.answer = this.probe().then((ok) => {
        this.settled = ok;
        if (!ok) {
          this.failures += 1;
          const first = this.options.reprobeFirstMs ?? LISTEN_REPROBE_FIRST_MS;
          this.retryAt = Date.now() + Math.min(first * 2 ** (this.failures - 1), LISTEN_REPROBE_MAX_MS);
        }
        return ok;
      });
    }
    return this.answer;
  }

  /** Milliseconds until delivers() probes again: null while a probe runs or once one arrived. */
  reprobeInMs(): number | null {
    if (this.settled !== false) return null;
    return Math.max(0, this.retryAt - Date.now());
  }

  private async probe(): Promise<boolean> {
    const token = randomBytes(8).toString('hex');
    let arrived: () => void = () => {};
    const heard = new Promise<void>((resolve) => (arrived = resolve));
    let unsubscribe: (() => Promise<void>) | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      unsubscribe = await this.hub.subscribe(this.channel, (payload) => {
        if (payload === token) arrived();
      });
      await this.notifier.query('SELECT pg_catalog.pg_notify($1, $2)', [this.channel, token]);
      const timeoutMs = this.options.timeoutMs ?? LISTEN_PROBE_TIMEOUT_MS;
      const ok = await Promise.race([
        heard.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
          // Never keeps a process alive on its own.
          timer.unref();
        }),
      ]);
      if (!ok) this.unavailable(`no probe NOTIFY arrived within ${timeoutMs} ms`);
      return ok;
    } catch (error) {
      this.unavailable(`the probe failed: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    } finally {
      clearTimeout(timer);
      await unsubscribe?.().catch(() => {});
    }
  }

  /** Tells once: later failed probes repeat what was said. */
  private unavailable(reason: string): void {
    if (this.failures === 0) this.options.onUnavailable?.(this.message(reason));
  }

  private message(reason: string): string {
    const where = this.options.describe ? ` on ${this.options.describe}` : '';
    return (
      `stepping: LISTEN does not work${where} (${reason}); this happens behind PgBouncer in transaction ` +
      `pooling mode. Falling back to polling (LISTEN is probed again every few minutes). Set listenConnectionString to a direct server URL to be woken by NOTIFY.`
    );
  }
}

/**
 * `host:port/database` of a pool's or a client config's target, for messages: never
 * credentials. Unknown parts are left out.
 */
export function describeConnection(source: pg.Pool | pg.ClientConfig): string {
  const config = connectionConfig(source);
  let host = config.host;
  let port = config.port === undefined ? undefined : String(config.port);
  let database = config.database;
  if (config.connectionString) {
    try {
      const url = new URL(config.connectionString);
      host ??= url.hostname || undefined;
      port ??= url.port || undefined;
      database ??= decodeURIComponent(url.pathname.slice(1)) || undefined;
    } catch {
      // Not a URL (e.g. a libpq key=value string): say nothing rather than risk a password.
    }
  }
  return `${host ?? 'localhost'}${port ? `:${port}` : ''}${database ? `/${database}` : ''}`;
}
