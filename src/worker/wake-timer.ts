import { MAX_TIMER_MS } from '../timers.js';

/**
 * One timer holding the earliest pending wake-up. Asking for a later time never pushes
 * back a sooner one, and a wake-up is never dropped: whoever handles it decides whether
 * it is useful now, and asks again for the time it should come back (see Fetcher).
 */
export class WakeTimer {
  private timer: NodeJS.Timeout | undefined;
  private at = Infinity;
  private stopped = false;

  constructor(private readonly onWake: () => void) {}

  /**
   * Wakes at `at` (epoch ms), unless a wake-up is already due sooner. A time further than
   * setTimeout can wait (a backoff read from the database) wakes early, at its limit: the
   * handler then asks again.
   */
  wakeAt(requested: number): void {
    const at = Math.min(requested, Date.now() + MAX_TIMER_MS);
    if (this.stopped || at >= this.at) return;
    clearTimeout(this.timer);
    this.at = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.at = Infinity;
        this.onWake();
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Wakes after `ms`, unless a wake-up is already due sooner. */
  wakeIn(ms: number): void {
    this.wakeAt(Date.now() + Math.max(0, ms));
  }

  /** When the pending wake-up is due (Infinity: none). */
  get dueAt(): number {
    return this.at;
  }

  /** Cancels the pending wake-up (a later wakeAt sets one again). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = Infinity;
  }

  /** Cancels the pending wake-up for good. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = Infinity;
  }
}
