/**
 * An abort signal for one unit whose AbortController is made only when someone reads it.
 * Most handlers never look at ctx.signal, and an AbortController per unit was about 4% of
 * a drain's worker CPU (and garbage); aborting before the signal was read still hands the
 * handler an already aborted signal, with the first reason.
 */
export class LazyAbort {
  private controller: AbortController | undefined;
  private reason: unknown;
  private done = false;

  /** The signal, aborted already if abort() was called. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.done) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** True once abort() was called. */
  get aborted(): boolean {
    return this.done;
  }

  /** Aborts with `reason`; later calls change nothing (as AbortController does). */
  abort(reason: unknown): void {
    if (this.done) return;
    this.done = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}
