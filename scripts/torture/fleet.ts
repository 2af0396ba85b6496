/**
 * The worker fleet: `stepping-worker` child processes (the real bin, from the project
 * compiled for the run to plain JavaScript: loading tsx cost each start about 1 s of CPU
 * on the cores the server and the other workers need while resumes are judged by the
 * second) serving the torture steps module, some on one database, some on both. Kills
 * (SIGKILL), graceful stops (SIGTERM) and restarts are recorded with their times; each child's log
 * is parsed for the results the engine accepted (step succeeded / failed) or rejected
 * (lease lost), which the checks compare with the ledger.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { LEDGER_URLS_ENV, SPOOL_DIR_ENV, STALL_MARK, WORKER_LABEL_ENV } from './protocol.js';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Settings shared by every worker. */
export interface FleetOptions {
  concurrency: number;
  leaseMs: number;
  gracefulStopMs: number;
  /** {dbName: url} of the torture databases. */
  urls: Readonly<Record<string, string>>;
  /** Where workers spool ledger rows the database could not take. */
  spoolDir: string;
  /** The project compiled for this run (see test/support/compile.ts). */
  compiledTree: string;
}

/** What a worker's log says the engine did with one result. */
export interface LoggedResult {
  pid: number;
  worker: string;
  database: string;
  jobId: string;
  phase: 'forward' | 'compensate';
  stepIndex: number;
  attempt: number;
  /** succeeded / failed: the engine accepted the report; lost: it answered "stale lease". */
  kind: 'succeeded' | 'failed' | 'lost';
  at: number;
}

/** A signal the fleet sent. */
export interface SignalRecord {
  worker: string;
  pid: number;
  signal: 'SIGKILL' | 'SIGTERM';
  at: number;
  /** Why: a scheduled fault, or the end of the run. */
  reason: 'fault' | 'final' | 'hung';
}

/** One worker process's life. */
export interface ProcessRecord {
  worker: string;
  pid: number;
  databases: readonly string[];
  /** When it was spawned. */
  startedAt: number;
  /** When it printed its "started worker" line (null: not yet); loading its code takes seconds under load. */
  readyAt: number | null;
  exitedAt: number | null;
  exit: string | null;
  stepsStarted: number;
  lastStartAt: number | null;
  /** It printed its "started worker" line. */
  started: boolean;
  stderrLines: number;
  stderrTail: string[];
}

/** A time a worker's event loop did not run (from its steps module). */
export interface Stall {
  pid: number;
  worker: string;
  from: number;
  to: number;
}

/** A problem with the worker processes themselves (unexpected exit, stop that hung). */
export interface FleetProblem {
  worker: string;
  pid: number;
  at: number;
  message: string;
}

interface Slot {
  label: string;
  databases: readonly string[];
  child: ChildProcess | null;
  record: ProcessRecord | null;
  exited: Promise<void> | null;
  /** The signal the fleet sent to the current process, if any. */
  signalled: 'SIGKILL' | 'SIGTERM' | null;
  /** No restart (the run is ending). */
  retired: boolean;
  /** A restart after a failed start, pending. */
  retry: NodeJS.Timeout | undefined;
}

/** The end of a stderr tail, from the last thrown error's first line if there is one. */
function errorLines(tail: readonly string[]): string {
  let from = Math.max(0, tail.length - 3);
  for (let i = tail.length - 1; i >= 0; i--) {
    if (/^\S*Error\b|^node:|Unhandled|uncaught/i.test(tail[i]!)) {
      from = i;
      break;
    }
  }
  return tail
    .slice(from, from + 25)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' | ');
}

/** Like a supervisor, restart a worker that could not start after this long. */
const START_RETRY_MS = 1000;

const LINE =
  /^\S+ step (succeeded|failed|lease lost)\s+job=(\d+) (step|compensation)=(\d+) name=\S+ attempt=(\d+) queue=\S+(?: db=(\S+))?/;

/** The worker processes of the run. */
export class Fleet {
  private readonly slots: Slot[];
  readonly results: LoggedResult[] = [];
  readonly signals: SignalRecord[] = [];
  readonly processes: ProcessRecord[] = [];
  readonly problems: FleetProblem[] = [];
  readonly stalls: Stall[] = [];
  /** Processes that exited at start because the database was unreachable (restarted, not a violation). */
  readonly startFailures: FleetProblem[] = [];

  constructor(
    private readonly options: FleetOptions,
    /** Database names each worker serves (one entry per worker). */
    layout: readonly (readonly string[])[],
    private readonly log: (line: string) => void,
  ) {
    this.slots = layout.map((databases, i) => ({
      label: `w${i + 1}`,
      databases,
      child: null,
      record: null,
      exited: null,
      signalled: null,
      retired: false,
      retry: undefined,
    }));
  }

