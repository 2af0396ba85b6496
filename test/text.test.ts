/** Data printed for an operator cannot drive the terminal: escapes for text, tables, log lines and JSON. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeError, errorText, terminalIo } from '../src/cli/args.js';
import { formatCell, formatRecord, formatTable } from '../src/cli/table.js';
import { escapeControl, jsonForTerminal } from '../src/text.js';

/** Every character escapeControl must escape. */
const CONTROLS = [
  ...Array.from({ length: 0x20 }, (_, i) => i),
  ...Array.from({ length: 0x21 }, (_, i) => 0x7f + i),
  0x061c,
  0x200e,
  0x200f,
  0x2028,
  0x2029,
  0x202a,
  0x202b,
  0x202c,
  0x202d,
  0x202e,
  0x2066,
  0x2067,
  0x2068,
  0x2069,
].map((code) => String.fromCharCode(code));

test('escapeControl writes C0, DEL, C1 and bidi controls as \\uXXXX and leaves other text alone', () => {
  assert.equal(escapeControl('q\u001b]0;pwned\u0007\u001b[31m'), 'q\\u001b]0;pwned\\u0007\\u001b[31m');
  assert.equal(escapeControl('csi\u009b2J del\u007f'), 'csi\\u009b2J del\\u007f');
  assert.equal(escapeControl('invoice\u202egpj.exe'), 'invoice\\u202egpj.exe');
  assert.equal(escapeControl('a\nb\r\tc'), 'a\\u000ab\\u000d\\u0009c');
  assert.equal(escapeControl('a\nb\r', { keepNewlines: true }), 'a\nb\\u000d');
  for (const c of CONTROLS) {
    const escaped = escapeControl(`x${c}y`);
    assert.match(escaped, /^x\\u[0-9a-f]{4}y$/, `U+${c.charCodeAt(0).toString(16)}`);
    assert.equal(JSON.parse(`"${escaped}"`), `x${c}y`, 'the escape is the JSON/JS one');
  }
  const plain = 'café — naïve 日本語 emoji 🎉 tab-free \\ backslash "quotes"';
  assert.equal(escapeControl(plain), plain);
  // Idempotent: escaping twice changes nothing more.
  const once = escapeControl('\u001b[2J\u0085');
  assert.equal(escapeControl(once), once);
});

test('jsonForTerminal is JSON that parses back to the value, without raw C1 or bidi controls', () => {
  const value = { queue: 'q\u001b]0;x\u0007', name: 'csi\u009b2J', key: 'a\u202eb', line: 'l\u2028m', n: 1 };
  const text = jsonForTerminal(value);
  assert.deepEqual(JSON.parse(text), value);
  assert.equal(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/.test(text), false, text);
  assert.match(text, /"csi\\u009b2J"/);
  assert.equal(jsonForTerminal(undefined), 'null');
  assert.equal(jsonForTerminal([1, 'a'], 0), '[1,"a"]');
});

test('table cells and records are one line each, with controls escaped', () => {
  assert.equal(formatCell('boom\u001b[2J\nFORGED line'), 'boom\\u001b[2J FORGED line');
  assert.equal(formatCell({ k: 'v\u009b' }), '{"k":"v\\u009b"}');
  const table = formatTable(
    [{ queue: 'q\u001b[31m', error: 'x\ry\n z' }],
    [
      { header: 'queue', value: (r) => r.queue },
      { header: 'error', value: (r) => r.error },
    ],
  );
  assert.equal(table, 'QUEUE        ERROR\nq\\u001b[31m  x\\u000dy z');
  assert.equal(formatRecord([['key', 'a\u202eb']]), 'key  a\\u202eb');
});

test('error lines are masked and escaped; JSON error fields are masked only', () => {
  const error = new Error('stepping: cannot reach postgres://app:s3cret@db/x\n\u001b[2Jnext');
  assert.equal(errorText(error), 'cannot reach postgres://app:***@db/x\n\u001b[2Jnext');
  assert.equal(describeError(error), 'cannot reach postgres://app:***@db/x\\u000a\\u001b[2Jnext');
  const aggregate = new AggregateError([new Error('a\u0007'), new Error('postgres://u:pw@h/d')], '');
  assert.equal(describeError(aggregate), 'a\\u0007; postgres://u:***@h/d');
});

test('terminalIo escapes every control but the line feed on both streams', () => {
  const written: string[] = [];
  const io = terminalIo({ stdout: (t) => written.push(`out:${t}`), stderr: (t) => written.push(`err:${t}`) });
  io.stdout('a\u001b[31m\n');
  io.stderr('\u009bb\r\n');
  assert.deepEqual(written, ['out:a\\u001b[31m\n', 'err:\\u009bb\\u000d\n']);
});
