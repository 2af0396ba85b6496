/**
 * Server-sent events for one database: open pages hold an EventSource here and re-fetch
 * themselves on each `change` event. Changes are learnt from NOTIFY on `<schema>_ready`
 * and `<schema>_done` (hints only: the event carries no data, the page re-reads the
 * views) and from a slow poll, which also covers what sends no NOTIFY (a failed attempt
 * waiting to retry) and a LISTEN that does not work (PgBouncer in transaction mode).
 * One LISTEN connection per database, opened with the first open page and closed a while
 * after the last one left.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import type pg from 'pg';

import { NotificationHub } from '../db/notifications.js';
import { setSecurityHeaders } from './security.js';

/** Timing of live updates. */
export interface LiveTiming {
  /** At most one NOTIFY-driven event per this many ms (a busy queue notifies constantly). */
  minIntervalMs: number;
  /** An event every this many ms regardless (the slow poll; also keeps proxies from closing the stream). */
  pollMs: number;
  /** The LISTEN connection is closed this long after the last page left. */
  idleCloseMs: number;
}

/** Defaults of LiveTiming. */
export const LIVE_TIMING: LiveTiming = { minIntervalMs: 1000, pollMs: 10_000, idleCloseMs: 30_000 };

/** The events of one database's pages. */
export class LiveFeed {
  private readonly clients = new Set<ServerResponse>();
  private hub: NotificationHub | undefined;
  private listening: Promise<void> | undefined;
  private throttle: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  private lastSent = 0;
  private closed = false;
  private warned = false;

  constructor(
    private readonly pool: () => pg.Pool,
    private readonly channels: readonly string[],
    private readonly timing: LiveTiming,
    private readonly warn: (message: string) => void,
  ) {}

  /** Open event streams. */
  get size(): number {
    return this.clients.size;
  }

  /** Answers `req` with an event stream that stays open until the page or the server goes. */
  attach(req: IncomingMessage, res: ServerResponse): void {
    setSecurityHeaders(res, null);
    if (this.closed) {
      // Shutting down: a stream opened now would hold the server open until the grace ends.
      res.writeHead(503, { 'Content-Length': 0 }).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    // The reconnect delay after a dropped stream, and a first line so the page sees it open.
    res.write('retry: 3000\n: connected\n\n');
    this.clients.add(res);
    const leave = () => this.detach(res);
    req.on('close', leave);
    res.on('close', leave);
    res.on('error', leave);
    clearTimeout(this.idle);
    this.idle = undefined;
    this.poll ??= setInterval(() => this.broadcast('poll'), this.timing.pollMs);
    this.listening ??= this.listen();
  }

  private detach(res: ServerResponse): void {
    if (!this.clients.delete(res) || this.clients.size > 0 || this.closed) return;
    clearInterval(this.poll);
    this.poll = undefined;
    this.idle ??= setTimeout(() => {
      this.idle = undefined;
      void this.stopListening();
    }, this.timing.idleCloseMs);
  }

  private async listen(): Promise<void> {
    const hub = new NotificationHub(this.pool());
    this.hub = hub;
    hub.onError((error) => this.warnOnce(`live updates: LISTEN failed (${error.message}); polling instead`));
    try {
      for (const channel of this.channels) {
        // A reconnect may have missed notifications: tell the pages to re-read.
        await hub.subscribe(
          channel,
          () => this.changed(),
          () => this.changed(),
        );
      }
    } catch (error) {
      await hub.close();
      // Stopped meanwhile (the last page left, or shutdown): nothing went wrong.
      if (this.hub !== hub) return;
      this.hub = undefined;
      this.listening = undefined;
      this.warnOnce(`live updates: cannot LISTEN (${(error as Error).message}); polling instead`);
    }
  }

  private async stopListening(): Promise<void> {
    const hub = this.hub;
    this.hub = undefined;
    this.listening = undefined;
    await hub?.close();
  }

  private warnOnce(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.warn(message);
  }

  /** A hint that something changed: sends an event now, or once the minimum interval has passed. */
  changed(): void {
    if (this.throttle !== undefined || this.closed) return;
    const wait = Math.max(0, this.lastSent + this.timing.minIntervalMs - Date.now());
    this.throttle = setTimeout(() => {
      this.throttle = undefined;
      this.broadcast('notify');
    }, wait);
  }

  private broadcast(reason: 'notify' | 'poll'): void {
    this.lastSent = Date.now();
    for (const res of this.clients) res.write(`event: change\ndata: ${reason}\n\n`);
  }

  /** Ends every stream and the LISTEN connection. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.throttle);
    clearInterval(this.poll);
    clearTimeout(this.idle);
    for (const res of this.clients) res.end();
    this.clients.clear();
    await this.listening?.catch(() => {});
    await this.stopListening();
  }
}
