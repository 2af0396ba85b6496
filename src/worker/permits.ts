/**
 * A counting semaphore: at most `max` holders at once, the rest wait in order. Until
 * endBurst(), up to `burst` more may hold one: such a permit is not handed on when given
 * back (while more than `max` are held), so the limit returns to `max`.
 */
export class Permits {
  private used = 0;
  private extra: number;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly max: number,
    burst = 0,
  ) {
    this.extra = burst;
  }

  /** No more burst permits: those held now are the last (the limit shrinks as they come back). */
  endBurst(): void {
    this.extra = Math.max(0, this.used - this.max);
  }

  /** Waits for a permit; returns its release function (idempotent). */
  async acquire(): Promise<() => void> {
    if (this.used < this.max + this.extra) this.used++;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (this.used > this.max && this.extra > 0) {
        // A burst permit: not handed on, the limit shrinks by one.
        this.extra--;
        this.used--;
        return;
      }
      const next = this.waiters.shift();
      if (next)
        next(); // the permit passes straight on
      else this.used--;
    };
  }
}
