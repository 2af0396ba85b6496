/**
 * Daylight saving for every cron pattern (src/schedules/cron.ts), without a database: a wall
 * time a spring-forward skips runs once, at the first valid instant after the gap (all the
 * skipped times of one gap together), and one a fall-back repeats runs once, at its first
 * occurrence. Sub-hourly, hourly and list patterns in Europe/Berlin (one-hour shifts at
 * 02:00/03:00) and Australia/Lord_Howe (half-hour shifts), on both transition days. Each
 * case checks the due times a walk forward finds (nextAfter from every minute of the
 * window), and that counting back (previousBefore, dueRuns: missed runs after downtime)
 * finds the same ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CronSchedule } from '../src/schedules/cron.js';

interface Case {
  zone: string;
  cron: string;
  /** The window, UTC, both ends included. */
  from: string;
  to: string;
  /** Every due time in the window, UTC. */
  due: string[];
}

const MINUTE = 60_000;

function check({ zone, cron, from, to, due }: Case): void {
  const c = new CronSchedule(cron, zone);
  const start = new Date(from).getTime();
  const end = new Date(to).getTime();
  const expected = due.map((d) => new Date(d).getTime());
  const what = `${cron} in ${zone}`;
  // Forward from the window's start, one due time after the other.
  const found: string[] = [];
  for (let t = c.nextAfter(new Date(start - 1)); t && t.getTime() <= end; t = c.nextAfter(t))
    found.push(t.toISOString());
  assert.deepEqual(found, due, `${what}: the due times`);
  // From every five minutes of the window (inside a gap, in a repeated hour...) and on
  // either side of each due time.
  const points = new Set<number>();
  for (let t = start; t <= end; t += 5 * MINUTE) points.add(t);
  for (const d of expected) for (const t of [d - 1, d, d + 1]) points.add(t);
  for (const t of [...points].sort((x, y) => x - y)) {
    const next = expected.find((d) => d > t);
    const got = c.nextAfter(new Date(t))?.getTime();
    if (next !== undefined) assert.equal(got, next, `${what}: nextAfter(${new Date(t).toISOString()})`);
    const previous = expected.findLast((d) => d < t);
    if (previous !== undefined)
      assert.equal(
        c.previousBefore(new Date(t))?.getTime(),
        previous,
        `${what}: previousBefore(${new Date(t).toISOString()})`,
      );
  }
  // Missed runs after downtime over the whole window, counted back from its end.
  assert.deepEqual(
    c.dueRuns(new Date(start), new Date(end), 1000).map((d) => d.toISOString()),
    due,
    `${what}: dueRuns`,
  );
}

test('Europe/Berlin spring forward (29 March 2026, 02:00 CET -> 03:00 CEST): skipped times run once at 03:00', () => {
  // Sub-hourly within the skipped hour: one run, at 03:00 CEST (01:00Z); the next day all three.
  check({
    zone: 'Europe/Berlin',
    cron: '*/20 2 * * *',
    from: '2026-03-28T12:00:00Z',
    to: '2026-03-30T12:00:00Z',
    due: [
      '2026-03-29T01:00:00.000Z',
      '2026-03-30T00:00:00.000Z',
      '2026-03-30T00:20:00.000Z',
      '2026-03-30T00:40:00.000Z',
    ],
  });
  // Hourly: 02:00 is skipped and runs at 03:00, together with 03:00 itself (one run).
  check({
    zone: 'Europe/Berlin',
    cron: '0 * * * *',
    from: '2026-03-28T23:30:00Z',
    to: '2026-03-29T02:30:00Z',
    due: ['2026-03-29T00:00:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z'],
  });
  check({
    zone: 'Europe/Berlin',
    cron: '*/15 * * * *',
    from: '2026-03-29T00:30:00Z',
    to: '2026-03-29T01:30:00Z',
    due: [
      '2026-03-29T00:30:00.000Z',
      '2026-03-29T00:45:00.000Z',
      '2026-03-29T01:00:00.000Z', // 02:00 to 02:45 CET, and 03:00 CEST
      '2026-03-29T01:15:00.000Z',
      '2026-03-29T01:30:00.000Z',
    ],
  });
  // A list inside the gap: one run.
  check({
    zone: 'Europe/Berlin',
    cron: '0,30 2 * * *',
    from: '2026-03-28T12:00:00Z',
    to: '2026-03-29T23:59:00Z',
    due: ['2026-03-29T01:00:00.000Z'],
  });
});

