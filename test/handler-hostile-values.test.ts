/**
 * Values a hostile handler throws or returns that change when read twice, or whose
 * conversion throws something that is not an Error: each fails its own attempt the way
 * the README says, and the worker goes on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { defineStep } from '../src/index.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** An Error whose `name` reads as a string once, then throws. */
function flippingName(): Error {
  const error = new Error('flips');
  let reads = 0;
  Object.defineProperty(error, 'name', {
    get() {
      if (reads++ === 0) return 'Error';
      throw new Error('trap: name read twice');
    },
  });
  return error;
}

test(
  'an error whose name getter throws on its second read fails the attempt; the worker goes on',
  { timeout: 60_000 },
  async (t) => {
    const step = defineStep(
      'hostile.flipping-name',
      () => {
        throw flippingName();
      },
      { maxAttempts: 1 },
    );
    const ok = defineStep('hostile.ok', () => 'fine');
    const w = await h.worker({ steps: [step, ok], queues: ['flip'], pollIntervalMs: 100 }, t);
    const id = await h.stepping.enqueue([step(null)], { queue: 'flip' });
    const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
    assert.equal(final.status, 'failed');
    assert.match(final.lastError ?? '', /flips/);
    const next = await h.stepping.enqueue([ok(null)], { queue: 'flip' });
    assert.equal((await h.stepping.waitForJob(next, { timeoutMs: 20_000 })).status, 'succeeded');
    await w.stop();
  },
);

test(
  'a result whose toJSON throws something that is not an Error fails the step at once and permanently',
  { timeout: 60_000 },
  async (t) => {
    const unreadable = new Proxy(
      {},
      {
        get() {
          throw new Error('trap: get');
        },
      },
    );
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    const thrown: Record<string, unknown> = { null: null, undefined, unreadable, revoked: revocable.proxy };
    const step = defineStep(
      'hostile.to-json',
      (args: { kind: string }) => ({
        toJSON() {
          throw thrown[args.kind];
        },
      }),
      { backoff: { baseMs: 10, maxMs: 20 } },
    );
    const w = await h.worker({ steps: [step], queues: ['to-json'], pollIntervalMs: 100 }, t);
    for (const kind of Object.keys(thrown)) {
      const id = await h.stepping.enqueue([step({ kind })], { queue: 'to-json' });
      const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
      assert.equal(final.status, 'failed', kind);
      assert.match(
        final.lastError ?? '',
        /hostile\.to-json returned a result that cannot be stored: result could not be written as JSON/,
        kind,
      );
      assert.equal((await h.stepping.steps(id))[0]!.attempts, 1, `${kind}: not retried`);
    }
    await w.stop();
  },
);

test(
  'abort listeners of ctx.signal that throw do not reach the worker process',
  { timeout: 60_000 },
  async (t) => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    t.after(() => {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
    });
    const removed = { count: 0 };
    const step = defineStep(
      'hostile.abort-listener',
      async (_args: unknown, ctx) => {
        const { signal } = ctx;
        signal.addEventListener('abort', () => {
          throw new Error('abort listener threw');
        });
        signal.addEventListener('abort', {
          handleEvent() {
            throw new Error('handleEvent threw');
          },
        });
        signal.addEventListener('abort', async () => {
          throw new Error('async abort listener rejected');
        });
        signal.onabort = () => {
          throw new Error('onabort threw');
        };
        // Removing a listener still works: this one must never run.
        const never = () => removed.count++;
        signal.addEventListener('abort', never);
        signal.removeEventListener('abort', never);
        // Node's own users of the signal still work with it.
        await sleep(600_000, undefined, { signal }).catch(() => {});
      },
      { timeoutMs: 200, maxAttempts: 1 },
    );
    const ok = defineStep('hostile.after-abort', () => 'fine');
    const w = await h.worker({ steps: [step, ok], queues: ['abort'], pollIntervalMs: 100 }, t);
    const id = await h.stepping.enqueue([step(null)], { queue: 'abort' });
    const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
    assert.equal(final.status, 'failed');
    assert.match(final.lastError ?? '', /timed out/);
    const next = await h.stepping.enqueue([ok(null)], { queue: 'abort' });
    assert.equal((await h.stepping.waitForJob(next, { timeoutMs: 20_000 })).status, 'succeeded');
    assert.deepEqual(uncaught, [], 'nothing a listener threw became an uncaught exception or rejection');
    assert.equal(removed.count, 0, 'a removed listener was not called');
    await w.stop();
  },
);

test(
  'a thrown proxy of an Error whose traps change their answers fails the attempt; the worker goes on',
  { timeout: 60_000 },
  async (t) => {
    /**
     * An Error while the worker first looks at it (three prototype checks, one read of each
     * property), then a prototype that cannot be read and properties that are gone.
     */
    function shifty(): unknown {
      const target = new Error('shifty');
      const seen = new Map<string, number>();
      const fresh = (trap: string, times: number) => {
        const n = seen.get(trap) ?? 0;
        seen.set(trap, n + 1);
        return n < times;
      };
      return new Proxy(target, {
        getPrototypeOf(t) {
          if (fresh('getPrototypeOf', 3)) return Reflect.getPrototypeOf(t);
          throw new Error('trap: getPrototypeOf again');
        },
        get(t, property) {
          return fresh(`get ${String(property)}`, 1) ? (Reflect.get(t, property) as unknown) : undefined;
        },
      });
    }
    const step = defineStep(
      'hostile.shifty',
      () => {
        throw shifty();
      },
      { maxAttempts: 1 },
    );
    const ok = defineStep('hostile.after-shifty', () => 'fine');
    const w = await h.worker({ steps: [step, ok], queues: ['shifty'], pollIntervalMs: 100 }, t);
    const id = await h.stepping.enqueue([step(null)], { queue: 'shifty' });
    const final = await h.stepping.waitForJob(id, { timeoutMs: 20_000 });
    assert.equal(final.status, 'failed');
    assert.match(final.lastError ?? '', /shifty/);
    const next = await h.stepping.enqueue([ok(null)], { queue: 'shifty' });
    assert.equal((await h.stepping.waitForJob(next, { timeoutMs: 20_000 })).status, 'succeeded');
    await w.stop();
  },
);
