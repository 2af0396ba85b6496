/**
 * Checks of enqueue options and names against src/limits.ts, each returning the value as
 * the engine takes it or throwing EnqueueValidationError that names the field. Values are
 * described with describeValue, so building a message never throws and never echoes data.
 */
import { types } from 'node:util';

import { EnqueueValidationError } from '../errors.js';
import { MAX_DATE, MAX_DELAY_MS, MAX_INT, MIN_DATE } from '../limits.js';
import { describeValue, printable } from './describe.js';

/** Throws EnqueueValidationError with `message`. */
export function fail(message: string): never {
  throw new EnqueueValidationError(message);
}

const SUSPECT = /[\u0000\ud800-\udfff]/;
const LONE_SURROGATE = /\p{Surrogate}/u;
const SURROGATE_PAIR = /[\ud800-\udbff][\udc00-\udfff]/g;

/**
 * A string of 1 to `max` characters (Unicode code points, as PostgreSQL's length()
 * counts them) that PostgreSQL can store: no \u0000, no lone surrogate.
 */
export function checkText(value: unknown, what: string, max: number): string {
  if (typeof value !== 'string')
    fail(`${what} must be a string of 1 to ${max} characters, got ${describeValue(value)}`);
  if (SUSPECT.test(value)) {
    if (value.includes('\u0000'))
      fail(`${what} contains the character \\u0000, which PostgreSQL cannot store`);
    if (LONE_SURROGATE.test(value)) {
      fail(
        `${what} contains a lone UTF-16 surrogate (half of a surrogate pair), which PostgreSQL cannot store`,
      );
    }
  }
  // UTF-16 units bound the characters from above: count pairs only when it matters.
  const chars = value.length > max ? value.length - (value.match(SURROGATE_PAIR)?.length ?? 0) : value.length;
  if (chars < 1 || chars > max) {
    fail(
      `${what} must be a string of 1 to ${max} characters, got ${chars === 0 ? 'an empty string' : `${chars} characters`}`,
    );
  }
  return value;
}

/** An integer in [min, max]. */
export function checkInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(`${what} must be an integer from ${min} to ${max}, got ${describeValue(value)}`);
  }
  return value;
}

/** A duration in milliseconds in [min, MAX_DELAY_MS], rounded to whole milliseconds. */
export function checkDuration(value: unknown, what: string, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_DELAY_MS) {
    fail(
      `${what} must be a number of milliseconds from ${min} to ${MAX_DELAY_MS}, got ${describeValue(value)}`,
    );
  }
  return Math.round(value);
}

/** A valid Date in [MIN_DATE, MAX_DATE), as the ISO string the engine parses. */
export function checkDate(value: unknown, what: string): string {
  // A brand check, not instanceof: no caller code runs, and Dates of other realms count.
  if (!types.isDate(value)) fail(`${what} must be a Date, got ${describeValue(value)}`);
  const time = Date.prototype.getTime.call(value);
  if (Number.isNaN(time)) fail(`${what} must be a valid Date, got an invalid Date`);
  if (time < MIN_DATE.getTime() || time >= MAX_DATE.getTime()) {
    fail(
      `${what} must be from ${MIN_DATE.toISOString()} to before ${MAX_DATE.toISOString()}, ` +
        `got ${new Date(time).toISOString()}`,
    );
  }
  return new Date(time).toISOString();
}

/** Option names of a backoff (`{ baseMs, maxMs }`), in a step definition and a step call. */
export const BACKOFF_OPTION_NAMES: readonly string[] = ['baseMs', 'maxMs'];

/**
 * The first own key of `value` not in `known`, fit for a message (quoted, escaped, cut),
 * or undefined when every key is known. An unknown option is refused rather than
 * dropped: a misspelt `maxAttempt` would otherwise retry forever without a word.
 */
export function unknownKey(value: object, known: readonly string[]): string | undefined {
  const key = Object.keys(value).find((k) => !known.includes(k));
  return key === undefined ? undefined : `"${printable(key, 40)}"`;
}

/**
 * A backoff object `{ baseMs?, maxMs? }`: each an integer from 1 to MAX_INT, no other keys.
 * `what` names it in range errors (`step 2 backoff`), `context` starts the unknown-key one.
 */
export function checkBackoff(
  value: unknown,
  what: string,
  context = '',
): { baseMs: number | undefined; maxMs: number | undefined } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`${what} must be an object { baseMs, maxMs }, got ${describeValue(value)}`);
  }
  const unknown = unknownKey(value, BACKOFF_OPTION_NAMES);
  if (unknown !== undefined) {
    fail(`${context}unknown backoff option ${unknown} (known: ${BACKOFF_OPTION_NAMES.join(', ')})`);
  }
  const { baseMs, maxMs } = value as Record<string, unknown>;
  return {
    baseMs: baseMs === undefined ? undefined : checkInteger(baseMs, `${what}.baseMs`, 1, MAX_INT),
    maxMs: maxMs === undefined ? undefined : checkInteger(maxMs, `${what}.maxMs`, 1, MAX_INT),
  };
}