  /** Number of workers. */
  get size(): number {
    return this.slots.length;
  }

  /** Label and databases of worker `i`. */
  describe(i: number): string {
    const s = this.slots[i]!;
    return `${s.label} (${s.databases.join('+')})`;
  }

  /** The pid of worker `i`, or null while it is down. */
  pid(i: number): number | null {
    return this.slots[i]?.record && this.slots[i]!.record!.exitedAt === null
      ? this.slots[i]!.record!.pid
      : null;
  }

  /** Starts every worker and waits until each has said it started. */
  async startAll(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.launch(s)));
  }

  private launch(slot: Slot): Promise<void> {
    clearTimeout(slot.retry);
    slot.retry = undefined;
    const args = [
      path.join(this.options.compiledTree, 'src/cli/stepping-worker.js'),
      '--steps',
      path.join(this.options.compiledTree, 'scripts/torture/steps.js'),
      '--concurrency',
      String(this.options.concurrency),
      '--lease',
      String(this.options.leaseMs),
      '--graceful-stop',
      String(this.options.gracefulStopMs),
    ];
    for (const db of slot.databases) {
      const u = new URL(this.options.urls[db]!);
      u.searchParams.set('application_name', `torture-${slot.label}`);
      args.push('--database-url', u.toString());
    }
    const child = spawn(process.execPath, args, {
      cwd: projectRoot,
      env: {
        ...process.env,
        DATABASE_URL: undefined,
        [LEDGER_URLS_ENV]: JSON.stringify(this.options.urls),
        [WORKER_LABEL_ENV]: slot.label,
        [SPOOL_DIR_ENV]: this.options.spoolDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const record: ProcessRecord = {
      worker: slot.label,
      pid: child.pid!,
      databases: slot.databases,
      startedAt: Date.now(),
      readyAt: null,
      exitedAt: null,
      exit: null,
      stepsStarted: 0,
      lastStartAt: null,
      started: false,
      stderrLines: 0,
      stderrTail: [],
    };
    this.processes.push(record);
    slot.child = child;
    slot.record = record;
    slot.signalled = null;
    const single = slot.databases.length === 1 ? slot.databases[0]! : null;
    let announce: () => void = () => {};
    const started = new Promise<void>((resolve) => (announce = resolve));
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes(' step started ')) {
        record.stepsStarted++;
        record.lastStartAt = Date.now();
        return;
      }
      const m = LINE.exec(line);
      if (m) {
        const database = m[6] ? m[6].replace(/^.*\//, '') : single;
        if (database === null) return;
        this.results.push({
          pid: record.pid,
          worker: slot.label,
          database,
          jobId: m[2]!,
          phase: m[3] === 'compensation' ? 'compensate' : 'forward',
          stepIndex: Number(m[4]),
          attempt: Number(m[5]),
          kind: m[1] === 'lease lost' ? 'lost' : (m[1] as 'succeeded' | 'failed'),
          at: Date.now(),
        });
        return;
      }
      if (line.includes(' started worker ')) {
        record.started = true;
        record.readyAt = Date.now();
        announce();
      }
    });
    readline.createInterface({ input: child.stderr! }).on('line', (line) => {
      const stall = line.startsWith(STALL_MARK) ? /from=(\d+) to=(\d+)/.exec(line) : null;
      if (stall) {
        this.stalls.push({
          pid: record.pid,
          worker: slot.label,
          from: Number(stall[1]),
          to: Number(stall[2]),
        });
        return;
      }
      record.stderrLines++;
      record.stderrTail.push(line);
      if (record.stderrTail.length > 40) record.stderrTail.shift();
    });
    slot.exited = new Promise<void>((resolve) => {
      child.on('exit', (code, signal) => {
        record.exitedAt = Date.now();
        record.exit = signal ? signal : `code ${code}`;
        announce();
        // The bin exits when it cannot reach its database at start (a supervisor restarts
        // it): do what a supervisor would. A fault's signal sent while it was exiting so
        // (seen: a SIGKILL landing just after "cannot start") does not make it unexpected.
        const cannotStart = record.stderrTail.some((l) => l.includes('stepping-worker: cannot start:'));
        if (!record.started && code === 1 && (!slot.signalled || cannotStart)) {
          this.startFailures.push({
            worker: slot.label,
            pid: record.pid,
            at: Date.now(),
            message: record.stderrTail.slice(-1).join('') || '(no stderr)',
          });
          // A signalled slot is restarted by the kill or term that signalled it.
          if (!slot.retired && !slot.signalled)
            slot.retry = setTimeout(() => void this.launch(slot), START_RETRY_MS);
          resolve();
          return;
        }
        // Before the bin installs its signal handlers (still loading), SIGTERM just ends it.
        const expected =
          (slot.signalled === 'SIGKILL' && signal === 'SIGKILL') ||
          (slot.signalled === 'SIGTERM' && (code === 0 || (!record.started && signal === 'SIGTERM')));
        if (!expected) {
          this.problems.push({
            worker: slot.label,
            pid: record.pid,
            at: Date.now(),
            message:
              `exited unexpectedly (${record.exit}${slot.signalled ? ` after ${slot.signalled}` : ''}); ` +
              `last stderr: ${errorLines(record.stderrTail) || '(none)'}`,
          });
          if (!slot.signalled && !slot.retired) {
            this.log(
              `worker ${slot.label} pid ${record.pid} exited unexpectedly (${record.exit}); restarting`,
            );
            slot.retry = setTimeout(() => void this.launch(slot), START_RETRY_MS);
          }
        }
        resolve();
      });
    });
    return started;
  }

  /** SIGKILL worker `i` (if running), then restart it after `restartAfterMs`. */
  async kill(i: number, restartAfterMs: number): Promise<number | null> {
    const slot = this.slots[i]!;
    const pid = this.pid(i);
    if (pid === null || slot.signalled) return null;
    slot.signalled = 'SIGKILL';
    this.signals.push({ worker: slot.label, pid, signal: 'SIGKILL', at: Date.now(), reason: 'fault' });
    slot.child!.kill('SIGKILL');
    this.log(`SIGKILL ${slot.label} pid ${pid}`);
    await slot.exited;
    await new Promise((r) => setTimeout(r, restartAfterMs));
    if (!slot.retired) {
      await this.launch(slot);
      this.log(`${slot.label} restarted as pid ${slot.record!.pid}`);
    }
    return pid;
  }

  /**
   * SIGTERM worker `i` (graceful stop) and restart it once it exited. A stop that takes
   * longer than gracefulStopMs + `slackMs` is a problem: the worker is then killed.
   */
  async term(i: number, slackMs: number, reason: SignalRecord['reason'] = 'fault'): Promise<number | null> {
    const slot = this.slots[i]!;
    const pid = this.pid(i);
    if (pid === null || slot.signalled) return null;
    slot.signalled = 'SIGTERM';
    const at = Date.now();
    this.signals.push({ worker: slot.label, pid, signal: 'SIGTERM', at, reason });
    slot.child!.kill('SIGTERM');
    if (reason === 'fault') this.log(`SIGTERM ${slot.label} pid ${pid} (graceful stop)`);
    const limit = this.options.gracefulStopMs + slackMs;
    const timedOut = await Promise.race([
      slot.exited!.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), limit)),
    ]);
    if (timedOut) {
      this.problems.push({
        worker: slot.label,
        pid,
        at: Date.now(),
        message: `graceful stop (SIGTERM) did not finish within ${limit} ms (gracefulStopMs ${this.options.gracefulStopMs}); killed`,
      });
      slot.signalled = 'SIGKILL';
      this.signals.push({ worker: slot.label, pid, signal: 'SIGKILL', at: Date.now(), reason: 'hung' });
      slot.child!.kill('SIGKILL');
      await slot.exited;
    }
    if (reason === 'fault' && !slot.retired) {
      this.log(`${slot.label} pid ${pid} stopped after ${Date.now() - at} ms`);
      await this.launch(slot);
      this.log(`${slot.label} restarted as pid ${slot.record!.pid}`);
    }
    return pid;
  }

  /** Restarts any worker that is down (after a kill whose restart is still pending, it waits). */
  async ensureAllRunning(): Promise<void> {
    await Promise.all(
      this.slots.map(async (slot, i) => {
        if (this.pid(i) === null && !slot.signalled) await this.launch(slot);
      }),
    );
  }

  /** Graceful stop of every worker at the end of the run; no restarts after this. */
  async stopAll(slackMs: number): Promise<void> {
    for (const slot of this.slots) {
      slot.retired = true;
      clearTimeout(slot.retry);
    }
    await Promise.all(this.slots.map((_, i) => this.term(i, slackMs, 'final')));
  }

  /** Kills whatever is still running (driver failure path). */
  killAllNow(): void {
    for (const slot of this.slots) {
      slot.retired = true;
      clearTimeout(slot.retry);
      if (slot.child && slot.child.exitCode === null && slot.child.signalCode === null) {
        slot.signalled = 'SIGKILL';
        slot.child.kill('SIGKILL');
      }
    }
  }
}
