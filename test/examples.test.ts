import assert from 'node:assert/strict';
import { test } from 'node:test';

import { main as eventInbox } from '../examples/event-inbox.js';
import { main as moneyTransfer } from '../examples/money-transfer.js';
import { main as orderOutbox } from '../examples/order-outbox.js';
import { createTestDatabase } from './support/db.js';

test('money transfer saga: the refused transfer is refunded by the debit id its step returned', async (t) => {
  const { url } = await createTestDatabase('example_transfer');
  const log = t.mock.method(console, 'log', () => {});
  const { acceptedResults, acceptedOutput, refusedDebit, ...result } = await moneyTransfer(url);
  assert.deepEqual(result, {
    accepted: 'succeeded',
    refused: 'compensated',
    balances: { 'bank1:alice': 7500, 'bank2:bob': 2500, 'bank2:carol': 0 },
  });
  // Each step's result is the bank's id of its operation; the output is the last one's.
  const [debit, credit] = acceptedResults as [{ debitId: string }, { creditId: string }];
  assert.equal(acceptedResults.length, 2);
  assert.match(debit.debitId, /^bank1-op-\d+$/);
  assert.match(credit.creditId, /^bank2-op-\d+$/);
  assert.deepEqual(acceptedOutput, credit);
  // The refund (the compensation) got the refused transfer's debit id from its step's
  // result, and printed it.
  const { debitId } = refusedDebit as { debitId: string };
  assert.match(debitId, /^bank1-op-\d+$/);
  assert.notEqual(debitId, debit.debitId);
  const printed = log.mock.calls.map((call) => String(call.arguments[0]));
  assert.equal(printed.filter((line) => line.startsWith('refunded')).length, 1, printed.join('\n'));
  assert.ok(
    printed.some((line) =>
      new RegExp(`^refunded debit ${debitId} of transfer t2 as bank1-op-\\d+$`).test(line),
    ),
    printed.join('\n'),
  );
});

test('order outbox: the committed order sends both messages, the rolled back one nothing', async () => {
  const { url } = await createTestDatabase('example_outbox');
  const result = await orderOutbox(url);
  assert.equal(result.declined, 'payment declined');
  assert.deepEqual(result.orders, ['o-1']);
  assert.equal(result.jobs, 2);
  assert.deepEqual(result.statuses, ['succeeded', 'succeeded']);
  assert.equal(result.sent.length, 2);
  assert.match(result.sent[0]!, /^email to ann@example.com for o-1/);
  assert.equal(result.sent[1], 'sms to +100 for o-1');
});

test('event inbox: redelivered events are applied once', async () => {
  const { url } = await createTestDatabase('example_inbox');
  const result = await eventInbox(url);
  assert.deepEqual(result, {
    deliveries: 6,
    jobs: 4,
    statuses: ['succeeded', 'succeeded', 'succeeded', 'succeeded'],
    balances: { acme: 350, zeta: 100 },
  });
});
