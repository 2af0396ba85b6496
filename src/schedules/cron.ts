/**
 * Cron arithmetic for recurring schedules: croner parses and matches the expression (5-field
 * cron, or 6 with seconds first); this file applies it to a named IANA time zone with one
 * daylight-saving rule for every pattern. The expression is matched against local wall-clock
 * times (croner in UTC, on dates whose UTC fields are the local ones), and each matching wall
 * time is due at one instant: its only occurrence; its first occurrence when a fall-back
 * repeats it; and, when a spring-forward skips it, the first valid instant after the gap (every
 * skipped time of one gap collapses into that one run). Croner's own zoned mode behaves so
 * only for daily times: it dropped runs inside a gap for sub-daily patterns and fired repeated
 * wall times twice.
 */
import { Cron } from 'croner';

import { InvalidArgumentError } from '../errors.js';
import { MAX_DATE } from '../limits.js';

/** Characters in a cron expression and a time zone name (also checked in SQL). */
export const MAX_CRON_LENGTH = 200;
export const MAX_TZ_LENGTH = 100;

const DAY_MS = 86_400_000;
/**
 * Candidate wall times one search looks at: a repeated hour of a per-second expression is
 * 3,600; past this the expression is taken to fire no more (a bound, not a expected case).
 */
const MAX_STEPS = 100_000;

/** A parsed cron expression in its time zone. */
export class CronSchedule {
  /** The expression matched against wall-clock times written as UTC dates. */
  private readonly cron: Cron;
  private readonly zone: Intl.DateTimeFormat;

  /** Throws InvalidArgumentError for an expression or time zone croner refuses. */
  constructor(
    readonly expression: string,
    readonly timeZone: string,
  ) {
    if (typeof expression !== 'string' || expression.length === 0 || expression.length > MAX_CRON_LENGTH)
      throw new InvalidArgumentError(`a cron expression is a string of 1 to ${MAX_CRON_LENGTH} characters`);
    if (typeof timeZone !== 'string' || timeZone.length === 0 || timeZone.length > MAX_TZ_LENGTH)
      throw new InvalidArgumentError(`a time zone is an IANA name of 1 to ${MAX_TZ_LENGTH} characters`);
    try {
      this.zone = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
      // Croner validates the zone as it did when it computed in it (the same Intl data).
      new Cron(expression, { timezone: timeZone, paused: true }).nextRun(new Date());
      this.cron = new Cron(expression, { utcOffset: 0, paused: true });
      this.cron.nextRun(new Date());
    } catch (error) {
      throw new InvalidArgumentError(
        `invalid cron expression or time zone (${JSON.stringify(expression)} in ${JSON.stringify(timeZone)}): ${(error as Error).message}`,
      );
    }
  }

  /**
   * The first due time strictly after `after`, or null when the expression never fires
   * again before MAX_DATE (the engine stores no later time: a schedule_fire that advanced
   * to one was refused, and the due run with it, at every try).
   */
  nextAfter(after: Date): Date | null {
    const a = after.getTime();
    // Due instants grow with wall times (a repeated time's first occurrence, a skipped one's
    // end of gap), so no wall time up to the one shown at `after` is due after it: search on
    // from there, or, in the repeated hour after a fall-back, from its end (the times of that
    // hour were due at their first occurrence, before `after`).
    let wall = a + this.offset(a);
    const setBack = this.setBack(a);
    if (setBack) wall = Math.max(wall, setBack.repeatedUntil - 1);
    for (let i = 0; i < MAX_STEPS; i++) {
      const next = this.cron.nextRun(new Date(wall));
      if (!next || next.getTime() >= MAX_DATE.getTime() + DAY_MS) return null;
      const due = this.dueInstant(next.getTime());
      if (due > a) return due < MAX_DATE.getTime() ? new Date(due) : null;
      wall = next.getTime();
    }
    return null;
  }

