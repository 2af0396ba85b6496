/**
 * Turns whatever a handler threw into an ErrorRecord the engine can always store: text
 * read defensively (a throwing getter, a non-string message), cut to the limits of
 * src/limits.ts before anything else touches it (a message of hundreds of MB costs
 * nothing), without \u0000 (jsonb refuses it) and with lone surrogates replaced.
 */
import { types } from 'node:util';

import type { ErrorRecord } from '../db/engine.js';
import { MAX_ERROR_MESSAGE_LENGTH, MAX_ERROR_NAME_LENGTH, MAX_ERROR_STACK_LENGTH } from '../limits.js';

/** Lines of a stack kept (then cut to MAX_ERROR_STACK_LENGTH characters). */
const STACK_LINES = 30;

/**
 * `text` cut to at most `max` UTF-16 units (never splitting a surrogate pair), with
 * \u0000 removed and lone surrogates replaced by U+FFFD: safe for jsonb.
 */
export function storableText(text: string, max: number): string {
  let cut = text.length > max ? text.slice(0, max) : text;
  const last = cut.charCodeAt(cut.length - 1);
  if (cut.length < text.length && last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  // toWellFormed (Node 20+) is ES2024, newer than the lib this project compiles against.
  return (cut.replace(/\u0000/g, '') as string & { toWellFormed(): string }).toWellFormed();
}

/** Reads a property without letting a throwing getter escape. */
function read(source: unknown, key: string): unknown {
  try {
    return (source as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

/** A description of any thrown value, never throwing itself. */
function describe(value: unknown): string {
  try {
    if (typeof value === 'string') return value;
    const json = JSON.stringify(value);
    return json === undefined ? String(value) : json;
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return 'unprintable value';
    }
  }
}

/**
 * The thrown value as an Error whose name and message can be read (non-errors, and errors
 * with throwing or non-string name or message, are wrapped, their text bounded). Never throws.
 */
export function asError(thrown: unknown): Error {
  // False for a revoked proxy, or one whose prototype trap throws.
  if (isError(thrown)) {
    const message = read(thrown, 'message');
    const name = read(thrown, 'name');
    // A proxy may answer differently next time (the worker reads the error again to store
    // it): it is copied, as read now.
    if (typeof message === 'string' && typeof name === 'string' && !types.isProxy(thrown))
      return thrown as Error;
    const shown = typeof name === 'string' ? storableText(name, MAX_ERROR_NAME_LENGTH) : 'Error';
    const copy = new Error(
      typeof message === 'string'
        ? message
        : message === undefined
          ? `${shown} (its message could not be read)`
          : storableText(describe(message), MAX_ERROR_MESSAGE_LENGTH),
    );
    if (typeof name === 'string') copy.name = name;
    const stack = read(thrown, 'stack');
    if (typeof stack === 'string') copy.stack = stack;
    return copy;
  }
  const text = storableText(describe(thrown), MAX_ERROR_MESSAGE_LENGTH);
  return new Error(typeof thrown === 'string' ? text : `non-error thrown: ${text}`);
}

/** `value instanceof Error`, false where even that cannot be asked (a revoked proxy). */
function isError(value: unknown): boolean {
  try {
    return value instanceof Error;
  } catch {
    return false;
  }
}

/** The stored form of a failure's error. */
export function errorRecord(error: unknown, attempt: number): ErrorRecord {
  const message = read(error, 'message');
  const name = read(error, 'name');
  const stack = read(error, 'stack');
  const shownName = typeof name === 'string' ? name : 'Error';
  const text =
    typeof message === 'string'
      ? message
      : message !== undefined
        ? describe(message)
        : isError(error)
          ? `${shownName} (its message could not be read)`
          : describe(error);
  const record: ErrorRecord = {
    message: storableText(text, MAX_ERROR_MESSAGE_LENGTH),
    name: storableText(shownName, MAX_ERROR_NAME_LENGTH),
    attempt,
    at: new Date().toISOString(),
  };
  if (typeof stack === 'string') {
    const head = stack
      .slice(0, MAX_ERROR_STACK_LENGTH * 2)
      .split('\n', STACK_LINES)
      .join('\n');
    record.stack = storableText(head, MAX_ERROR_STACK_LENGTH);
  }
  return record;
}
