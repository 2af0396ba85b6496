/**
 * The size measure of MAX_JSON_BYTES, computed exactly in TypeScript: how many bytes
 * PostgreSQL prints for a JSON value stored as jsonb, `octet_length(value::jsonb::text)`.
 * The SQL functions measure the same thing, so a value the driver accepts is accepted by
 * the engine too (test/jsonb-text-property.test.ts compares both on random JSON).
 *
 * jsonb's text form differs from JSON.stringify: `", "` and `": "` separators, strings
 * escaped by escape_json (only `"`, `\` and control characters; everything else as
 * UTF-8), and numbers printed by numeric_out from the parsed decimal (1e21 prints as 22
 * digits, 1.5e-7 as 0.00000015).
 */

/** A JSON value as the driver sends it: plain data, strings well-formed and without \u0000. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Characters escape_json writes as two characters (\b \t \n \f \r, and `"` `\`). */
const TWO_CHAR_ESCAPES = new Set([0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x22, 0x5c]);
const NEEDS_ESCAPE = /[\u0000-\u001f"\\]/;

/**
 * Bytes of a string as jsonb prints it: quotes, escapes and UTF-8. The string must be
 * well-formed (no lone surrogates), which the driver checks first.
 */
export function jsonbStringBytes(s: string): number {
  let bytes = Buffer.byteLength(s, 'utf8') + 2;
  if (NEEDS_ESCAPE.test(s)) {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (TWO_CHAR_ESCAPES.has(c)) bytes += 1;
      else if (c < 0x20) bytes += 5; // \u00XX
    }
  }
  return bytes;
}

/**
 * Bytes of a finite number as jsonb prints it. The driver sends JSON.stringify's form
 * (shortest round-trip digits); PostgreSQL parses it as numeric, keeping
 * max(0, decimals − exponent) decimals, and prints it without an exponent.
 */
export function jsonbNumberBytes(n: number): number {
  const s = JSON.stringify(n); // "-0" prints as "0", as PostgreSQL does
  const e = s.indexOf('e');
  if (e < 0) return s.length; // fixed notation prints back unchanged
  const sign = s.startsWith('-') ? 1 : 0;
  const mantissa = s.slice(sign, e); // one non-zero digit, then maybe "." and decimals
  const dot = mantissa.indexOf('.');
  const fraction = dot < 0 ? 0 : mantissa.length - dot - 1;
  const exponent = Number(s.slice(e + 1));
  const decimals = Math.max(0, fraction - exponent);
  const integerDigits = exponent >= 0 ? exponent + 1 : 1; // "0" before the point
  return sign + integerDigits + (decimals > 0 ? 1 + decimals : 0);
}

/**
 * Bytes of `value` as PostgreSQL prints it once stored as jsonb:
 * `octet_length($1::jsonb::text)` for `$1 = JSON.stringify(value)`. Keys of one object
 * are distinct in JavaScript, so jsonb's de-duplication never applies.
 */
export function jsonbTextBytes(value: JsonValue): number {
  switch (typeof value) {
    case 'string':
      return jsonbStringBytes(value);
    case 'number':
      return jsonbNumberBytes(value);
    case 'boolean':
      return value ? 4 : 5;
    default:
      break;
  }
  if (value === null) return 4;
  if (Array.isArray(value)) {
    let bytes = 2 + (value.length > 0 ? 2 * (value.length - 1) : 0); // [] and ", "
    for (const item of value) bytes += jsonbTextBytes(item);
    return bytes;
  }
  const keys = Object.keys(value);
  let bytes = 2 + (keys.length > 0 ? 2 * (keys.length - 1) : 0); // {} and ", "
  for (const key of keys) bytes += jsonbStringBytes(key) + 2 + jsonbTextBytes(value[key]!); // ": "
  return bytes;
}
