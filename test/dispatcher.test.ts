/** The dispatcher: a NOTIFY's kick dispatches at once, but a burst of them costs one visit per turn. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type Claimant, Dispatcher } from '../src/worker/dispatcher.js';
import { Slots } from '../src/worker/slots.js';

/** A database that counts how often the dispatcher offered it slots (and takes none). */
function counting(): Claimant & { offers: number } {
  return {
    offers: 0,
    wantsWork: true,
    backlogged: false,
    startClaim() {
      this.offers++;
      return 0;
    },
  };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('kick(true) dispatches in the same turn; more in that turn wait for the next one, together', async () => {
  const d = new Dispatcher(new Slots(4, new Map()));
  const a = counting();
  d.add(a);
  d.kick(true);
  assert.equal(a.offers, 1, 'the first kick(true) dispatches at once');
  for (let i = 0; i < 100; i++) d.kick(true);
  assert.equal(a.offers, 1, 'the burst did not dispatch at once');
  await nextTurn();
  await nextTurn();
  assert.equal(a.offers, 2, 'the burst cost one dispatch');
  d.kick(true);
  assert.equal(a.offers, 3, 'a later turn dispatches at once again');
});

test('kick() dispatches on the next turn, once however many kicks', async () => {
  const d = new Dispatcher(new Slots(4, new Map()));
  const a = counting();
  d.add(a);
  d.kick();
  d.kick();
  assert.equal(a.offers, 0);
  await nextTurn();
  assert.equal(a.offers, 1);
});
