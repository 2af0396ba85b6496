/**
 * setTimeout's longest delay: 2^31 - 1 ms (about 24.8 days). Node fires a longer one after
 * 1 ms, with a TimeoutOverflowWarning, so every timer fed a time from the database or a
 * producer is capped at this (and re-armed, or woken early, where it must wait longer).
 */
export const MAX_TIMER_MS = 2_147_483_647;
