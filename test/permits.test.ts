/** Permits: at most `max` holders; a burst admits more at first, and the limit returns to `max`. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Permits } from '../src/worker/permits.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Asks for `n` permits; returns the release functions of those granted so far (in order). */
function ask(permits: Permits, n: number): (() => void)[] {
  const granted: (() => void)[] = [];
  for (let i = 0; i < n; i++) void permits.acquire().then((release) => granted.push(release));
  return granted;
}

test('at most max holders; a permit given back passes to the longest waiter', async () => {
  const permits = new Permits(2);
  const granted = ask(permits, 5);
  await turn();
  assert.equal(granted.length, 2);
  granted[0]!();
  granted[0]!(); // idempotent
  await turn();
  assert.equal(granted.length, 3);
});

test('a burst admits max + burst at once; given back, its permits are not handed on until max holds', async () => {
  const permits = new Permits(1, 2);
  const granted = ask(permits, 6);
  await turn();
  assert.equal(granted.length, 3, 'max 1 + burst 2 at once');
  permits.endBurst();
  granted[0]!();
  await turn();
  assert.equal(granted.length, 3, 'a burst permit is not handed on');
  granted[1]!();
  await turn();
  assert.equal(granted.length, 3, 'nor the second');
  granted[2]!();
  await turn();
  assert.equal(granted.length, 4, 'back to max 1: the last holder hands on');
  granted[3]!();
  await turn();
  assert.equal(granted.length, 5, 'one at a time from now on');
});

test('endBurst: a burst not used up is not kept for later', async () => {
  const permits = new Permits(1, 10);
  const first = ask(permits, 2);
  await turn();
  assert.equal(first.length, 2);
  permits.endBurst();
  first[0]!();
  first[1]!();
  const later = ask(permits, 3);
  await turn();
  assert.equal(later.length, 1, 'only max once the burst ended');
});

test('a limit that changes: a lower one holds as permits come back, a higher one lets waiters in', async () => {
  let limit = 3;
  const permits = new Permits(() => limit);
  const granted = ask(permits, 6);
  await turn();
  assert.equal(granted.length, 3);
  limit = 1;
  granted[0]!();
  granted[1]!();
  await turn();
  assert.equal(
    granted.length,
    3,
    'two given back, still one held: the lower limit is reached, nothing handed on',
  );
  granted[2]!();
  await turn();
  assert.equal(granted.length, 4, 'below the limit again: one is handed on');
  limit = 3;
  granted[3]!();
  await turn();
  assert.equal(granted.length, 6, 'the higher limit lets the two waiters in at the next give-back');
});
