/** How the dashboard writes times, durations, rates and stored JSON (as text; pages escape it). */
import { twoLargestUnits } from '../text.js';

/** `250ms`, `4.2s`, `3m 4s`, `2h 5m`, `3d 4h`: the two largest units are enough to read a lag. */
export function duration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  if (abs < 59_950) return `${(abs / 1000).toFixed(1).replace(/\.0$/, '')}s`;
  // Whole seconds, rounded: two reads of the clock a few ms apart still show the same age.
  return twoLargestUnits(Math.round(abs / 1000));
}

/** `3m 4s ago` or `in 20s`, measured from `now` (the engine's clock). */
export function relative(now: Date, at: Date): string {
  const ms = now.getTime() - at.getTime();
  if (Math.abs(ms) < 1000) return 'just now';
  return ms > 0 ? `${duration(ms)} ago` : `in ${duration(-ms)}`;
}

/** `2026-12-01 10:00:03.123 UTC`. */
export function utc(at: Date): string {
  return `${at.toISOString().replace('T', ' ').replace('Z', '')} UTC`;
}

/** Jobs per minute from a count over `windowMs`: `12`, `0.4`, `0`. */
export function perMinute(count: number, windowMs: number): string {
  const rate = (count * 60_000) / windowMs;
  return rate >= 10 || rate === 0 ? String(Math.round(rate)) : rate.toFixed(1);
}

/** Characters of a stored JSON value (result, output) the pages show; the CLI's --json has all. */
export const MAX_JSON_SHOWN = 20_000;

/**
 * A stored JSON value, indented, cut to `max` characters with a note saying how much was
 * left out. JSON rather than the bare value, so the string "42" and the number 42 differ.
 */
export function jsonText(value: unknown, max = MAX_JSON_SHOWN): string {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  if (text.length <= max) return text;
  let end = max;
  // Never split a surrogate pair.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}\n… (${text.length - end} more characters; \`stepping job ID --json\` shows all)`;
}
