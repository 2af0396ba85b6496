/**
 * A handler's return value (and a compensation's args) as the JSON text the engine stores,
 * or a clear permanent error naming the step when it cannot be stored. Follows
 * JSON.stringify (toJSON, boxed primitives, undefined properties left out, undefined in
 * arrays as null) but refuses what JSON.stringify would silently change or drop and what
 * PostgreSQL's jsonb refuses: BigInt, functions, symbols, Map/Set, NaN/Infinity, cycles,
 * nesting deeper than MAX_JSON_DEPTH, and strings or keys containing \u0000 or a lone
 * surrogate. The size is checked on the JSON text here; the engine checks it again as
 * PostgreSQL prints the stored jsonb (which is a little longer), and refuses the report.
 */
import { PermanentError } from '../errors.js';
import { MAX_JSON_BYTES, MAX_JSON_DEPTH } from '../limits.js';
import { asError } from './error-record.js';

/** A lone UTF-16 surrogate (with the u flag a well-formed pair is one code point). */
const LONE_SURROGATE = /\p{Cs}/u;

/** Why a string cannot be stored in jsonb, or null. */
function stringProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'contains \\u0000, which PostgreSQL jsonb cannot store';
  if (LONE_SURROGATE.test(text)) return 'contains a lone surrogate, which PostgreSQL jsonb cannot store';
  return null;
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint' || value instanceof BigInt) return 'a BigInt';
  if (value instanceof Map) return 'a Map';
  if (value instanceof Set) return 'a Set';
  return `a ${typeof value}`;
}

/**
 * The JSON text of `value` as JSON.stringify writes it, after checking every value on the
 * way; throws PermanentError(`${subject}: ${path} ${problem}`) otherwise. `root` names the
 * value in the path (`result`, `args`).
 */
export function encodeJson(value: unknown, subject: string, root: string): string {
  // Every object being written: its path, depth and holder. JSON.stringify hands the
  // replacer each value with its holder as `this`, so a value's ancestors are its holder's
  // chain. (An object met again elsewhere, not below itself, is no cycle: its entry is
  // simply replaced, since JSON.stringify has finished writing it.)
  const where = new Map<object, { path: string; depth: number; holder: object | undefined }>();
  /** The refusal thrown by the replacer; anything else thrown came from the value itself. */
  let refusal: PermanentError | undefined;
  const refuse = (path: string, problem: string): never => {
    throw (refusal = new PermanentError(`${subject}: ${path} ${problem}`));
  };
  function replacer(this: unknown, key: string, raw: unknown): unknown {
    const holderObject = this as object;
    const holder = where.get(holderObject);
    const path = !holder
      ? root
      : Array.isArray(holderObject)
        ? `${holder.path}[${key}]`
        : `${holder.path}${pathKey(key)}`;
    if (holder && !Array.isArray(holderObject)) {
      const keyProblem = stringProblem(key);
      if (keyProblem) refuse(path, `is under a key that ${keyProblem}`);
    }
    // JSON.stringify unwraps boxed primitives after the replacer: check what it will write.
    const value =
      raw instanceof Number || raw instanceof String || raw instanceof Boolean ? raw.valueOf() : raw;
    switch (typeof value) {
      case 'string': {
        const problem = stringProblem(value);
        if (problem) refuse(path, problem);
        return raw;
      }
      case 'number':
        if (!Number.isFinite(value)) refuse(path, `is ${value}, which JSON cannot represent`);
        return raw;
      case 'boolean':
      case 'undefined':
        return raw;
      case 'bigint':
        return refuse(path, 'is a BigInt, which JSON cannot represent (convert it to a string)');
      case 'function':
      case 'symbol':
        return refuse(path, `is ${describe(value)}, which is not JSON`);
      default:
        break;
    }
    if (value === null) return raw;
    if (value instanceof BigInt)
      refuse(path, 'is a BigInt, which JSON cannot represent (convert it to a string)');
    if (value instanceof Map || value instanceof Set) {
      refuse(path, `is ${describe(value)}, which JSON.stringify would write as {}`);
    }
    for (let above: object | undefined = holderObject; above; above = where.get(above)?.holder) {
      if (above === value) refuse(path, 'refers back to itself (a cycle), which JSON cannot represent');
    }
    const depth = (holder?.depth ?? 0) + 1;
    if (depth > MAX_JSON_DEPTH) refuse(path, `nests deeper than ${MAX_JSON_DEPTH} levels`);
    where.set(value as object, { path, depth, holder: holder ? holderObject : undefined });
    return raw;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value, replacer);
  } catch (error) {
    if (refusal !== undefined) throw refusal;
    // A toJSON or getter that throws, say: anything at all (null, a revoked proxy, which
    // even instanceof cannot look at), read defensively.
    throw new PermanentError(`${subject}: ${root} could not be written as JSON (${asError(error).message})`);
  }
  if (text === undefined) return refuse(root, `is ${describe(value)}, which is not JSON`);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_JSON_BYTES) {
    refuse(root, `is ${bytes} bytes as JSON, over the limit of ${MAX_JSON_BYTES} bytes`);
  }
  return text;
}

/** `.name` for plain keys, else `["key"]` quoted as JSON (escaped, cut): error text stays readable. */
function pathKey(key: string): string {
  if (/^[A-Za-z_$][\w$]{0,63}$/.test(key)) return `.${key}`;
  const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
  return `[${JSON.stringify(shown)}]`;
}

/**
 * The JSON text stored as the result of step `stepName`; null (no result) for undefined
 * and null. Throws PermanentError naming the step when the value cannot be stored.
 */
export function encodeResult(value: unknown, stepName: string): string | null {
  if (value === undefined || value === null) return null;
  return encodeJson(value, `step ${stepName} returned a result that cannot be stored`, 'result');
}
