/**
 * One LISTEN connection that makes itself again after it is lost, LISTENing on its
 * channels again, until it is closed. Written here rather than taken from pg-listen, whose
 * reconnect loop ignored close() (a process closed during an outage kept trying, stayed
 * alive, and held a connection once the server was back) and sent its re-LISTENs all at
 * once (a deprecation in pg 8, refused by pg 9). Statements go out one at a time.
 */
import pg from 'pg';

/** How a ListenConnection tells its owner what happens. */
export interface ListenConnectionEvents {
  notification(channel: string, payload: string): void;
  /** Connected again after a loss (not on the first connect): notifications meanwhile were lost. */
  reconnected(): void;
  /** The first failed attempt after a loss (it keeps trying, about every second, until closed). */
  error(error: Error): void;
}

/** Delay before reconnect attempt `attempt` (0-based): 100 ms doubling, at most 1 s. */
function retryDelayMs(attempt: number): number {
  return Math.min(1000, 100 * 2 ** Math.min(attempt, 4));
}

/** How often a quiet connection is checked with a statement (a dead peer is only noticed by writing). */
const CHECK_INTERVAL_MS = 10_000;

/** How long ending a connection may take before its socket is dropped instead. */
const END_WAIT_MS = 2000;

export class ListenConnection {
  private client: pg.Client | undefined;
  private readonly channels = new Set<string>();
  private closed = false;
  /** The statements of the current client, one after another. */
  private chain: Promise<unknown> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** A reconnect is under way (scheduled or connecting). */
  private reconnecting = false;
  /** A connection being made (or LISTENing again), not adopted yet: close() ends it too. */
  private pending: pg.Client | undefined;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly events: ListenConnectionEvents,
    private readonly options: { checkIntervalMs?: number } = {},
  ) {}

  /** Makes the first connection; rejects when it cannot be made (nothing is retried then). */
  async connect(): Promise<void> {
    const client = await this.open();
    if (this.closed) {
      await this.discard(client);
      throw new Error('the LISTEN connection was closed while it was being made');
    }
    this.adopt(client);
  }

  /** LISTENs on `channel`, now and after every reconnect. */
  async listen(channel: string): Promise<void> {
    this.channels.add(channel);
    try {
      await this.run(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      this.channels.delete(channel);
      throw error;
    }
  }

  /** Stops listening on `channel`. */
  async unlisten(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    await this.run(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
  }

  /** Closes the connection and stops every reconnect attempt, for good. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.checkTimer);
    const client = this.client;
    this.client = undefined;
    // An attempt under way would otherwise go on (a connect without a timeout waits for
    // the operating system's, minutes) after close() resolved.
    const pending = this.pending;
    this.pending = undefined;
    await Promise.all([client && this.discard(client), pending && this.discard(pending)]);
  }

  /** Runs `sql` on the current client after the statements before it. */
  private run(sql: string): Promise<unknown> {
    const client = this.client;
    if (!client)
      return Promise.reject(new Error('the LISTEN connection is not open (being made again after a loss)'));
    const next = this.chain.then(() => client.query(sql));
    this.chain = next.catch(() => {});
    return next;
  }

  private async open(): Promise<pg.Client> {
    const client = new pg.Client({ ...this.config, keepAlive: true });
    // Until adopted, an error (the connect's own) is answered by connect() rejecting.
    client.on('error', () => {});
    this.pending = client;
    try {
      await client.connect();
    } catch (error) {
      await this.discard(client);
      throw error;
    }
    return client;
  }

  private adopt(client: pg.Client): void {
    if (this.pending === client) this.pending = undefined;
    this.client = client;
    this.chain = Promise.resolve();
    client.on('notification', (n) => {
      if (this.client === client) this.events.notification(n.channel, n.payload ?? '');
    });
    const lost = () => this.lost(client);
    client.on('error', lost);
    client.on('end', lost);
    clearInterval(this.checkTimer);
    // A check still unanswered at the next one: the connection neither answers nor closes
    // (a silent network drop), and would leave the listener deaf for good.
    let checking = false;
    this.checkTimer = setInterval(() => {
      if (checking) {
        lost();
        return;
      }
      checking = true;
      this.run('SELECT pg_backend_pid()').then(() => (checking = false), lost);
    }, this.options.checkIntervalMs ?? CHECK_INTERVAL_MS);
    // Keeps no process alive by itself: the owner's own work does.
    this.checkTimer.unref();
  }

  /** `client` failed or ended: drop it and make a new one, unless closed. */
  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    clearInterval(this.checkTimer);
    void this.discard(client);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnecting) return;
    this.reconnecting = true;
    this.retryTimer = setTimeout(() => void this.reconnect(), retryDelayMs(this.attempt));
  }

  private async reconnect(): Promise<void> {
    this.attempt++;
    let client: pg.Client | undefined;
    try {
      client = await this.open();
      // LISTEN again, one channel at a time, before anything else uses it.
      for (const channel of [...this.channels]) {
        if (this.closed) break;
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
    } catch (error) {
      if (client) await this.discard(client);
      if (this.attempt === 1 && !this.closed)
        this.events.error(
          new Error(
            `the LISTEN connection was lost and could not be made again yet (trying again about every second): ${(error as Error).message}`,
            { cause: error },
          ),
        );
      this.reconnecting = false;
      this.scheduleReconnect();
      return;
    }
    this.reconnecting = false;
    if (this.closed) {
      await this.discard(client);
      return;
    }
    this.attempt = 0;
    this.adopt(client);
    this.events.reconnected();
  }

  private async discard(client: pg.Client): Promise<void> {
    if (this.pending === client) this.pending = undefined;
    client.removeAllListeners('notification');
    client.removeAllListeners('end');
    client.removeAllListeners('error');
    client.on('error', () => {});
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      client.end().then(
        () => true,
        () => true,
      ),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), END_WAIT_MS))),
    ]);
    clearTimeout(timer);
    // A connection that does not answer never confirms its end: drop its socket (pg keeps
    // it as connection.stream) rather than keep it, and close(), waiting.
    if (!ended)
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
}
