/** Events per second, smoothed over windows of a quarter second (an exponential moving average). */
export class RateMeter {
  private count = 0;
  private windowStart = Date.now();
  private rate = 0;

  /** Counts `n` events now. */
  add(n = 1): void {
    this.count += n;
    this.roll();
  }

  /** The smoothed rate, per second. */
  get perSecond(): number {
    this.roll();
    return this.rate;
  }

  private roll(): void {
    const now = Date.now();
    const elapsed = now - this.windowStart;
    if (elapsed < 250) return;
    const current = (this.count * 1000) / elapsed;
    // An idle gap of several windows decays the rate as if each window had been counted.
    const windows = Math.min(8, Math.floor(elapsed / 250));
    this.rate = current + (this.rate - current) * 0.5 ** windows;
    this.count = 0;
    this.windowStart = now;
  }
}
