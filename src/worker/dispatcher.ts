/**
 * Hands free handler slots to the databases that have work, round-robin, an equal share
 * each, so one busy database (a hot tenant) cannot starve the others. Never waits on a
 * database: claims run asynchronously and call kick() again when they finish.
 */
import type { Slots } from './slots.js';

/** What the dispatcher needs of a database. */
export interface Claimant {
  readonly wantsWork: boolean;
  /** Reserves up to `max` slots and starts claiming; returns how many it reserved (0: no room). */
  startClaim(max: number): number;
}

/** Round-robin slot dispatcher over a changing set of databases. */
export class Dispatcher {
  private readonly claimants: Claimant[] = [];
  private offset = 0;
  private scheduled = false;

  constructor(private readonly slots: Slots) {}

  add(claimant: Claimant): void {
    this.claimants.push(claimant);
  }

  remove(claimant: Claimant): void {
    const i = this.claimants.indexOf(claimant);
    if (i >= 0) this.claimants.splice(i, 1);
  }

  /** Something changed (work arrived, a slot freed): dispatch on the next turn of the event loop. */
  kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // One dispatch per turn, however many kicks: results of the same tick share it.
    setImmediate(() => {
      this.scheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    const n = this.claimants.length;
    if (n === 0) return;
    this.offset = (this.offset + 1) % n;
    const waiting: Claimant[] = [];
    for (let i = 0; i < n; i++) {
      const c = this.claimants[(this.offset + i) % n]!;
      if (c.wantsWork) waiting.push(c);
    }
    let free = this.slots.free();
    let left = waiting.length;
    for (const c of waiting) {
      if (free <= 0) break;
      const share = Math.max(1, Math.floor(free / left));
      left--;
      free -= c.startClaim(share);
    }
  }
}
