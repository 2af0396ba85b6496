/**
 * Argument helpers shared by the `stepping` and `stepping-worker` bins: the usage error
 * (exit code 2), strict integer and duration parsing, and error messages for people.
 */
import { MAX_DELAY_MS, MAX_INT } from '../limits.js';
import { maskConnectionString } from '../redact.js';
import { escapeControl } from '../text.js';
import { type BatchedWriter, batchedWriter } from './batched-writer.js';

/** Exit codes of both bins. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Where a CLI writes; tests and embedding callers can capture it. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** stdout is a terminal: `status --watch` clears the screen between refreshes. */
  stdoutIsTerminal?: boolean;
  /** stderr is a terminal: long operations keep one progress line there. */
  stderrIsTerminal?: boolean;
  /** Aborted when a long-running command should stop; default: the process's SIGINT. */
  interrupt?: AbortSignal;
}

let stdoutGuarded: 'exit' | 'drop' | null = null;
let stdoutGone = false;

/**
 * What happens once stdout's reader has gone away (EPIPE) instead of dying of an unhandled
 * 'error' event with a stack trace. 'exit': end quietly with exit 0, as other command-line
 * tools do (`stepping status --watch | head -1`). 'drop': stop writing to stdout and say so
 * once on stderr; a worker must go on running its steps (exiting 0 would skip its graceful
 * stop, and a supervisor restarting on failure would leave it down). Any other write error
 * is still thrown.
 */
function guardStdout(mode: 'exit' | 'drop'): void {
  if (stdoutGuarded) return;
  stdoutGuarded = mode;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    if (mode === 'exit') process.exit(EXIT.ok);
    if (!stdoutGone)
      process.stderr.write('stdout was closed by its reader; log lines are no longer written\n');
    stdoutGone = true;
  });
}

function processIoFor(mode: 'exit' | 'drop'): CliIo {
  const toStdout = (text: string) => {
    guardStdout(mode);
    if (!stdoutGone) process.stdout.write(text);
  };
  // The worker's log lines: one write per turn of the event loop (see batched-writer.ts),
  // what is pending written as the process exits.
  let batched: BatchedWriter | null = null;
  const workerStdout = (text: string) => {
    if (!batched) {
      const writer = batchedWriter(toStdout);
      process.once('exit', () => writer.flush());
      batched = writer;
    }
    batched.write(text);
  };
  return {
    stdout: mode === 'drop' ? workerStdout : toStdout,
    stderr: (text) => process.stderr.write(text),
    stdoutIsTerminal: process.stdout.isTTY === true,
    stderrIsTerminal: process.stderr.isTTY === true,
  };
}

/** The process's own stdout and stderr for the `stepping` CLI: a closed stdout ends it (exit 0). */
export const processIo: CliIo = processIoFor('exit');

/** The process's own stdout and stderr for `stepping-worker`: a closed stdout only stops its log lines. */
export const workerProcessIo: CliIo = processIoFor('drop');

/**
 * `io` with every control character but the line feed escaped on the way out: the last
 * guard, behind the per-line and per-cell escaping, so no data printed by a bin can drive
 * the operator's terminal. (JSON output passes unchanged: it holds no raw controls.)
 */
export function terminalIo(io: CliIo): CliIo {
  return {
    ...io,
    stdout: (text) => io.stdout(escapeControl(text, { keepNewlines: true })),
    stderr: (text) => io.stderr(escapeControl(text, { keepNewlines: true })),
  };
}

/** The command line is wrong (unknown option, bad value, missing argument): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses a whole non-negative decimal integer within bounds; anything else is a UsageError naming the option. */
export function parseInteger(option: string, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${option} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type DurationUnit = keyof typeof UNIT_MS;

/** The longest duration an option takes, as its usage error names it. */
export interface DurationLimit {
  ms: number;
  text: string;
}

/**
 * The engine's longest delay (MAX_DELAY_MS, 100 years): an age past it stands for a date
 * before PostgreSQL's range ("timestamp out of range") and no job can be that old.
 */
export const MAX_DURATION: DurationLimit = { ms: MAX_DELAY_MS, text: '100 years (36525d)' };

/** The longest delay setTimeout takes: a longer one fires at once (in a loop, for a repeating timer). */
export const MAX_TIMER_DURATION: DurationLimit = { ms: MAX_INT, text: '24.8 days (2147483647ms)' };

/**
 * Parses a duration such as `500ms`, `30s`, `30m`, `12h` or `7d` into milliseconds, at most
 * `max` (default MAX_DURATION). A bare number takes `defaultUnit`; without one, the unit is
 * required (so `--older-than 7` is rejected rather than guessed).
 */
export function parseDuration(
  option: string,
  text: string,
  defaultUnit?: DurationUnit,
  max: DurationLimit = MAX_DURATION,
): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  const unit = (match?.[2] as DurationUnit | undefined) ?? defaultUnit;
  if (!match || !unit) {
    const bare = defaultUnit ? ` or a number of ${defaultUnit}` : '';
    throw new UsageError(
      `${option} must be a duration like 500ms, 30s, 30m, 12h or 7d${bare}, got ${JSON.stringify(text)}`,
    );
  }
  const ms = Number(match[1]) * UNIT_MS[unit];
  // Checked here, as a usage error naming the option, rather than by the database or the
  // library (whose own message the CLI would print after its own prefix, exit 1).
  if (!(ms <= max.ms)) {
    throw new UsageError(`${option} must be at most ${max.text}, got ${JSON.stringify(text)}`);
  }
  return ms;
}

/** Turns parseArgs' own errors (unknown option, missing value) into UsageErrors with its message. */
export function asUsageError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
    return new UsageError((error as Error).message);
  }
  return error;
}

/**
 * The error's message for a person or a JSON field, without a leading `stepping: ` (the
 * bins add their own name) and with connection-string passwords masked. Connection
 * failures arrive as AggregateErrors with an empty message. Not escaped: see describeError.
 */
export function errorText(error: unknown): string {
  if (error instanceof AggregateError && !error.message) {
    return error.errors.map((e) => errorText(e)).join('; ');
  }
  const message = error instanceof Error ? error.message || error.name : String(error);
  return maskConnectionString(message.replace(/^stepping: /, ''));
}

/** errorText as one line of terminal text: control characters (line breaks too) escaped. */
export function describeError(error: unknown): string {
  return escapeControl(errorText(error));
}
