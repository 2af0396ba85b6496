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
 * A stored JSON value as `JSON.stringify(value, null, 2)` writes it, cut to `max`
 * characters with a note. JSON rather than the bare value, so the string "42" and the
 * number 42 differ. Written piece by piece and stopped once past `max`: a result within
 * the 1 MB limit can be 70 MB indented (numbers nested 100 deep, 200 spaces each), and
 * indenting all of it to show 20,000 characters held the server for seconds per result.
 */
export function jsonText(value: unknown, max = MAX_JSON_SHOWN): string {
  const out: string[] = [];
  let length = 0;
  const put = (piece: string) => {
    out.push(piece);
    length += piece.length;
  };
  const write = (v: unknown, indent: string): void => {
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      v = (v as { toJSON: () => unknown }).toJSON();
    }
    if (v === null || typeof v !== 'object') {
      // Primitives as JSON.stringify writes them (undefined, functions: null, as in arrays).
      put(JSON.stringify(v) ?? 'null');
      return;
    }
    const inner = `${indent}  `;
    if (Array.isArray(v)) {
      if (v.length === 0) return put('[]');
      put('[');
      for (let i = 0; i < v.length && length <= max; i++) {
        put(`${i === 0 ? '' : ','}\n${inner}`);
        write(v[i], inner);
      }
      return put(`\n${indent}]`);
    }
    let first = true;
    for (const key of Object.keys(v)) {
      if (length > max) break;
      const member = (v as Record<string, unknown>)[key];
      if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
      put(`${first ? '{' : ','}\n${inner}${JSON.stringify(key)}: `);
      first = false;
      write(member, inner);
    }
    put(first ? '{}' : `\n${indent}}`);
  };
  write(value, '');
  const text = out.join('');
  if (length <= max) return text;
  let end = max;
  // Never split a surrogate pair.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}\n… (cut at ${max} characters; \`stepping job ID --json\` shows all)`;
}
