/**
 * Runs a worker in a child process (bench/worker/child.ts under tsx) and speaks the
 * protocol of protocol.ts with it. boot() forks and loads the library; run() sends the
 * spec. Booting is not measured, so callers overlap it with preparing the database.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import type { ChildResult, ChildSpec, FromChild, LibraryName, ToChild } from './protocol.js';

const CHILD_ENTRY = fileURLToPath(new URL('../worker/child.ts', import.meta.url));

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve: (v: T) => void = () => {};
  let reject: (e: Error) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers await some of these only; the others must not be reported as unhandled.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** A worker child process. */
export class WorkerChild {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private readonly ready = deferred<void>();
  private readonly startedD = deferred<void>();
  private readonly resultD = deferred<ChildResult>();
  private onHit: (seq: number, t: number) => void = () => {};

  private constructor(
    readonly library: LibraryName,
    nodePath: string,
  ) {
    this.child = fork(CHILD_ENTRY, [library], {
      execPath: nodePath,
      execArgv: ['--import', 'tsx', '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    const fail = (error: Error) => {
      this.ready.reject(error);
      this.startedD.reject(error);
      this.resultD.reject(error);
    };
    this.child.on('message', (message: FromChild) => {
      if (message.type === 'hit') this.onHit(message.seq, message.t);
      else if (message.type === 'ready') this.ready.resolve();
      else if (message.type === 'started') this.startedD.resolve();
      else if (message.type === 'result') this.resultD.resolve(message.result);
      else fail(new Error(`${library} worker child failed: ${message.message}`));
    });
    this.child.once('exit', (code, signal) =>
      fail(new Error(`${library} worker child exited (${code ?? signal}) without a result`)),
    );
  }

  /** Forks a child on `nodePath` and lets it load `library`; resolves when it is ready for run(). */
  static async boot(library: LibraryName, nodePath: string): Promise<WorkerChild> {
    const child = new WorkerChild(library, nodePath);
    await child.ready.promise;
    return child;
  }

  /** Starts the run; `onHit` receives handler starts (latency mode). */
  run(spec: ChildSpec, onHit: (seq: number, t: number) => void = () => {}): void {
    if (spec.variant.library !== this.library)
      throw new Error(`this child loaded ${this.library}, not ${spec.variant.library}`);
    this.onHit = onHit;
    this.send({ type: 'spec', spec });
  }

  /** Resolves when the worker's start() has returned. */
  get started(): Promise<void> {
    return this.startedD.promise;
  }

  /** Resolves with the child's measurements (rejects when it failed or died). */
  get result(): Promise<ChildResult> {
    return this.resultD.promise;
  }

  /** Asks a latency-mode child to stop and report. */
  stop(): void {
    this.send({ type: 'stop' });
  }

  private send(message: ToChild): void {
    if (this.child.connected) this.child.send(message);
  }

  /** Closes the channel and waits for the child to exit; kills it (this child only) after `graceMs`. */
  async close(graceMs = 10_000): Promise<void> {
    // A child that was never run (or did not finish) exits once its channel closes.
    if (this.child.connected) this.child.disconnect();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.exited,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.child.kill('SIGKILL');
          resolve();
        }, graceMs);
      }),
    ]);
    clearTimeout(timer);
    await this.exited;
  }
}

/** Boots a child for `library` now (so it loads while `fn` prepares), and closes it afterwards. */
export async function withWorkerChild<T>(
  library: LibraryName,
  nodePath: string,
  fn: (child: Promise<WorkerChild>) => Promise<T>,
): Promise<T> {
  const booting = WorkerChild.boot(library, nodePath);
  booting.catch(() => {});
  try {
    return await fn(booting);
  } finally {
    const child = await booting.catch(() => null);
    await child?.close();
  }
}
