/**
 * The benchmark's WAL attribution (bench/lib/wal.ts) on pg_waldump lines of PostgreSQL 15:
 * a database's figure must count its relations' records and its transactions' commits,
 * and nothing of other databases or of the server. Runs without a database:
 * `node --import tsx --test bench/lib/*.test.ts`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { attributeWal, lsnDiff } from './wal.js';

const line = (rmgr: string, rec: number, tot: number, tx: number, desc: string, blkref = '') =>
  `rmgr: ${rmgr.padEnd(11)} len (rec/tot): ${String(rec).padStart(6)}/${String(tot).padStart(6)}, ` +
  `tx: ${String(tx).padStart(10)}, lsn: 1/59182DF8, prev 1/59182DC0, desc: ${desc}${blkref}`;

test('counts the records of the database and its transactions, with full-page image bytes', async () => {
  const ours = 16384;
  const lines = [
    // Our transaction 700: an update with a full-page image, an index insert, its commit.
    line(
      'Heap',
      79,
      8271,
      700,
      'UPDATE off 2 xmax 700 ; new off 3 xmax 0',
      `, blkref #0: rel 1663/${ours}/16385 blk 0 FPW`,
    ),
    line('Btree', 64, 64, 700, 'INSERT_LEAF off 5', `, blkref #0: rel 1663/${ours}/16390 blk 1`),
    line('Transaction', 34, 34, 700, 'COMMIT 2026-11-30 11:00:00.000000 UTC'),
    // Another database's transaction 701 and its commit.
    line('Heap', 79, 79, 701, 'HOT_UPDATE off 2 xmax 701', ', blkref #0: rel 1663/5/2615 blk 0'),
    line('Transaction', 34, 34, 701, 'COMMIT 2026-11-30 11:00:00.000001 UTC'),
    // The server's own records.
    line('Standby', 50, 50, 0, 'RUNNING_XACTS nextXid 702 latestCompletedXid 701 oldestRunningXid 702'),
    line('XLOG', 114, 114, 0, 'CHECKPOINT_ONLINE redo 1/59182DF8'),
    // Autovacuum pruning our table: no transaction id, our relation.
    line('Heap2', 60, 60, 0, 'PRUNE latestRemovedXid 700', `, blkref #0: rel 1663/${ours}/16385 blk 0`),
    // A relation whose OID merely contains ours as a substring belongs to another database.
    line('Heap', 54, 54, 702, 'INSERT off 1', `, blkref #0: rel 1663/99/${ours}1 blk 0`),
    line('Transaction', 34, 34, 702, 'COMMIT 2026-11-30 11:00:00.000002 UTC'),
  ];
  const own = await attributeWal(lines, ours);
  assert.equal(own.records, 4);
  assert.equal(own.bytes, 8271 + 64 + 34 + 60);
  assert.equal(own.fpiBytes, 8271 - 79);
  assert.deepEqual(
    own.kinds.map((k) => [k.kind, k.records, k.bytes]),
    [
      ['Heap/UPDATE', 1, 8271],
      ['Btree/INSERT_LEAF', 1, 64],
      ['Heap2/PRUNE', 1, 60],
      ['Transaction/COMMIT', 1, 34],
    ],
  );
});

test('lsnDiff subtracts LSNs across the 4 GB boundary of their high word', () => {
  assert.equal(lsnDiff('0/FFFFFF00', '1/00000100'), 0x200);
  assert.equal(lsnDiff('1/59182DF8', '1/59199860'), 0x59199860 - 0x59182df8);
});
