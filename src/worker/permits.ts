/**
 * A counting semaphore: at most `limit()` holders at once, the rest wait in order. The
 * limit may change between calls (a lower one takes hold as permits come back, a higher
 * one as the next is given back or asked for). Until endBurst(), up to `burst` more may
 * hold one: such a permit is not handed on when given back (while the limit or more are
 * held), so the limit returns to `limit()`.
 */
export class Permits {
  private used = 0;
  private extra: number;
  private readonly waiters: (() => void)[] = [];
  private readonly limit: () => number;

  constructor(max: number | (() => number), burst = 0) {
    this.limit = typeof max === 'number' ? () => max : max;
    this.extra = burst;
  }

  /** No more burst permits: those held now are the last (the limit shrinks as they come back). */
  endBurst(): void {
    this.extra = Math.max(0, this.used - this.limit());
  }

  /** Waits for a permit; returns its release function (idempotent). */
  async acquire(): Promise<() => void> {
    this.pump();
    if (this.waiters.length === 0 && this.used < this.limit() + this.extra) this.used++;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used--;
      // A burst permit (held beyond the limit): not handed on, the limit shrinks by one.
      if (this.used >= this.limit() && this.extra > 0) this.extra--;
      this.pump();
    };
  }

  /** Hands permits to the longest waiters while the limit allows. */
  private pump(): void {
    while (this.waiters.length > 0 && this.used < this.limit() + this.extra) {
      this.used++;
      this.waiters.shift()!();
    }
  }
}
