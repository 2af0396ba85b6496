/** splitPlaceholders: `$n` outside literals, identifiers, dollar quotes and comments only. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { splitPlaceholders } from '../src/db/placeholders.js';

const join = (s: { chunks: string[]; params: number[] }) =>
  s.chunks.reduce((acc, chunk, i) => (i === 0 ? chunk : `${acc}<${s.params[i - 1]}>${chunk}`), '');

test('splits at each placeholder, keeping repeats and order of appearance', () => {
  const s = splitPlaceholders('SELECT f($2::jsonb, $1, $2) WHERE x = $10');
  assert.deepEqual(s.params, [2, 1, 2, 10]);
  assert.deepEqual(s.chunks, ['SELECT f(', '::jsonb, ', ', ', ') WHERE x = ', '']);
});

test('a statement without placeholders is one chunk', () => {
  assert.deepEqual(splitPlaceholders('SELECT 1'), { chunks: ['SELECT 1'], params: [] });
});

test('text that only looks like a placeholder is left alone', () => {
  const cases: [string, string][] = [
    [`SELECT '$1', $1`, `SELECT '$1', <1>`],
    [`SELECT 'it''s $1', $2`, `SELECT 'it''s $1', <2>`],
    [`SELECT E'\\' $1', $2`, `SELECT E'\\' $1', <2>`],
    [`SELECT "col$1", "a""$1", $3`, `SELECT "col$1", "a""$1", <3>`],
    [`SELECT a$1, $1`, `SELECT a$1, <1>`],
    [`SELECT $$ $1 $$, $1`, `SELECT $$ $1 $$, <1>`],
    [`SELECT $fn$ $1 $x$ $fn$, $2`, `SELECT $fn$ $1 $x$ $fn$, <2>`],
    [`SELECT 1 -- $1\n, $2`, `SELECT 1 -- $1\n, <2>`],
    [`SELECT /* $1 /* nested $2 */ $3 */ $4`, `SELECT /* $1 /* nested $2 */ $3 */ <4>`],
  ];
  for (const [text, expected] of cases) assert.equal(join(splitPlaceholders(text)), expected, text);
});

test('unterminated quotes and comments swallow the rest (the server will reject the statement)', () => {
  for (const text of [`SELECT '$1`, `SELECT "$1`, `SELECT /* $1`, `SELECT $q$ $1`]) {
    assert.deepEqual(splitPlaceholders(text), { chunks: [text], params: [] });
  }
});
