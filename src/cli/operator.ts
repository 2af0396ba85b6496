/**
 * The `stepping` operator CLI: parses the command line, checks it without touching the
 * database, then runs one subcommand against one database. Exit codes: 0 ok, 1 failure,
 * 2 usage.
 */
import { parseArgs } from 'node:util';

import { checkConnectionString, DEFAULT_SCHEMA, schemaName } from '../config.js';
import { Engine } from '../db/engine.js';
import { OpsCalls } from '../db/ops.js';
import { ConfigError } from '../errors.js';
import type { DatabaseSpec } from '../multidb/sources.js';
import { createStepping, type Stepping } from '../stepping.js';
import { jsonForTerminal } from '../text.js';
import { asUsageError, type CliIo, describeError, EXIT, processIo, terminalIo, UsageError } from './args.js';
import { cancelCommand } from './commands/cancel.js';
import type {
  AnyCommand,
  CommandContext,
  CommandFlags,
  ConnectingContext,
  OutputContext,
} from './commands/command.js';
import { dashboardCommand } from './commands/dashboard.js';
import { jobCommand } from './commands/job.js';
import { DEFAULT_JOBS_LIMIT, JOB_STATUSES, jobsCommand } from './commands/jobs.js';
import { limitsCommand } from './commands/limits.js';
import { migrateCommand } from './commands/migrate.js';
import { pruneCommand } from './commands/prune.js';
import { retryCommand } from './commands/retry.js';
import { rolesCommand } from './commands/roles.js';
import { schedulesCommand } from './commands/schedules.js';
import { statusCommand } from './commands/status.js';
import { parseDatabasesArg } from './databases-arg.js';
import { migrateMany, statusMany } from './multi-database.js';
import { terminalControls } from './terminal.js';

/** Every subcommand, in the order --help lists them. */
export const COMMANDS: readonly AnyCommand[] = [
  migrateCommand,
  rolesCommand,
  statusCommand,
  jobsCommand,
  jobCommand,
  retryCommand,
  cancelCommand,
  pruneCommand,
  schedulesCommand,
  limitsCommand,
  dashboardCommand,
];

const OPTIONS = {
  'database-url': { type: 'string' },
  databases: { type: 'string' },
  schema: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  status: { type: 'string' },
  limit: { type: 'string' },
  compensate: { type: 'boolean' },
  'older-than': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'allow-actions': { type: 'boolean' },
  'max-connections': { type: 'string' },
  queue: { type: 'string' },
  step: { type: 'string' },
  key: { type: 'string' },
  'newer-than': { type: 'string' },
  before: { type: 'string' },
  watch: { type: 'boolean' },
  interval: { type: 'string' },
} as const;

/** The `stepping --help` text. */
export function operatorHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.synopsis.length)) + 2;
  return `Usage: stepping <command> [options]

Inspect and operate the Stepping jobs of one PostgreSQL database.

Commands:
${COMMANDS.map((c) => `  ${c.synopsis.padEnd(width)}${c.summary}`).join('\n')}

Options:
  --database-url URL   PostgreSQL connection string (default: $DATABASE_URL)
  --databases LIST     migrate, status, dashboard: many databases at once; LIST is url,url,... or a file
                       with one url (or id=url) per line. Failures are reported per database.
  --schema NAME        schema holding Stepping (default: ${DEFAULT_SCHEMA})
  --json               print one JSON document instead of text
  -h, --help           show this help
  --status S           jobs: only jobs in status S (${JOB_STATUSES.join(', ')});
                       retry --status failed: retry every failed job (of --queue, --step)
  --queue Q            jobs, retry --status failed: only jobs of queue Q
  --step NAME          jobs: only jobs with a step NAME; retry: only jobs failed at step NAME
  --key K              jobs: only the jobs with key K
  --older-than D       jobs: created at least D ago; prune: finished at least D ago (default: 7d)
  --newer-than D       jobs: created at most D ago (30s, 30m, 12h, 7d)
  --limit N            jobs: list at most N jobs (default: ${DEFAULT_JOBS_LIMIT})
  --before ID          jobs: only jobs older than job ID (the next page: the last ID listed)
  --watch              status: refresh until Ctrl-C (clearing the screen on a terminal)
  --interval D         status --watch: time between refreshes (default: 2s)
  --compensate         cancel: run the compensations of the steps already done
  --port N             dashboard: port to listen on (default: 4000; 0: any free port)
  --host H             dashboard: address to listen on (default: 127.0.0.1, this machine only)
  --allow-actions      dashboard: show retry and cancel buttons (default: read-only)

Exit codes: 0 ok, 1 failure (no such job, job in the wrong state, database error), 2 usage error.
`;
}

interface Invocation {
  help: boolean;
  databases: DatabaseSpec[] | undefined;
  json: boolean;
  schema: string | undefined;
  databaseUrl: string | undefined;
  /** Where databaseUrl came from, for errors about it. */
  databaseUrlSource: '--database-url' | 'DATABASE_URL';
  command: AnyCommand;
  work: Work;
}

/** A prepared command: offline ones get output only, database ones a client too, servers the connection settings. */
type Work =
  | { kind: 'offline'; run: (ctx: OutputContext) => Promise<void> }
  | { kind: 'database'; run: (ctx: CommandContext) => Promise<void> }
  | { kind: 'server'; run: (ctx: ConnectingContext) => Promise<void> };

