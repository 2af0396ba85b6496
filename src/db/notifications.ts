/**
 * One LISTEN connection (reconnecting until closed) to one database, shared by the
 * subscriptions made through it: a database worker's wake-ups and cancel hints, or a
 * Stepping client's waitForJob calls. Opened on the first subscription.
 */
import type pg from 'pg';

import { SteppingError } from '../errors.js';
import { connectionConfig } from './connection-config.js';
import { ListenConnection } from './listen-connection.js';

type Handler = (payload: string) => void;
type ReconnectHandler = () => void;

/** Subscriptions to NOTIFY channels over one connection, opened lazily. */
export class NotificationHub {
  private subscriber: ListenConnection | undefined;
  private connecting: Promise<ListenConnection> | undefined;
  /**
   * Closed for good: a subscribe that comes after close() (a start still under way when
   * its database was removed) must not open a LISTEN connection nothing would ever close.
   */
  private closed = false;
  /**
   * Per channel: its handlers, and its LISTEN (made by the first subscriber). Every
   * subscriber awaits that LISTEN, not only the first: a caller that reads state once
   * subscribed must not miss a NOTIFY sent before the LISTEN took effect.
   */
  private readonly channels = new Map<string, { handlers: Set<Handler>; listening: Promise<void> }>();
  private readonly reconnectHandlers = new Set<ReconnectHandler>();
  private readonly errorHandlers = new Set<(error: Error) => void>();

  /** `source` supplies the connection settings (a pool's options or a client config). */
  constructor(private readonly source: pg.Pool | pg.ClientConfig) {}

  private config(): pg.ClientConfig {
    return connectionConfig(this.source);
  }

  private async connect(): Promise<ListenConnection> {
    if (this.closed) throw new SteppingError('stepping: the LISTEN connection was closed');
    if (this.subscriber) return this.subscriber;
    this.connecting ??= (async () => {
      const subscriber = new ListenConnection(this.config(), {
        notification: (channel, payload) => {
          const entry = this.channels.get(channel);
          if (entry) for (const h of entry.handlers) h(payload);
        },
        // Notifications sent while it was away are lost: tell subscribers to re-check.
        reconnected: () => {
          for (const h of this.reconnectHandlers) h();
        },
        error: (error) => {
          for (const h of this.errorHandlers) h(error);
        },
      });
      try {
        await subscriber.connect();
      } catch (error) {
        this.connecting = undefined;
        await subscriber.close();
        throw error;
      }
      if (this.closed) {
        // close() came while this connection was being made.
        await subscriber.close();
        throw new SteppingError('stepping: the LISTEN connection was closed');
      }
      this.subscriber = subscriber;
      return subscriber;
    })();
    return await this.connecting;
  }

  /** Reports listener errors (e.g. reconnection given up). */
  onError(handler: (error: Error) => void): void {
    this.errorHandlers.add(handler);
  }

  /**
   * Listens on `channel`; `onReconnect` runs after the connection was re-established (and
   * so may have missed notifications). Resolves once the LISTEN is in effect (also for a
   * second subscriber while the first one's LISTEN is on its way), with the unsubscribe
   * function; rejects when that LISTEN failed.
   */
  async subscribe(
    channel: string,
    handler: Handler,
    onReconnect?: ReconnectHandler,
  ): Promise<() => Promise<void>> {
    const subscriber = await this.connect();
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = {
        handlers: new Set(),
        listening: subscriber.listen(channel),
      };
      this.channels.set(channel, entry);
    }
    const subscription = entry;
    // Added before the LISTEN is awaited, so that another subscriber leaving meanwhile
    // does not UNLISTEN the channel under this one.
    subscription.handlers.add(handler);
    if (onReconnect) this.reconnectHandlers.add(onReconnect);
    let unsubscribed = false;
    const unsubscribe = async () => {
      if (unsubscribed) return;
      unsubscribed = true;
      subscription.handlers.delete(handler);
      if (onReconnect) this.reconnectHandlers.delete(onReconnect);
      if (subscription.handlers.size === 0 && this.channels.get(channel) === subscription) {
        this.channels.delete(channel);
        await this.subscriber?.unlisten(channel);
      }
    };
    try {
      await subscription.listening;
    } catch (error) {
      // The last one out removes the channel, so that a later subscriber tries LISTEN again.
      await unsubscribe();
      throw error;
    }
    return unsubscribe;
  }

  /** Closes the connection for good: later subscribes are refused. */
  async close(): Promise<void> {
    this.closed = true;
    const subscriber = this.subscriber ?? (await this.connecting?.catch(() => undefined));
    this.subscriber = undefined;
    this.connecting = undefined;
    this.channels.clear();
    this.reconnectHandlers.clear();
    await subscriber?.close();
  }
}
