/**
 * Reads a caller's value (step args, compensation args) exactly as JSON.stringify would,
 * and returns plain JSON that PostgreSQL stores unchanged, with its size as jsonb prints
 * it. So what a handler later receives equals `JSON.parse(JSON.stringify(args))`.
 *
 * Like JSON.stringify: toJSON(key) first, boxed primitives unwrapped (new Number,
 * new String, new Boolean), own enumerable string keys in their order (`__proto__`
 * included), array holes and undefined elements become null, undefined members are
 * left out. Unlike JSON.stringify, values it would silently lose or change, and values
 * PostgreSQL cannot store, are refused with an EnqueueValidationError naming the path:
 * functions, symbols, BigInt, NaN and ±Infinity, Map and Set, cycles, strings or keys
 * containing \u0000 or a lone UTF-16 surrogate; so are values nested more than
 * MAX_JSON_DEPTH deep or printing to more than MAX_JSON_BYTES. Errors thrown by the
 * caller's own code (getters, toJSON, proxies) become EnqueueValidationError too.
 * Messages name paths and kinds, never values (args may hold secrets).
 */
import { types } from 'node:util';

import { EnqueueValidationError } from '../errors.js';
import { MAX_JSON_BYTES, MAX_JSON_DEPTH } from '../limits.js';
import { thrownKind } from './describe.js';
import { jsonbNumberBytes, jsonbStringBytes, type JsonValue } from './jsonb-text.js';

/** A value converted for storage, and its size as jsonb prints it. */
export interface StoredJson {
  /** Plain JSON (`null` for an undefined value). */
  value: JsonValue;
  /** `octet_length(value::jsonb::text)`, as the SQL functions measure it. */
  bytes: number;
}

/** Bounds of one conversion (the defaults are the engine's limits). */
export interface JsonBounds {
  maxBytes: number;
  maxDepth: number;
}

const DEFAULT_BOUNDS: JsonBounds = { maxBytes: MAX_JSON_BYTES, maxDepth: MAX_JSON_DEPTH };
/** Quick test for the characters that need a closer look: \u0000 and surrogate halves. */
const SUSPECT = /[\u0000\ud800-\udfff]/;
const LONE_SURROGATE = /\p{Surrogate}/u;
const IDENTIFIER = /^[A-Za-z_$][\w$]{0,39}$/;

/**
 * Turns `input` into storable JSON, or throws EnqueueValidationError naming `what` (the
 * value's name in messages, e.g. `step 0 (mail.send) args`; a function, so that it is
 * built only for an error) and the path.
 */
export function toStoredJson(
  input: unknown,
  what: string | (() => string),
  bounds: JsonBounds = DEFAULT_BOUNDS,
): StoredJson {
  const converter = new Converter(typeof what === 'string' ? () => what : what, bounds);
  try {
    const value = converter.convert('', input, 0);
    if (value === undefined) return { value: null, bytes: 4 };
    return { value, bytes: converter.bytes };
  } catch (error) {
    if (error instanceof EnqueueValidationError) throw error;
    // The caller's getters, toJSON or proxy traps threw (or recursed without end).
    throw new EnqueueValidationError(
      `${converter.name()}${converter.where()} could not be read: a getter, toJSON() or proxy threw ${thrownKind(error)}`,
      { cause: error },
    );
  }
}

class Converter {
  /** Bytes printed so far; only grows, so it can stop a conversion as soon as it is over. */
  bytes = 0;
  /** Containers being read (a cycle leads back to one); made on the first container. */
  private ancestors: Set<object> | undefined;
  /** Path from the root to the value being read: array indexes and object keys. */
  private readonly path: (string | number)[] = [];

  constructor(
    readonly name: () => string,
    private readonly bounds: JsonBounds,
  ) {}

  /** The current path, e.g. `.items[3].sku` (long ones shortened in the middle). */
  where(): string {
    const shown =
      this.path.length > 12 ? [...this.path.slice(0, 6), null, ...this.path.slice(-5)] : this.path;
    return shown.map((p) => (p === null ? `…(${this.path.length - 11} more)…` : segment(p))).join('');
  }

  private fail(problem: string): never {
    throw new EnqueueValidationError(`${this.name()}${this.where()} ${problem}`);
  }

