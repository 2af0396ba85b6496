/** Part of a claim: up to `n` units from `queues` (null: every queue the worker serves). */
export interface ClaimPlan {
  queues: string[] | null;
  n: number;
}

/**
 * Concurrency accounting: a total number of handler slots and optional per-queue caps.
 * A claim first reserves slots, then gives back what it did not fill.
 */
export class Slots {
  private used = 0;
  private readonly usedByQueue = new Map<string, number>();
  private readonly freedListeners = new Set<() => void>();

  constructor(
    readonly total: number,
    private readonly queueLimits: ReadonlyMap<string, number>,
  ) {}

  /**
   * Calls `listener` whenever slots are freed (a unit ended, or a claim gave back slots it
   * did not fill). Returns the way to stop.
   */
  onFreed(listener: () => void): () => void {
    this.freedListeners.add(listener);
    return () => this.freedListeners.delete(listener);
  }

  /** Whether a unit of `queue` could take a slot now: one is free, and its queue's cap has room. */
  hasRoom(queue: string): boolean {
    if (this.free() <= 0) return false;
    const limit = this.queueLimits.get(queue);
    return limit === undefined || (this.usedByQueue.get(queue) ?? 0) < limit;
  }

  /** Slots free overall. */
  free(): number {
    return this.total - this.used;
  }

  /**
   * What to claim now, at most `batch` units in total: one entry for all queues (no caps),
   * or one per capped queue with room. Reserves the slots it plans.
   */
  reserve(batch: number, queues: string[] | null): ClaimPlan[] {
    let room = Math.min(this.free(), batch);
    if (room <= 0) return [];
    if (this.queueLimits.size === 0) {
      this.used += room;
      return [{ queues, n: room }];
    }
    const plan: ClaimPlan[] = [];
    for (const [queue, limit] of this.queueLimits) {
      const n = Math.min(room, limit - (this.usedByQueue.get(queue) ?? 0));
      if (n <= 0) continue;
      plan.push({ queues: [queue], n });
      this.used += n;
      this.usedByQueue.set(queue, (this.usedByQueue.get(queue) ?? 0) + n);
      room -= n;
      if (room === 0) break;
    }
    return plan;
  }

  /** Gives back reserved slots a claim did not fill. */
  unreserve(planned: ClaimPlan, unused: number): void {
    if (unused <= 0) return;
    this.used -= unused;
    const queue = this.queueLimits.size > 0 ? planned.queues?.[0] : undefined;
    if (queue !== undefined) this.usedByQueue.set(queue, (this.usedByQueue.get(queue) ?? 0) - unused);
    this.freed();
  }

  /** Takes one slot for a unit of `queue` if there is room; false otherwise. */
  tryTake(queue: string): boolean {
    if (!this.hasRoom(queue)) return false;
    this.used += 1;
    if (this.queueLimits.has(queue)) this.usedByQueue.set(queue, (this.usedByQueue.get(queue) ?? 0) + 1);
    return true;
  }

  /** Frees the slot of a finished unit of `queue`. */
  release(queue: string): void {
    this.used -= 1;
    if (this.queueLimits.has(queue)) this.usedByQueue.set(queue, (this.usedByQueue.get(queue) ?? 0) - 1);
    this.freed();
  }

  private freed(): void {
    for (const listener of this.freedListeners) listener();
  }
}