  /**
   * The last due time strictly before `before`, or null. In the repeated hour after a
   * fall-back, wall times later than the one shown at `before` were due before it (at their
   * first occurrence), hence the search back from the end of that hour.
   */
  previousBefore(before: Date): Date | null {
    const b = before.getTime();
    let wall = b + this.offset(b);
    const setBack = this.setBack(b);
    if (setBack) wall = Math.max(wall, setBack.repeatedUntil);
    for (let i = 0; i < MAX_STEPS; i++) {
      const [previous] = this.cron.previousRuns(1, new Date(wall));
      if (!previous || previous.getTime() >= wall) return null;
      const due = this.dueInstant(previous.getTime());
      if (due < b) return new Date(due);
      // Due at or after `before`: at the end of a gap, go on from the gap's start (every
      // wall time in it is due at that same instant).
      wall = Math.min(previous.getTime(), due + this.offset(due - 1));
    }
    return null;
  }

  /**
   * The due times in [from, now] to enqueue, oldest first: the latest `max(backfill, 1)`
   * of them (so after downtime the default runs once, for the latest missed time). When
   * none matches (the expression changed under an old next_run_at), `from` itself.
   */
  dueRuns(from: Date, now: Date, backfill: number): Date[] {
    // Counts back from now one due time at a time and stops at `from`: the work follows the
    // runs actually missed. (Asking croner for max(backfill, 1) previous runs at once made
    // every fire of a yearly schedule with backfill 1000 search back a thousand years.)
    const want = Math.max(backfill, 1);
    const runs: Date[] = [];
    let reference = new Date(now.getTime() + 1);
    while (runs.length < want) {
      const t = this.previousBefore(reference);
      if (!t || t.getTime() < from.getTime() || t.getTime() >= reference.getTime()) break;
      runs.push(t);
      reference = t;
    }
    return runs.length > 0 ? runs.reverse() : [from];
  }

  /** The zone's offset from UTC at instant `t` (ms; local wall time = t + offset). */
  private offset(t: number): number {
    const f: Record<string, number> = {};
    for (const p of this.zone.formatToParts(t)) if (p.type !== 'literal') f[p.type] = Number(p.value);
    const second = Math.floor(t / 1000) * 1000;
    return Date.UTC(f.year!, f.month! - 1, f.day!, f.hour!, f.minute!, f.second!) - second;
  }

  /**
   * When the clocks were set back within the day up to `t`: the wall time (ms, as UTC) up to
   * which the times shown since then had been shown before. Else null.
   */
  private setBack(t: number): { repeatedUntil: number } | null {
    const before = this.offset(t - DAY_MS);
    const after = this.offset(t);
    if (before <= after) return null;
    // The transition: the first instant in (t - DAY, t] with the later offset.
    let lo = t - DAY_MS;
    let hi = t;
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (this.offset(mid) === after) hi = mid;
      else lo = mid;
    }
    return { repeatedUntil: hi + before };
  }

  /**
   * The instant a wall time (ms, as UTC) is due: its first occurrence, or the first instant
   * after the gap a spring-forward leaves around it.
   */
  private dueInstant(wall: number): number {
    const earlier = this.offset(wall - DAY_MS);
    const later = this.offset(wall + DAY_MS);
    // No transition around it (the usual case).
    if (earlier === later) return wall - earlier;
    // The offsets in force around it (one transition at most within a day either side).
    const offsets = new Set([earlier, this.offset(wall), later]);
    let first = Infinity;
    for (const o of offsets) if (this.offset(wall - o) === o) first = Math.min(first, wall - o);
    if (first !== Infinity) return first;
    // Skipped: the clocks jumped from before this wall time to after it, somewhere between the
    // instants it would be under the later (larger) and the earlier offset. The first instant
    // whose wall time is not before it is the end of the gap.
    let lo = wall - Math.max(...offsets); // shows an earlier wall time
    let hi = wall - Math.min(...offsets); // shows a later one
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (mid + this.offset(mid) >= wall) hi = mid;
      else lo = mid;
    }
    return hi;
  }
}
