/**
 * Carries out the fault schedule against the private server and the fleet, and records
 * what actually happened and when (driver clock; the server runs on the same machine, so
 * it is the clock of the ledger's timestamps too).
 */
import pg from 'pg';

import type { Fleet } from './fleet.js';
import type { PrivateServer, StopMode } from './postgres.js';
import type { ProducerGate } from './producer.js';
import { EPISODES, type Fault } from './schedule.js';

/** A time the server did not answer: from the stop (or restart) command to its first answer. */
export interface Unavailability {
  kind: 'restart' | 'outage';
  mode: StopMode;
  /** Planned downtime of an outage, seconds. */
  seconds: number | null;
  from: number;
  /** The server answered `SELECT 1` again. */
  answeredAt: number;
}

/** One pg_terminate_backend round. */
export interface Termination {
  at: number;
  target: 'listeners' | 'all';
  backends: number;
  listeners: number;
}

/** One held REPEATABLE READ snapshot and the fault-free window after it. */
export interface XminHold {
  from: number;
  to: number;
  afterTo: number;
  /** pg_database_size per database at from, to and afterTo. */
  sizes: Record<string, [number, number, number]>;
}

/** Time for enqueues in flight to finish before an observed outage. */
const PRODUCER_SETTLE_MS = 1000;

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs faults and keeps their records. */
export class FaultRunner {
  readonly unavailable: Unavailability[] = [];
  readonly terminations: Termination[] = [];
  readonly holds: XminHold[] = [];
  readonly skipped: string[] = [];
  readonly errors: string[] = [];
  private serverUp = true;
  /** Times an episode took the server down (a terminate overtaken by one is skipped, not failed). */
  private downs = 0;
  private upWaiters: (() => void)[] = [];
  private quietUntil = 0;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly server: PrivateServer,
    private readonly fleet: Fleet,
    private readonly urls: Readonly<Record<string, string>>,
    private readonly gracefulSlackMs: number,
    /** Held through observed outages and the resume window after them. */
    private readonly gate: ProducerGate,
    private readonly resumeLimitMs: number,
    private readonly log: (line: string) => void,
  ) {}

  private setUp(up: boolean): void {
    this.serverUp = up;
    if (!up) this.downs++;
    if (up) for (const w of this.upWaiters.splice(0)) w();
  }

  private async whenUp(): Promise<void> {
    if (!this.serverUp) await new Promise<void>((r) => this.upWaiters.push(r));
  }

  /** Runs the whole schedule; `start` is the loaded phase's start (ms since the epoch). */
  async run(schedule: readonly Fault[], start: number): Promise<void> {
    const episodes = schedule.filter((f) => EPISODES.has(f.kind));
    const instants = schedule.filter((f) => !EPISODES.has(f.kind));
    const episodeLoop = (async () => {
      for (const f of episodes) {
        await pause(start + f.at * 1000 - Date.now());
        await this.episode(f).catch((error: Error) => {
          this.errors.push(`${f.kind} at ${f.at}s: ${error.message}`);
          this.log(`fault ${f.kind} failed: ${error.message}`);
        });
      }
    })();
    const instantLoop = (async () => {
      for (const f of instants) {
        await pause(start + f.at * 1000 - Date.now());
        // Never inside the held-snapshot measurement windows (a late episode may push one here).
        while (Date.now() < this.quietUntil) await pause(this.quietUntil - Date.now());
        const p = this.instant(f).catch((error: Error) => {
          this.errors.push(`${f.kind} at ${f.at}s: ${error.message}`);
          this.log(`fault ${f.kind} failed: ${error.message}`);
        });
        this.pending.add(p);
        void p.finally(() => this.pending.delete(p));
      }
    })();
    await Promise.all([episodeLoop, instantLoop]);
    await Promise.all([...this.pending]);
  }

  private async instant(f: Fault): Promise<void> {
    if (f.kind === 'kill') {
      const pid = await this.fleet.kill(f.worker, f.restartAfterMs);
      if (pid === null)
        this.skipped.push(`SIGKILL ${this.fleet.describe(f.worker)} at ${f.at}s: not running`);
    } else if (f.kind === 'term') {
      const pid = await this.fleet.term(f.worker, this.gracefulSlackMs);
      if (pid === null)
        this.skipped.push(`SIGTERM ${this.fleet.describe(f.worker)} at ${f.at}s: not running`);
    } else if (f.kind === 'terminate') {
      await this.whenUp();
      const downs = this.downs;
      let t: Termination;
      try {
        t = await this.terminate(f.target);
      } catch (error) {
        // A restart or outage that began meanwhile ended this connection too (a late schedule
        // can start one right beside it): the server dropped every backend anyway.
        if (this.downs === downs) throw error;
        this.skipped.push(`pg_terminate_backend at ${f.at}s: overtaken by a server restart`);
        return;
      }
      this.log(`pg_terminate_backend: ${t.backends} worker backends (${t.listeners} LISTEN) [${f.target}]`);
    }
  }

  private async terminate(target: 'listeners' | 'all'): Promise<Termination> {
    const client = new pg.Client({ connectionString: this.server.url('postgres') });
    client.on('error', () => {});
    await client.connect();
    try {
      // A LISTEN connection's last statement is a LISTEN, or its liveness check (ListenConnection).
      const { rows } = await client.query<{ listener: boolean; ok: boolean }>(
        `SELECT (query ILIKE 'LISTEN %' OR query = 'SELECT pg_backend_pid()') AS listener,
                pg_terminate_backend(pid) AS ok
         FROM pg_stat_activity
         WHERE application_name LIKE 'torture-w%' AND pid <> pg_backend_pid()
           AND ($1 = 'all' OR query ILIKE 'LISTEN %' OR query = 'SELECT pg_backend_pid()')`,
        [target],
      );
      const t: Termination = {
        at: Date.now(),
        target,
        backends: rows.filter((r) => r.ok).length,
        listeners: rows.filter((r) => r.ok && r.listener).length,
      };
      this.terminations.push(t);
      return t;
    } finally {
      await client.end().catch(() => {});
    }
  }

  private async episode(f: Fault): Promise<void> {
    if (f.kind === 'restart') {
      const from = Date.now();
      this.setUp(false);
      try {
        await this.server.restart(f.mode);
      } finally {
        const answeredAt = await this.server.waitAnswering();
        this.setUp(true);
        this.unavailable.push({ kind: 'restart', mode: f.mode, seconds: null, from, answeredAt });
        this.log(`pg_ctl restart -m ${f.mode}: answering again after ${answeredAt - from} ms`);
      }
    } else if (f.kind === 'outage') {
      if (f.observed) {
        // Like the quiet system of a real outage: after it, nothing but the workers' own
        // wake-ups (listener reconnect, timers, polls) can get them claiming again.
        this.gate.close();
        await pause(PRODUCER_SETTLE_MS);
      }
      const from = Date.now();
      this.setUp(false);
      try {
        await this.server.stop(f.mode);
        this.log(`pg_ctl stop -m ${f.mode}: server down for ${f.seconds} s`);
        await pause(from + f.seconds * 1000 - Date.now());
      } finally {
        await this.server.start();
        const answeredAt = await this.server.waitAnswering();
        this.setUp(true);
        this.unavailable.push({ kind: 'outage', mode: f.mode, seconds: f.seconds, from, answeredAt });
        if (f.observed) this.gate.openAt(answeredAt + this.resumeLimitMs);
        this.log(
          `outage over: answering again ${answeredAt - from} ms after the stop` +
            (f.observed ? `; no new jobs for ${this.resumeLimitMs} ms more` : ''),
        );
      }
    } else if (f.kind === 'xmin') {
      await this.holdSnapshot(f.seconds);
    }
  }

  private async sizes(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const client = new pg.Client({ connectionString: this.server.url('postgres') });
    client.on('error', () => {});
    await client.connect();
    try {
      for (const name of Object.keys(this.urls)) {
        const { rows } = await client.query<{ s: string }>('SELECT pg_database_size($1) AS s', [name]);
        out[name] = Number(rows[0]!.s);
      }
    } finally {
      await client.end().catch(() => {});
    }
    return out;
  }

  /** Holds a REPEATABLE READ snapshot in every torture database, then a fault-free window as long. */
  private async holdSnapshot(seconds: number): Promise<void> {
    this.quietUntil = Date.now() + 2 * seconds * 1000 + 5000;
    const clients = Object.values(this.urls).map((url) => {
      const u = new URL(url);
      u.searchParams.set('application_name', 'torture-xmin');
      const c = new pg.Client({ connectionString: u.toString() });
      c.on('error', () => {});
      return c;
    });
    try {
      const before = await this.sizes();
      for (const c of clients) {
        await c.connect();
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        // The first query takes the snapshot; from here on its xmin holds back vacuum.
        await c.query('SELECT count(*) FROM stepping.job_overview');
      }
      const from = Date.now();
      this.quietUntil = from + 2 * seconds * 1000;
      this.log(`holding a REPEATABLE READ snapshot for ${seconds} s`);
      await pause(seconds * 1000);
      for (const c of clients) await c.query('COMMIT');
      const to = Date.now();
      const held = await this.sizes();
      this.log(`snapshot released; ${seconds} s without faults follow`);
      await pause(to + seconds * 1000 - Date.now());
      const afterTo = Date.now();
      const after = await this.sizes();
      const sizes: XminHold['sizes'] = {};
      for (const name of Object.keys(before)) sizes[name] = [before[name]!, held[name]!, after[name]!];
      this.holds.push({ from, to, afterTo, sizes });
    } finally {
      for (const c of clients) await c.end().catch(() => {});
      this.quietUntil = 0;
    }
  }
}
