import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import { ListenConnection } from '../src/db/listen-connection.js';
import { start, trackChildren, within } from './fixtures/processes.js';
import { eventually, setup } from './support/harness.js';

const h = await setup(import.meta.url);
trackChildren();

test(
  'a LISTEN connection reconnects with its channels, and once closed while its server is away makes no connection again',
  { timeout: 120_000 },
  async (t) => {
    // Before (pg-listen): close() did not stop a reconnect loop under way, so a worker or
    // client closed during an outage kept trying, kept its process alive, and once the
    // server was back held a LISTEN connection nobody would close. Its re-LISTENs after a
    // reconnect went out all at once, which pg 8 answers with a DeprecationWarning.
    const relay = await switchableRelay(h.url);
    t.after(() => relay.close());
    const child = start('test/fixtures/listen-close.ts', [relay.url], {});
    await eventually(() => child.stdout().includes('subscribed\n'), 30_000, 'the LISTENs');

    // The connection drops and the server is still there: it reconnects, listening again.
    relay.dropConnections();
    await eventually(() => child.stdout().includes('reconnected\n'), 30_000, 'the reconnect');
    await eventually(
      async () => {
        await h.pool.query(`SELECT pg_notify('listen_close_a', 'after')`);
        return child.stdout().includes('heard after\n');
      },
      30_000,
      'a notification after the reconnect',
    );

    // The server goes away: the hub keeps trying until it is closed.
    relay.refuse(true);
    relay.dropConnections();
    const attempts = relay.connections();
    await eventually(() => relay.connections() > attempts, 30_000, 'a reconnect attempt while away');
    child.child.kill('SIGUSR2');
    await eventually(() => child.stdout().includes('closed\n'), 30_000, 'close()');
    const afterClose = relay.connections();
    // The server is back: a closed hub must not connect, and the process must end by itself.
    relay.refuse(false);
    const finished = await within(child.exited, 30_000, 'the process to exit after close()');
    assert.equal(finished.code, 0, finished.stderr);
    assert.equal(relay.connections(), afterClose, 'a connection was made after close()');
    assert.doesNotMatch(finished.stderr, /Warning/);
  },
);

test(
  'a LISTEN connection that stops answering (a silent network drop) is replaced',
  { timeout: 60_000 },
  async (t) => {
    // Before, its liveness check waited for ever on a connection that neither answered nor
    // closed, and the listener stayed deaf.
    const relay = await switchableRelay(h.url);
    t.after(() => relay.close());
    const heard: string[] = [];
    let reconnects = 0;
    const listener = new ListenConnection(
      { connectionString: relay.url },
      {
        notification: (_channel, payload) => heard.push(payload),
        reconnected: () => reconnects++,
        error: () => {},
      },
      { checkIntervalMs: 200 },
    );
    t.after(() => listener.close());
    await listener.connect();
    await listener.listen('listen_frozen');
    const before = relay.connections();
    relay.freeze();
    await eventually(() => reconnects > 0, 30_000, 'the frozen connection to be replaced');
    assert.ok(relay.connections() > before);
    await eventually(
      async () => {
        await h.pool.query(`SELECT pg_notify('listen_frozen', 'again')`);
        return heard.includes('again');
      },
      30_000,
      'a notification on the new connection',
    );
    // Closing one that does not answer does not wait for its answer.
    relay.freeze();
    await within(listener.close(), 20_000, 'close() of a connection that does not answer');
  },
);

test(
  'close() during a reconnect to a server that never answers ends that connection attempt too',
  { timeout: 60_000 },
  async (t) => {
    // Before, the attempt went on after close() resolved (a connect with no timeout waits for
    // the operating system's, minutes), and kept its process alive meanwhile.
    const relay = await switchableRelay(h.url);
    t.after(() => relay.close());
    const listener = new ListenConnection(
      { connectionString: relay.url },
      { notification: () => {}, reconnected: () => {}, error: () => {} },
    );
    t.after(() => listener.close());
    await listener.connect();
    await listener.listen('listen_blackhole');
    relay.blackhole(true);
    const attempts = relay.connections();
    relay.dropConnections();
    await eventually(() => relay.connections() > attempts, 30_000, 'a reconnect attempt');
    await within(listener.close(), 20_000, 'close()');
    await eventually(() => relay.openHeld() === 0, 20_000, 'the attempt to be closed by the client');
  },
);

/**
 * A TCP relay in front of the test server that can drop every connection through it and
 * refuse new ones (closed as soon as they arrive, as a server that went away), counting
 * the connections it was asked for.
 */
async function switchableRelay(target: string): Promise<{
  url: string;
  connections(): number;
  dropConnections(): void;
  refuse(on: boolean): void;
  /** The connections open now stop passing data either way, without closing. */
  freeze(): void;
  /** New connections are accepted and then never answered (a server that hangs). */
  blackhole(on: boolean): void;
  /** Connections held unanswered that the client has not closed yet. */
  openHeld(): number;
  close(): Promise<void>;
}> {
  const upstream = new URL(target);
  const sockets = new Set<net.Socket>();
  const frozen = new Set<() => void>();
  let refusing = false;
  let holding = false;
  const held = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer((client) => {
    count++;
    client.on('error', () => {});
    if (refusing) {
      client.destroy();
      return;
    }
    if (holding) {
      held.add(client);
      client.on('close', () => held.delete(client));
      // Read and ignore what it sends (its startup message), so that its end is seen.
      client.resume();
      return;
    }
    const server = net.connect(Number(upstream.port || 5432), upstream.hostname);
    server.on('error', () => client.destroy());
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
    sockets.add(client).add(server);
    frozen.add(() => {
      client.unpipe(server);
      server.unpipe(client);
      client.pause();
      server.pause();
    });
    client.on('close', () => sockets.delete(client));
    server.on('close', () => sockets.delete(server));
    client.pipe(server).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    connections: () => count,
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    refuse: (on) => (refusing = on),
    blackhole: (on) => (holding = on),
    openHeld: () => held.size,
    freeze: () => {
      for (const f of frozen) f();
      frozen.clear();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
