/**
 * Hands free handler slots to the databases that have work, round-robin, an equal share
 * each, so one busy database (a hot tenant) cannot starve the others. Never waits on a
 * database: claims run asynchronously and call kick() again when they finish.
 *
 * Equal shares alone would let a thousand quiet tenants with a few jobs each take every
 * slot from a hot one for as long as they drain. So when both kinds wait, databases with a
 * backlog (their last claim came back full) and the others get half the slots each, over
 * time; within each half the shares are equal.
 */
import type { Slots } from './slots.js';

/** What the dispatcher needs of a database. */
export interface Claimant {
  readonly wantsWork: boolean;
  /** Has more work waiting than its last claim took (a hot tenant). */
  readonly backlogged: boolean;
  /** Reserves up to `max` slots and starts claiming; returns how many it reserved (0: no room). */
  startClaim(max: number): number;
}

/** Round-robin slot dispatcher over a changing set of databases. */
export class Dispatcher {
  private readonly claimants: Claimant[] = [];
  private offset = 0;
  private scheduled = false;
  /** A dispatch ran at once (kick(true)) in this turn of the event loop. */
  private dispatchedNow = false;
  /** Slots granted to databases without a backlog minus those granted to backlogged ones. */
  private balance = 0;

  constructor(private readonly slots: Slots) {}

  add(claimant: Claimant): void {
    this.claimants.push(claimant);
  }

  remove(claimant: Claimant): void {
    const i = this.claimants.indexOf(claimant);
    if (i >= 0) this.claimants.splice(i, 1);
  }

  /**
   * Something changed (work arrived, a slot freed): dispatch on the next turn of the event
   * loop. `now`: dispatch at once (a NOTIFY woke an idle worker: the claim goes out in this
   * turn, which is idle latency).
   */
  kick(now = false): void {
    // At most one dispatch at once per turn: a dispatch visits every database, and a burst
    // of notifications (many tenants) must not cost one visit each.
    if (now && !this.dispatchedNow) {
      this.dispatchedNow = true;
      setImmediate(() => (this.dispatchedNow = false));
      this.dispatch();
      return;
    }
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
    const heavy: Claimant[] = [];
    const light: Claimant[] = [];
    for (let i = 0; i < n; i++) {
      const c = this.claimants[(this.offset + i) % n]!;
      if (c.wantsWork) (c.backlogged ? heavy : light).push(c);
    }
    const free = this.slots.free();
    if (free <= 0) return;
    if (heavy.length === 0 || light.length === 0) {
      this.balance = 0;
      share(heavy.length > 0 ? heavy : light, free);
      return;
    }
    // Slots often free one at a time, so the halves are kept over rounds: the kind that
    // got fewer lately goes first. Bounded, so an old imbalance is not repaid for long.
    const bound = this.slots.total;
    const toLight = Math.min(free, Math.max(0, Math.ceil((free - this.balance) / 2)));
    const usedLight = share(light, toLight);
    const usedHeavy = share(heavy, free - usedLight);
    // What one kind could not use goes to the other.
    const extraLight = usedHeavy < free - usedLight ? share(light, free - usedLight - usedHeavy) : 0;
    this.balance = Math.max(-bound, Math.min(bound, this.balance + usedLight + extraLight - usedHeavy));
  }
}

/** Gives up to `free` slots to these claimants, an equal share each in order; returns how many they took. */
function share(claimants: Claimant[], free: number): number {
  let left = claimants.length;
  let used = 0;
  for (const c of claimants) {
    if (used >= free) break;
    const n = Math.max(1, Math.floor((free - used) / left));
    left--;
    used += c.startClaim(n);
  }
  return used;
}