  private add(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes > this.bounds.maxBytes) this.tooBig();
  }

  private tooBig(): never {
    throw new EnqueueValidationError(
      `${this.name()} are more than ${this.bounds.maxBytes} bytes as PostgreSQL prints JSON, over the limit` +
        ` (reached at ${this.where() || 'the top'})`,
    );
  }

  private checkString(s: string, role: 'contains' | 'has a key containing'): void {
    if (!SUSPECT.test(s)) return;
    if (s.includes('\u0000')) this.fail(`${role} the character \\u0000, which PostgreSQL jsonb cannot store`);
    if (LONE_SURROGATE.test(s)) {
      this.fail(
        `${role} a lone UTF-16 surrogate (half of a surrogate pair), which PostgreSQL jsonb cannot store`,
      );
    }
  }

  /** JSON.stringify's SerializeJSONProperty for `raw` found under `key`; undefined when it is left out. */
  convert(key: string | number, raw: unknown, depth: number): JsonValue | undefined {
    let value = raw;
    if (
      value !== null &&
      (typeof value === 'object' || typeof value === 'function' || typeof value === 'bigint')
    ) {
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') value = toJSON.call(value, String(key)) as unknown;
    }
    if (typeof value === 'object' && value !== null && types.isBoxedPrimitive(value)) {
      // As JSON.stringify: Number and String objects through ToNumber / ToString (which
      // may call the caller's valueOf / toString), Boolean and BigInt objects by their slot.
      if (types.isNumberObject(value)) value = Number(value);
      else if (types.isStringObject(value)) value = String(value);
      else if (types.isBooleanObject(value)) value = Boolean.prototype.valueOf.call(value);
      else if (types.isBigIntObject(value)) value = BigInt.prototype.valueOf.call(value);
      // A Symbol object is serialised as an ordinary object, as by JSON.stringify.
    }
    switch (typeof value) {
      case 'string':
        this.checkString(value, 'contains');
        this.add(jsonbStringBytes(value));
        return value;
      case 'number':
        if (!Number.isFinite(value)) this.fail(`is ${value}, which JSON cannot represent`);
        this.add(jsonbNumberBytes(value));
        return value === 0 ? 0 : value; // -0 is stored (and printed) as 0
      case 'boolean':
        this.add(value ? 4 : 5);
        return value;
      case 'undefined':
        return undefined;
      case 'bigint':
        this.fail('is a BigInt, which JSON cannot represent (convert it to a string)');
      // falls through: fail() never returns
      case 'function':
      case 'symbol':
        this.fail(`is a ${typeof value}, which is not JSON (JSON.stringify would drop it)`);
      // falls through
      default:
        break;
    }
    if (value === null) {
      this.add(4);
      return null;
    }
    return this.container(value as object, depth + 1);
  }

  private container(obj: object, depth: number): JsonValue {
    if (depth > this.bounds.maxDepth) {
      this.fail(`is nested more than ${this.bounds.maxDepth} levels deep, over the limit`);
    }
    const ancestors = (this.ancestors ??= new Set());
    if (ancestors.has(obj)) this.fail('refers back to itself (a cycle), which JSON cannot represent');
    if (types.isMap(obj) || types.isSet(obj)) {
      this.fail(`is a ${types.isMap(obj) ? 'Map' : 'Set'}, which JSON.stringify would turn into {}`);
    }
    ancestors.add(obj);
    try {
      return Array.isArray(obj) ? this.array(obj as unknown[], depth) : this.object(obj, depth);
    } finally {
      ancestors.delete(obj);
    }
  }

  private array(arr: readonly unknown[], depth: number): JsonValue[] {
    const length = toLength(arr.length);
    this.add(2 + 2 * Math.max(0, length - 1)); // [] and the ", " separators
    // Every element prints at least one byte: a huge (sparse) array is refused before its
    // holes are walked.
    if (this.bytes + length > this.bounds.maxBytes) this.tooBig();
    const out: JsonValue[] = new Array<JsonValue>(length);
    for (let i = 0; i < length; i++) {
      this.path.push(i);
      const item = this.convert(i, arr[i], depth);
      this.path.pop();
      if (item === undefined) {
        out[i] = null;
        this.add(4);
      } else {
        out[i] = item;
      }
    }
    return out;
  }

  private object(obj: object, depth: number): JsonValue {
    const out: Record<string, JsonValue> = {};
    this.add(2);
    let members = 0;
    for (const key of Object.keys(obj)) {
      this.path.push(key);
      this.checkString(key, 'has a key containing');
      const item = this.convert(key, (obj as Record<string, unknown>)[key], depth);
      this.path.pop();
      if (item === undefined) continue;
      this.add(jsonbStringBytes(key) + 2 + (members > 0 ? 2 : 0)); // "key": and ", "
      members++;
      // A plain assignment of "__proto__" would set the prototype instead of a member.
      if (key === '__proto__') {
        Object.defineProperty(out, key, {
          value: item,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        out[key] = item;
      }
    }
    return out;
  }
}

/** One path step: `[3]`, `.name`, or for keys that are not short identifiers (maybe data), their length only. */
function segment(p: string | number): string {
  if (typeof p === 'number') return `[${p}]`;
  return IDENTIFIER.test(p) ? `.${p}` : `[<key of ${p.length} characters>]`;
}

/** ECMAScript ToLength, as JSON.stringify applies it to an array's length. */
function toLength(length: unknown): number {
  const n = Math.trunc(Number(length));
  if (!(n > 0)) return 0;
  return Math.min(n, Number.MAX_SAFE_INTEGER);
}
