/**
 * Plain aligned text tables and cell formatting for the operator CLI (and the demo).
 * No colours and no box drawing, so the output pastes cleanly into tickets and greps well.
 * Cells are data (queue and step names, keys, errors): their control characters are
 * escaped, so a value can neither drive the terminal nor break a row.
 */
import { escapeControl, textOf, twoLargestUnits } from '../text.js';

/** A column: its header, how to read the cell from a row, and optional layout. */
export interface Column<R> {
  header: string;
  value: (row: R) => unknown;
  /** Right-align (numbers). */
  right?: boolean;
  /** Longer cells are cut with an ellipsis (error messages). */
  maxWidth?: number;
}

/** A PostgreSQL interval as node-postgres returns it (postgres-interval). */
interface IntervalLike {
  years?: number;
  months?: number;
  days?: number;
  hours?: number;
  minutes?: number;
  seconds?: number;
  milliseconds?: number;
  toPostgres(): string;
}

function isInterval(value: unknown): value is IntervalLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { toPostgres?: unknown }).toPostgres === 'function'
  );
}

/** An interval's length in milliseconds (a month counts as 30 days; only ever an approximation). */
export function intervalMs(value: unknown): number | null {
  if (!isInterval(value)) return null;
  const days = (value.years ?? 0) * 365 + (value.months ?? 0) * 30 + (value.days ?? 0);
  const seconds =
    days * 86_400 + (value.hours ?? 0) * 3600 + (value.minutes ?? 0) * 60 + (value.seconds ?? 0);
  return Math.round(seconds * 1000 + (value.milliseconds ?? 0));
}

/** `1d 2h`, `3m 4s`, `1.5s`, `250ms`: the two largest units are enough to read a lag. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')}s`;
  return twoLargestUnits(Math.floor(ms / 1000));
}

/**
 * A cell as text: `-` for null, UTC timestamps to the second, intervals humanised, JSON for
 * objects; always one line without control characters (escaped as `\u001b`).
 */
export function formatCell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (value instanceof Date) return value.toISOString().replace('T', ' ').slice(0, 19);
  const ms = intervalMs(value);
  if (ms !== null) return formatMs(ms);
  if (typeof value === 'object') return escapeControl(JSON.stringify(value));
  // One line per row: stack traces and multi-line messages are flattened.
  return escapeControl(textOf(value).replace(/\s*\n\s*/g, ' '));
}

function cut(text: string, maxWidth: number | undefined): string {
  return maxWidth !== undefined && text.length > maxWidth ? `${text.slice(0, maxWidth - 1)}…` : text;
}

/** Rows under a header line, columns separated by two spaces; trailing spaces trimmed. */
export function formatTable<R>(rows: readonly R[], columns: readonly Column<R>[]): string {
  const cells = rows.map((row) => columns.map((c) => cut(formatCell(c.value(row)), c.maxWidth)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n');
}

/** `label  value` lines with the labels aligned: one record shown vertically. */
export function formatRecord(pairs: readonly (readonly [string, unknown])[]): string {
  const width = Math.max(...pairs.map(([label]) => label.length));
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${formatCell(value)}`).join('\n');
}
