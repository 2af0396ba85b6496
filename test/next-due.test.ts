/**
 * next_due_in_ms, the look-up an idle worker (and every claim that came back short) makes
 * to sleep until the next unit is due: the earliest unit across priorities, names and
 * queues, and a cost that does not grow with the units waiting for later (a worker with
 * many jobs scheduled ahead made it aggregate every one of them on each short claim).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

const filler = Array.from({ length: 20 }, (_, i) => `nd.filler.${i}`);

async function due(names: string[], queues: string[] | null): Promise<number | null> {
  const { rows } = await h.pool.query<{ ms: number | null }>(`SELECT stepping.next_due_in_ms($1, $2) AS ms`, [
    names,
    queues,
  ]);
  return rows[0]!.ms;
}

/**
 * Asserts `ms` is within 10 s below `expected` (time passes between enqueue and look-up;
 * a loaded machine can stall for seconds). The candidates each test tells apart lie 20 s
 * or more apart.
 */
function near(ms: number | null, expected: number, what: string): void {
  assert.ok(ms !== null, `${what}: null`);
  assert.ok(ms <= expected && ms > expected - 10_000, `${what}: ${ms} ms, expected about ${expected}`);
}

test('the earliest due unit is found across priorities, names and queues, with short and long name lists', async () => {
  await h.stepping.enqueueMany(undefined, [
    { steps: [{ name: 'nd.a', args: {} }], options: { queue: 'nd', priority: 5, delayMs: 100_000 } },
    { steps: [{ name: 'nd.a', args: {} }], options: { queue: 'nd', priority: 0, delayMs: 600_000 } },
    { steps: [{ name: 'nd.a', args: {} }], options: { queue: 'nd', priority: -3, delayMs: 400_000 } },
    { steps: [{ name: 'nd.other', args: {} }], options: { queue: 'nd', priority: -1, delayMs: 10_000 } },
    { steps: [{ name: 'nd.a', args: {} }], options: { queue: 'nd2', priority: 2, delayMs: 50_000 } },
  ]);
  for (const extra of [[], filler]) {
    const label = extra.length > 0 ? 'long list' : 'short list';
    near(await due([...extra, 'nd.a'], ['nd']), 100_000, `${label}, nd.a in nd`);
    near(await due([...extra, 'nd.a'], null), 50_000, `${label}, nd.a anywhere`);
    near(await due([...extra, 'nd.a', 'nd.other'], ['nd', 'nd2']), 10_000, `${label}, both names`);
    assert.equal(await due([...extra, 'nd.zzz'], null), null, `${label}, a name with no jobs`);
    assert.equal(await due([...extra, 'nd.a'], ['nd3']), null, `${label}, a queue with no jobs`);
  }
  // A unit due now (or overdue) says so.
  await h.stepping.enqueue([{ name: 'nd.a', args: {} }], { queue: 'nd', priority: 9 });
  const now = await due(['nd.a'], ['nd']);
  assert.ok(now !== null && now <= 0, `due now: ${now}`);
  // A running unit is due when its lease expires (its worker may have died).
  await h.pool.query(`DELETE FROM stepping.jobs WHERE queue LIKE 'nd%'`);
  await h.stepping.enqueue([{ name: 'nd.a', args: {} }], { queue: 'nd' });
  await h.pool.query(`SELECT * FROM stepping.step_claim('t', ARRAY['nd.a'], ARRAY['nd'], 1, 30000)`);
  near(await due(['nd.a'], ['nd']), 30_000, 'a leased unit');
  await h.pool.query(`DELETE FROM stepping.jobs WHERE queue LIKE 'nd%'`);
});

test('many distinct priorities: the earliest is still found', async () => {
  // 100 priorities, the latest-priority job due first.
  await h.stepping.enqueueMany(
    undefined,
    Array.from({ length: 100 }, (_, i) => ({
      steps: [{ name: 'nd.p', args: {} }],
      options: { queue: 'ndp', priority: i, delayMs: 10_000 + (99 - i) * 20_000 },
    })),
  );
  near(await due(['nd.p'], ['ndp']), 10_000, 'short list');
  near(await due([...filler, 'nd.p'], ['ndp']), 10_000, 'long list');
  await h.pool.query(`DELETE FROM stepping.jobs WHERE queue = 'ndp'`);
});

test('the look-up reads a few rows, not every unit waiting for later', async () => {
  const jobs = 3000;
  for (let i = 0; i < jobs; i += 1000) {
    await h.stepping.enqueueMany(
      undefined,
      Array.from({ length: 1000 }, (_, k) => ({
        steps: [{ name: 'nd.s', args: {} }],
        options: { queue: 'nds', priority: (i + k) % 3, delayMs: 3_600_000 + k },
      })),
    );
  }
  await h.pool.query('ANALYZE stepping.jobs');
  const c = await h.pool.connect();
  try {
    await c.query('BEGIN');
    // The transaction's own table counters (they move within it, unlike pg_stat_user_tables).
    const read = async () =>
      Number(
        (
          await c.query<{ n: string }>(
            `SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::text AS n
             FROM pg_catalog.pg_stat_xact_user_tables WHERE schemaname = 'stepping' AND relname = 'jobs'`,
          )
        ).rows[0]!.n,
      );
    for (const names of [['nd.s'], [...filler, 'nd.s']]) {
      const before = await read();
      const { rows } = await c.query<{ ms: number }>(
        `SELECT stepping.next_due_in_ms($1, ARRAY['nds']) AS ms`,
        [names],
      );
      const rowsRead = (await read()) - before;
      near(rows[0]!.ms, 3_600_000, `${names.length} names`);
      assert.ok(rowsRead < 50, `${names.length} names: read ${rowsRead} rows of jobs for ${jobs} scheduled`);
    }
    await c.query('COMMIT');
  } finally {
    c.release();
  }
  await h.pool.query(`DELETE FROM stepping.jobs WHERE queue = 'nds'`);
});

test('a short list of names is compared as it is: the set of a long list is built only for one', async () => {
  // _name_set is a SQL function, parsed and planned on every call: it cost a third of an
  // idle worker's one-unit claim when called for every list.
  const c = await h.pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SET LOCAL track_functions = 'all'`);
    const calls = async () =>
      Number(
        (
          await c.query<{ n: string }>(
            `SELECT coalesce(sum(calls), 0)::text AS n FROM pg_catalog.pg_stat_xact_user_functions
             WHERE schemaname = 'stepping' AND funcname = '_name_set'`,
          )
        ).rows[0]!.n,
      );
    const before = await calls();
    await c.query(`SELECT * FROM stepping.step_claim('t', ARRAY['nd.none'], ARRAY['ndn'], 1, 30000)`);
    await c.query(`SELECT stepping.next_due_in_ms(ARRAY['nd.none'], ARRAY['ndn'])`);
    assert.equal((await calls()) - before, 0, 'short lists');
    await c.query(`SELECT * FROM stepping.step_claim('t', $1, ARRAY['ndn'], 1, 30000)`, [
      [...filler, 'nd.none'],
    ]);
    await c.query(`SELECT stepping.next_due_in_ms($1, ARRAY['ndn'])`, [[...filler, 'nd.none']]);
    assert.equal((await calls()) - before, 2, 'long lists');
    await c.query('ROLLBACK');
  } finally {
    c.release();
  }
});
