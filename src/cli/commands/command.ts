/** The shape every `stepping` subcommand has, and what it gets to run. */
import type { Engine } from '../../db/engine.js';
import type { Stepping } from '../../stepping.js';
import { UsageError } from '../args.js';

/** Command-specific flags as parsed from the command line (values still text). */
export interface CommandFlags {
  status?: string;
  limit?: string;
  compensate?: boolean;
  olderThan?: string;
}

/** What a prepared command runs with: a client, the engine's typed SQL calls, and output. */
export interface CommandContext {
  stepping: Stepping;
  engine: Engine;
  /** True with --json: print one JSON document instead of text. */
  json: boolean;
  /** Writes text (a line break is added). */
  print(text: string): void;
  /** Writes a value as indented JSON. */
  printJson(value: unknown): void;
  /** Progress and notes that are not the command's result (stderr, so --json stays parseable). */
  note(text: string): void;
}

/** A subcommand: validated without a database, then run with one. */
export interface Command {
  name: string;
  /** `jobs [--status S] [--limit N]` */
  synopsis: string;
  summary: string;
  /** The command-specific flags it accepts. */
  flags: readonly (keyof CommandFlags)[];
  /** Names of its positional arguments (all required). */
  args: readonly string[];
  /**
   * Checks arguments and flag values (throwing UsageError) and returns the work to do, so
   * a mistyped command line never opens a connection.
   */
  prepare(args: readonly string[], flags: CommandFlags): (ctx: CommandContext) => Promise<void>;
}

const BIGINT_MAX = 2n ** 63n - 1n;

/** Checks a job id is a positive bigint in decimal, so a typo is a usage error and not an SQL error. */
export function parseJobId(text: string): string {
  if (!/^[1-9]\d{0,18}$/.test(text) || BigInt(text) > BIGINT_MAX) {
    throw new UsageError(`a job ID is a positive integer, got ${JSON.stringify(text)}`);
  }
  return text;
}
