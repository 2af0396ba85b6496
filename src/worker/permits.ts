/** A counting semaphore: at most `max` holders at once; the rest wait in order. */
export class Permits {
  private used = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly max: number) {}

  /** Waits for a permit; returns its release function (idempotent). */
  async acquire(): Promise<() => void> {
    if (this.used < this.max) this.used++;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next)
        next(); // the permit passes straight on
      else this.used--;
    };
  }
}
