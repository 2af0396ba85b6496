/**
 * setTimeout's longest delay: 2^31 - 1 ms (about 24.8 days). Node fires a longer one after
 * 1 ms, with a TimeoutOverflowWarning, so every timer fed a time from the database or a
 * producer is capped at this (and re-armed, or woken early, where it must wait longer).
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * The first instant after `now` (epoch ms) on a grid of `periodMs` shifted by `offsetMs`.
 * Many-databases mode puts a database's periodic calls on such a grid: its registry beat,
 * maintenance, safety poll and schedule look land together (one connection instead of one
 * each), and databases with different offsets apart (no burst of every database at once).
 */
export function nextOnGrid(now: number, periodMs: number, offsetMs: number): number {
  const period = Math.max(1, Math.round(periodMs));
  const into = (((now - offsetMs) % period) + period) % period;
  return now + period - into;
}
