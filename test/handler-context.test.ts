/** ctx.signal and ctx.results are made only when read: they must behave as if made up front. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HandlerContext } from '../src/worker/handler-context.js';
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

test('the handler context: results by index without holes, made once; retryLater works detached', () => {
  const abort = new LazyAbort();
  const unit = {
    jobId: '7',
    leaseToken: '00000000-0000-4000-8000-000000000000',
    stepIndex: 2,
    phase: 'forward' as const,
    name: 's',
    args: null,
    attempt: 1,
    queue: 'q',
    stepCount: 3,
    results: { 0: { charge: 'ch_1' } },
    traceParent: null,
    traceState: null,
    maxAttempts: null,
    deadlineInMs: null,
    cancelRequested: false,
    fleetLimited: false,
  };
  const ctx = new HandlerContext(unit, abort, 'db', undefined);
  assert.deepEqual(ctx.results, [{ charge: 'ch_1' }, undefined, undefined]);
  assert.equal(ctx.results.length, 3);
  assert.equal(ctx.results, ctx.results, 'one array, however often it is read');
  assert.equal(ctx.idempotencyKey, '7:2');
  const { retryLater } = ctx;
  assert.deepEqual(retryLater(250), { kind: 'stepping.retryLater', delayMs: 250 });
  abort.abort(new Error('cancelled'));
  assert.equal(ctx.signal.aborted, true);
  // Nothing private shows when a handler logs its ctx.
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(ctx)) as object).sort(), [
    'attempt',
    'database',
    'idempotencyKey',
    'jobId',
    'phase',
    'queue',
    'stepCount',
    'stepIndex',
  ]);
});
