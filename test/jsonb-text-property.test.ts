/**
 * jsonbTextBytes (the driver's measure of MAX_JSON_BYTES) equals PostgreSQL's own
 * `octet_length($1::jsonb::text)` on random JSON: unicode, every escape, extreme numbers
 * (1e21 printed as 22 digits, 5e-324 as 326 characters), deep nesting. And the driver's
 * conversion reports that same size for what it sends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';

import { toStoredJson } from '../src/enqueue/to-json.js';
import { jsonbTextBytes, type JsonValue } from '../src/index.js';
import { setup } from './support/harness.js';
import { propertyParameters } from './support/property.js';

const h = await setup(import.meta.url);

/** Characters that print differently in jsonb: escapes, controls, multi-byte and astral ones. */
const special = fc.constantFrom(
  '"',
  '\\',
  '/',
  '\n',
  '\r',
  '\t',
  '\b',
  '\f',
  '\u0001',
  '\u001f',
  '\u007f',
  '\u0080',
  'é',
  '€',
  '\u2028',
  '😀',
  ' ',
);
const char = fc.oneof(special, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }));
// jsonb cannot store \u0000 (the driver refuses it before measuring).
const text = fc.string({ unit: char, maxLength: 12 }).map((s) => s.replaceAll('\u0000', ''));
const number = fc
  .oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.double({ min: -1e-5, max: 1e-5, noNaN: true }),
    fc.constantFrom(
      1e21,
      1e20,
      1.5e-7,
      1e-7,
      1e-6,
      5e-324,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      2 ** 53,
      0.1,
      -0,
      123e-20,
    ),
  )
  .filter(Number.isFinite);

const { json } = fc.letrec<{ json: JsonValue }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    text,
    number,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('json'), { maxLength: 5 }),
    fc
      .array(fc.tuple(fc.oneof(text, fc.constant('__proto__')), tie('json')), { maxLength: 5 })
      .map((entries) => Object.fromEntries(entries) as JsonValue),
  ),
}));
/** A value wrapped in up to 120 levels of arrays and objects. */
const deep = fc
  .tuple(json, fc.array(fc.boolean(), { maxLength: 120 }))
  .map(([inner, levels]) => levels.reduce<JsonValue>((v, asArray) => (asArray ? [v] : { k: v }), inner));
const anyJson = fc.oneof({ weight: 4, arbitrary: json }, { weight: 1, arbitrary: deep });

test('jsonbTextBytes equals octet_length(value::jsonb::text) on random JSON', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(anyJson, { minLength: 1, maxLength: 25 }), async (values) => {
      const { rows } = await h.pool.query<{ n: number }>(
        'SELECT octet_length(t::jsonb::text) AS n FROM unnest($1::text[]) WITH ORDINALITY u(t, i) ORDER BY i',
        [values.map((v) => JSON.stringify(v))],
      );
      values.forEach((v, i) => assert.equal(jsonbTextBytes(v), rows[i]!.n, JSON.stringify(v)));
    }),
    propertyParameters('jsonbTextBytes vs PostgreSQL', 200),
  );
});

test('the driver converts JSON unchanged and reports the size jsonbTextBytes gives', () => {
  const bounds = { maxBytes: Number.MAX_SAFE_INTEGER, maxDepth: 1000 };
  fc.assert(
    fc.property(anyJson, (value) => {
      const stored = toStoredJson(value, 'args', bounds);
      assert.deepEqual(stored.value, JSON.parse(JSON.stringify(value)));
      assert.equal(stored.bytes, jsonbTextBytes(stored.value));
    }),
    propertyParameters('driver conversion size', 2000),
  );
});

test('sizes of the documented examples', async () => {
  const examples: [JsonValue, string][] = [
    [1e21, '1000000000000000000000'],
    [1.5e-7, '0.00000015'],
    [{ a: [1, 'x'] }, '{"a": [1, "x"]}'],
    ['tab\there "quoted" \u0001', '"tab\\there \\"quoted\\" \\u0001"'],
  ];
  for (const [value, printed] of examples) {
    const { rows } = await h.pool.query('SELECT $1::jsonb::text AS t', [JSON.stringify(value)]);
    assert.equal(rows[0].t, printed);
    assert.equal(jsonbTextBytes(value), Buffer.byteLength(printed));
  }
});
