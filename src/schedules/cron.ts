/**
 * Cron arithmetic for recurring schedules, delegated to croner (5-field cron, or 6 with
 * seconds first; a named IANA time zone per schedule, with its daylight-saving rules: a
 * local time skipped by a spring-forward runs once at the first valid time after it, and
 * one repeated by a fall-back runs once, at its first occurrence).
 */
import { Cron } from 'croner';

import { InvalidArgumentError } from '../errors.js';
import { MAX_DATE } from '../limits.js';

/** Characters in a cron expression and a time zone name (also checked in SQL). */
export const MAX_CRON_LENGTH = 200;
export const MAX_TZ_LENGTH = 100;

/** A parsed cron expression in its time zone. */
export class CronSchedule {
  private readonly cron: Cron;

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
      // Validate the zone first: croner reports an unknown one only when computing a run.
      new Intl.DateTimeFormat('en', { timeZone });
      this.cron = new Cron(expression, { timezone: timeZone, paused: true });
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
    const next = this.cron.nextRun(after);
    return next && next.getTime() < MAX_DATE.getTime() ? next : null;
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
    // previousRuns includes a run earlier in the reference's own second, not one at it.
    let reference = new Date(now.getTime() + 1);
    while (runs.length < want) {
      const [t] = this.cron.previousRuns(1, reference);
      if (!t || t.getTime() < from.getTime() || t.getTime() >= reference.getTime()) break;
      if (t.getTime() <= now.getTime()) runs.push(t);
      reference = t;
    }
    return runs.length > 0 ? runs.reverse() : [from];
  }
}
