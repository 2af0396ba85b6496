/** The shape every `stepping` subcommand has, and what it gets to run. */
import type { Engine } from '../../db/engine.js';
import type { OpsCalls } from '../../db/ops.js';
import type { DatabaseSpec } from '../../multidb/sources.js';
import type { Stepping } from '../../stepping.js';
import { UsageError } from '../args.js';
import type { TerminalControls } from '../terminal.js';

/** Command-specific flags as parsed from the command line (values still text). */
export interface CommandFlags {
  status?: string;
  limit?: string;
  compensate?: boolean;
  olderThan?: string;
  port?: string;
  host?: string;
  allowActions?: boolean;
  maxConnections?: string;
  queue?: string;
  step?: string;
  key?: string;
  newerThan?: string;
  before?: string;
  watch?: boolean;
  interval?: string;
}

/** Output, and the schema named on the command line: what every command runs with. */
export interface OutputContext {
  /** The schema (--schema, checked), e.g. `stepping`. */
  schema: string;
  /** True with --json: print one JSON document instead of text. */
  json: boolean;
  /** Writes text (a line break is added). */
  print(text: string): void;
  /** Writes a value as indented JSON. */
  printJson(value: unknown): void;
  /** Progress and notes that are not the command's result (stderr, so --json stays parseable). */
  note(text: string): void;
  /** Progress line, cleared screen and SIGINT-aware pauses (each only where a terminal allows). */
  terminal: TerminalControls;
}

/** What a prepared command that uses the database runs with: a client and the engine's typed SQL calls too. */
export interface CommandContext extends OutputContext {
  stepping: Stepping;
  engine: Engine;
  /** Worker registry, maintenance, bulk retry and filtered job lists. */
  ops: OpsCalls;
}

/** What every subcommand declares. */
export interface CommandShape {
  name: string;
  /** `jobs [--status S] [--limit N]` */
  synopsis: string;
  summary: string;
  /** The command-specific flags it accepts. */
  flags: readonly (keyof CommandFlags)[];
  /** Names of its positional arguments (all required, unless argsOptional). */
  args: readonly string[];
  /** The positional arguments may be left out altogether (retry: ID, or --status for many). */
  argsOptional?: boolean;
  /** Takes any number of positional arguments and checks them itself (limits, schedules). */
  variadic?: boolean;
}

/** A subcommand that works on a database: validated without one, then run with one. */
export interface Command extends CommandShape {
  offline?: false;
  /**
   * Checks arguments and flag values (throwing UsageError) and returns the work to do, so
   * a mistyped command line never opens a connection.
   */
  prepare(args: readonly string[], flags: CommandFlags): (ctx: CommandContext) => Promise<void>;
}

/** A subcommand that needs no database (it only prints): runs without DATABASE_URL. */
export interface OfflineCommand extends CommandShape {
  offline: true;
  /** As Command.prepare; the work gets only output. */
  prepare(args: readonly string[], flags: CommandFlags): (ctx: OutputContext) => Promise<void>;
}

/** What a command that opens its own connections runs with: where its database(s) are. */
export interface ConnectingContext extends OutputContext {
  /** --database-url or $DATABASE_URL; undefined with --databases. */
  databaseUrl: string | undefined;
  /** --databases, parsed; undefined without it. */
  databases: DatabaseSpec[] | undefined;
}

/** A long-running subcommand that manages its own connections, to one database or to --databases (the dashboard). */
export interface ServerCommand extends CommandShape {
  offline?: undefined;
  server: true;
  /** As Command.prepare; the work gets the connection settings instead of a client. */
  prepare(args: readonly string[], flags: CommandFlags): (ctx: ConnectingContext) => Promise<void>;
}

/** Any subcommand of `stepping`. */
export type AnyCommand = Command | OfflineCommand | ServerCommand;

const BIGINT_MAX = 2n ** 63n - 1n;

/** Checks a job id is a positive bigint in decimal, so a typo is a usage error and not an SQL error. */
export function parseJobId(text: string): string {
  if (!/^[1-9]\d{0,18}$/.test(text) || BigInt(text) > BIGINT_MAX) {
    throw new UsageError(`a job ID is a positive integer, got ${JSON.stringify(text)}`);
  }
  return text;
}