/** Parses and checks argv; throws UsageError for anything wrong, without connecting. */
function parseInvocation(argv: readonly string[], env: NodeJS.ProcessEnv): Invocation | { help: true } {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw asUsageError(error);
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  const [name, ...args] = positionals;
  if (name === undefined) throw new UsageError('missing command');
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  const flags: CommandFlags = {
    ...(values.status !== undefined ? { status: values.status } : {}),
    ...(values.limit !== undefined ? { limit: values.limit } : {}),
    ...(values.compensate !== undefined ? { compensate: values.compensate } : {}),
    ...(values['older-than'] !== undefined ? { olderThan: values['older-than'] } : {}),
    ...(values.port !== undefined ? { port: values.port } : {}),
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values['allow-actions'] !== undefined ? { allowActions: values['allow-actions'] } : {}),
    ...(values['max-connections'] !== undefined ? { maxConnections: values['max-connections'] } : {}),
    ...(values.queue !== undefined ? { queue: values.queue } : {}),
    ...(values.step !== undefined ? { step: values.step } : {}),
    ...(values.key !== undefined ? { key: values.key } : {}),
    ...(values['newer-than'] !== undefined ? { newerThan: values['newer-than'] } : {}),
    ...(values.before !== undefined ? { before: values.before } : {}),
    ...(values.watch !== undefined ? { watch: values.watch } : {}),
    ...(values.interval !== undefined ? { interval: values.interval } : {}),
  };
  for (const flag of Object.keys(flags) as (keyof CommandFlags)[]) {
    if (!command.flags.includes(flag)) {
      const option = `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new UsageError(`${command.name} does not take ${option}`);
    }
  }
  if (
    args.length !== command.args.length &&
    !command.variadic &&
    !(command.argsOptional && args.length === 0)
  ) {
    throw new UsageError(`usage: stepping ${command.synopsis}`);
  }
  const databases = values.databases === undefined ? undefined : parseDatabasesArg(values.databases);
  if (flags.maxConnections !== undefined && !databases) {
    throw new UsageError('--max-connections works with --databases (one database uses 4 connections)');
  }
  if (databases && command.name !== 'migrate' && command.name !== 'status' && !('server' in command)) {
    throw new UsageError(`--databases works with migrate, status and dashboard, not ${command.name}`);
  }
  return {
    help: false,
    databases,
    json: values.json ?? false,
    schema: values.schema,
    databaseUrl: values['database-url'] ?? env.DATABASE_URL,
    databaseUrlSource: values['database-url'] !== undefined ? '--database-url' : 'DATABASE_URL',
    command,
    work: command.offline
      ? { kind: 'offline', run: command.prepare(args, flags) }
      : 'server' in command
        ? { kind: 'server', run: command.prepare(args, flags) }
        : { kind: 'database', run: command.prepare(args, flags) },
  };
}

/**
 * Runs the `stepping` CLI with argv (without node and script); resolves with the exit code.
 * `env` supplies DATABASE_URL.
 */
export async function runOperatorCli(
  argv: readonly string[],
  rawIo: CliIo = processIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const io = terminalIo(rawIo);
  const terminal = terminalControls(rawIo);
  let invocation: Invocation;
  let stepping: Stepping | undefined;
  let run: () => Promise<void>;
  try {
    const parsed = parseInvocation(argv, env);
    if (parsed.help) {
      io.stdout(operatorHelp());
      return EXIT.ok;
    }
    invocation = parsed;
    if (invocation.databases && invocation.work.kind !== 'server') {
      const { databases, schema, json } = invocation;
      return invocation.command.name === 'migrate'
        ? await migrateMany(databases, schema, json, io, terminal)
        : await statusMany(databases, schema, json, io);
    }
    const output: OutputContext = {
      schema: schemaName(invocation.schema),
      json: invocation.json,
      print: (text) => io.stdout(`${text}\n`),
      printJson: (value) => io.stdout(`${jsonForTerminal(value)}\n`),
      note: (text) => io.stderr(`${text}\n`),
      terminal,
    };
    const work = invocation.work;
    if (work.kind === 'server') {
      const { databaseUrl, databases } = invocation;
      if (!databaseUrl && !databases)
        throw new UsageError('no database: pass --database-url or --databases, or set DATABASE_URL');
      // Checked here, before the server starts: a usage error (exit 2), naming its source.
      if (!databases) checkConnectionString(databaseUrl, invocation.databaseUrlSource);
      run = () => work.run({ ...output, databaseUrl: databases ? undefined : databaseUrl, databases });
    } else if (work.kind === 'offline') {
      run = () => work.run(output);
    } else {
      if (!invocation.databaseUrl)
        throw new UsageError('no database: pass --database-url or set DATABASE_URL');
      checkConnectionString(invocation.databaseUrl, invocation.databaseUrlSource);
      const client = createStepping({ connectionString: invocation.databaseUrl, schema: output.schema });
      stepping = client;
      run = () =>
        work.run({
          ...output,
          stepping: client,
          engine: new Engine(output.schema),
          ops: new OpsCalls(output.schema),
        });
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      io.stderr(`stepping: ${describeError(error)}\nRun \`stepping --help\` for usage.\n`);
      return EXIT.usage;
    }
    // Printed here, masked and escaped, rather than by node as an unhandled rejection.
    io.stderr(`stepping: ${describeError(error)}\n`);
    return EXIT.failure;
  }
  try {
    await run();
    return EXIT.ok;
  } catch (error) {
    io.stderr(`stepping ${invocation.command.name}: ${describeError(error)}\n`);
    return EXIT.failure;
  } finally {
    terminal.progress('');
    terminal.dispose();
    await stepping?.close().catch(() => {});
  }
}