test('Europe/Berlin fall back (25 October 2026, 03:00 CEST -> 02:00 CET): repeated times run once, at the first', () => {
  check({
    zone: 'Europe/Berlin',
    cron: '*/20 2 * * *',
    from: '2026-10-24T12:00:00Z',
    to: '2026-10-25T12:00:00Z',
    due: ['2026-10-25T00:00:00.000Z', '2026-10-25T00:20:00.000Z', '2026-10-25T00:40:00.000Z'],
  });
  check({
    zone: 'Europe/Berlin',
    cron: '0 * * * *',
    from: '2026-10-24T23:30:00Z',
    to: '2026-10-25T03:30:00Z',
    // 02:00 CEST; not 02:00 CET (01:00Z); 03:00 CET; 04:00 CET.
    due: ['2026-10-25T00:00:00.000Z', '2026-10-25T02:00:00.000Z', '2026-10-25T03:00:00.000Z'],
  });
  check({
    zone: 'Europe/Berlin',
    cron: '0,30 2 * * *',
    from: '2026-10-24T12:00:00Z',
    to: '2026-10-26T12:00:00Z',
    due: [
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:00:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ],
  });
});

test('Australia/Lord_Howe spring forward (4 October 2026, 02:00 +10:30 -> 02:30 +11): skipped times run at 02:30', () => {
  check({
    zone: 'Australia/Lord_Howe',
    cron: '0 * * * *',
    from: '2026-10-03T14:00:00Z',
    to: '2026-10-03T16:59:00Z',
    // 01:00 +10:30; 02:00, skipped, at 02:30 +11; 03:00 +11.
    due: ['2026-10-03T14:30:00.000Z', '2026-10-03T15:30:00.000Z', '2026-10-03T16:00:00.000Z'],
  });
  check({
    zone: 'Australia/Lord_Howe',
    cron: '*/15 * * * *',
    from: '2026-10-03T15:00:00Z',
    to: '2026-10-03T16:00:00Z',
    due: [
      '2026-10-03T15:00:00.000Z',
      '2026-10-03T15:15:00.000Z',
      '2026-10-03T15:30:00.000Z', // 02:00 and 02:15 (skipped) with 02:30
      '2026-10-03T15:45:00.000Z',
      '2026-10-03T16:00:00.000Z',
    ],
  });
  check({
    zone: 'Australia/Lord_Howe',
    cron: '0,10 2 * * *',
    from: '2026-10-03T12:00:00Z',
    to: '2026-10-04T12:00:00Z',
    due: ['2026-10-03T15:30:00.000Z'],
  });
});

test('Australia/Lord_Howe fall back (5 April 2026, 02:00 +11 -> 01:30 +10:30): repeated times run once, at the first', () => {
  check({
    zone: 'Australia/Lord_Howe',
    cron: '*/15 * * * *',
    from: '2026-04-04T14:00:00Z',
    to: '2026-04-04T16:00:00Z',
    due: [
      '2026-04-04T14:00:00.000Z', // 01:00 +11
      '2026-04-04T14:15:00.000Z',
      '2026-04-04T14:30:00.000Z', // 01:30 +11, not again at 01:30 +10:30 (15:00Z)
      '2026-04-04T14:45:00.000Z',
      '2026-04-04T15:30:00.000Z', // 02:00 +10:30
      '2026-04-04T15:45:00.000Z',
      '2026-04-04T16:00:00.000Z',
    ],
  });
  check({
    zone: 'Australia/Lord_Howe',
    cron: '0 * * * *',
    from: '2026-04-04T13:00:00Z',
    to: '2026-04-04T16:30:00Z',
    due: [
      '2026-04-04T13:00:00.000Z',
      '2026-04-04T14:00:00.000Z',
      '2026-04-04T15:30:00.000Z',
      '2026-04-04T16:30:00.000Z',
    ],
  });
  check({
    zone: 'Australia/Lord_Howe',
    cron: '30,45 1 * * *',
    from: '2026-04-04T12:00:00Z',
    to: '2026-04-05T12:00:00Z',
    due: ['2026-04-04T14:30:00.000Z', '2026-04-04T14:45:00.000Z'],
  });
});

test('outside transitions a zone behaves as croner computes it', () => {
  check({
    zone: 'America/New_York',
    cron: '*/30 9-10 * * 1-5',
    from: '2026-06-01T12:00:00Z',
    to: '2026-06-02T15:00:00Z',
    due: [
      '2026-06-01T13:00:00.000Z',
      '2026-06-01T13:30:00.000Z',
      '2026-06-01T14:00:00.000Z',
      '2026-06-01T14:30:00.000Z',
      '2026-06-02T13:00:00.000Z',
      '2026-06-02T13:30:00.000Z',
      '2026-06-02T14:00:00.000Z',
      '2026-06-02T14:30:00.000Z',
    ],
  });
});
