/**
 * Safe descriptions of caller input for error messages. They never throw (whatever the
 * value: BigInt, Symbol, a revoked Proxy) and never echo data that could be a secret:
 * only short printable option values are quoted; everything else is described by kind.
 */
import { types } from 'node:util';

const PRINTABLE = /^[\x20-\x7e]*$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Describes an option value for "must be ..., got X" (never throws). */
export function describeValue(value: unknown): string {
  try {
    switch (typeof value) {
      case 'undefined':
        return 'undefined';
      case 'number':
      case 'boolean':
        return String(value);
      case 'bigint':
        return 'a BigInt';
      case 'symbol':
        return 'a symbol';
      case 'function':
        return 'a function';
      case 'string':
        return value.length <= 40 && PRINTABLE.test(value)
          ? JSON.stringify(value)
          : `a string of ${value.length} UTF-16 units`;
      default:
        break;
    }
    if (value === null) return 'null';
    if (types.isProxy(value)) return 'a Proxy';
    if (Array.isArray(value)) return 'an array';
    if (types.isDate(value)) return 'a Date';
    return 'an object';
  } catch {
    return 'a value that cannot be described';
  }
}

/**
 * A caller-chosen name (a step name, an option key) fit for a message: control
 * characters escaped, cut to `max` characters. Never throws.
 */
export function printable(text: string, max = 60): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return cut.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The class name of something thrown by caller code (getters, toJSON, proxies). Never throws. */
export function thrownKind(error: unknown): string {
  try {
    if (error instanceof Error) return printable(error.name, 40);
    return describeValue(error);
  } catch {
    return 'an error';
  }
}
