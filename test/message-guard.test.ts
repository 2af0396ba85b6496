/**
 * The framing walk of the many-databases message guard (src/multidb/message-guard.ts): it
 * must find every message header however the bytes are split into chunks, or it would
 * either miss an oversized message or close a connection carrying nothing wrong.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FrameScanner } from '../src/multidb/message-guard.js';

/** A backend message: type byte, length (counting itself), body. */
function message(type: string, bodyBytes: number): Buffer {
  const m = Buffer.alloc(5 + bodyBytes, 0x61);
  m.write(type, 0, 'latin1');
  m.writeUInt32BE(4 + bodyBytes, 1);
  return m;
}

/** Feeds `bytes` in chunks of `size`; the first over-limit length found, or null. */
function scanInChunks(scanner: FrameScanner, bytes: Buffer, size: number): number | null {
  for (let i = 0; i < bytes.length; i += size) {
    const found = scanner.scan(bytes.subarray(i, i + size));
    if (found !== null) return found;
  }
  return null;
}

test('messages within the limit pass however the bytes are split, and one over it is found at its header', () => {
  const ok = Buffer.concat([message('T', 30), message('D', 0), message('D', 100), message('Z', 1)]);
  // An over-limit header announces 1000 bytes; only its first bytes ever arrive.
  const huge = Buffer.concat([ok, message('D', 995).subarray(0, 7)]);
  for (const size of [1, 2, 3, 4, 5, 6, 7, 13, 64, ok.length, huge.length]) {
    assert.equal(scanInChunks(new FrameScanner(200), ok, size), null, `chunks of ${size}`);
    // Passed on across calls: the scanner keeps its place between chunks.
    const scanner = new FrameScanner(200);
    assert.equal(scanInChunks(scanner, ok, size), null);
    assert.equal(scanInChunks(scanner, ok, size), null, `a second round, chunks of ${size}`);
    assert.equal(scanInChunks(new FrameScanner(200), huge, size), 999, `chunks of ${size}`);
  }
});

test('the limit counts the whole message as its length field does', () => {
  assert.equal(new FrameScanner(104).scan(message('D', 100)), null);
  assert.equal(new FrameScanner(103).scan(message('D', 100)), 104);
});
