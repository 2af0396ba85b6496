/** ctx.signal is made only when read: it must behave as an AbortController's signal all the same. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LazyAbort } from '../src/worker/lazy-abort.js';

test('a signal read after the abort is already aborted, with the first reason', () => {
  const a = new LazyAbort();
  assert.equal(a.aborted, false);
  const first = new Error('job 1 was cancelled');
  a.abort(first);
  a.abort(new Error('worker is stopping'));
  assert.equal(a.aborted, true);
  assert.equal(a.signal.aborted, true);
  assert.equal(a.signal.reason, first);
  assert.equal(a.signal, a.signal, 'one signal, however often it is read');
});

test('a signal read before the abort fires its listeners once, with the first reason', () => {
  const a = new LazyAbort();
  const signal = a.signal;
  assert.equal(signal.aborted, false);
  const seen: unknown[] = [];
  signal.addEventListener('abort', () => seen.push(signal.reason));
  const first = new Error('lease on job 2 was lost');
  a.abort(first);
  a.abort(new Error('again'));
  assert.deepEqual(seen, [first]);
  assert.equal(a.signal, signal);
});
