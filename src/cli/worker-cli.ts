/**
 * The `stepping-worker` bin: options, help, and the run until SIGINT/SIGTERM. Defaults
 * come from WORKER_DEFAULTS so the help text cannot drift from the library.
 */
import { parseArgs } from 'node:util';

import { DEFAULT_SCHEMA } from '../config.js';
import { ConfigError } from '../errors.js';
import { escapeControl } from '../text.js';
import { WORKER_DEFAULTS, type WorkerOptions } from '../worker/options.js';
import { createWorker, type Worker } from '../worker/worker.js';
import {
  asUsageError,
  type CliIo,
  describeError,
  EXIT,
  parseDuration,
  parseInteger,
  terminalIo,
  UsageError,
  workerProcessIo,
} from './args.js';
import { parseDatabasesArg } from './databases-arg.js';
import { loadSchedules } from './load-schedules.js';
import { loadSteps } from './load-steps.js';
import { watchFile } from './watch-file.js';
import { attachWorkerLog } from './worker-log.js';

const OPTIONS = {
  steps: { type: 'string' },
  schedules: { type: 'string' },
  concurrency: { type: 'string' },
  queue: { type: 'string', multiple: true },
  schema: { type: 'string' },
  'poll-interval': { type: 'string' },
  lease: { type: 'string' },
  'graceful-stop': { type: 'string' },
  'pool-size': { type: 'string' },
  'database-url': { type: 'string', multiple: true },
  databases: { type: 'string' },
  'max-connections': { type: 'string' },
  'idle-poll-max': { type: 'string' },
  'start-concurrency': { type: 'string' },
  'start-burst': { type: 'string' },
  'call-timeout': { type: 'string' },
  retention: { type: 'string' },
  'maintenance-interval': { type: 'string' },
  'registry-heartbeat': { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The `stepping-worker --help` text. */
export function workerHelp(): string {
  const d = WORKER_DEFAULTS;
  return `Usage: stepping-worker --steps <module> [options]

Runs the steps exported by <module> until SIGINT or SIGTERM. Every export made by
defineStep counts, as do arrays of them and the default export.

Options:
  --steps <module>        module exporting the step definitions (required)
  --schedules <file>      recurring schedules to create or update at start (.json or a module)
  --concurrency <n>       handlers running at once (default: ${d.concurrency})
  --queue <name[=n]>      serve this queue, at most n (1 to --concurrency) of its steps at
                          once; repeatable (default: every queue)
  --schema <name>         schema holding Stepping (default: ${DEFAULT_SCHEMA})
  --poll-interval <ms>    poll when no NOTIFY arrives (default: ${d.pollIntervalMs})
  --lease <ms>            lease; a dead worker's step runs again after this (default: ${d.leaseMs})
  --graceful-stop <ms>    on SIGINT/SIGTERM, time running steps get to finish (default: ${d.gracefulStopMs})
  --pool-size <n>         connections per database (default: ${d.poolSize}; with several databases: ${d.databasePoolSize})
  --database-url <url>    postgres:// URL of the database (default: $DATABASE_URL); repeat it to
                          serve several databases from this one worker
  --databases <list>      serve many databases: url,url,... or a file with one url (or
                          id=url) per line, re-read when it changes and every 30 s
                          (tenants come and go)
  --max-connections <n>   several databases: most connections in total (default: ${d.maxConnections})
  --start-concurrency <n>
                          several databases: most databases starting at once, half of it
                          while a database has a backlog (default: ${d.startConcurrency})
  --start-burst <n>       several databases: how many more of those listed at start may
                          start at once, beyond --start-concurrency (default: ${d.startBurst})
  --idle-poll-max <ms>    several databases: longest poll interval of an idle database
                          without a listener (default: ${d.idlePollMaxMs})
  --call-timeout <ms>     several databases: longest wait for one engine call; past it the
                          database is set aside like one that is down (default: ${d.callTimeoutMs})
  --retention <ms|off>    keep finished jobs this long, then maintenance prunes them
                          (default: ${d.retentionMs})
  --maintenance-interval <ms>
                          run maintenance (deadlines, pruning) this often; 0: never
                          (default: ${d.maintenanceIntervalMs})
  --registry-heartbeat <ms>
                          mark this worker alive in live_workers this often (default: ${d.registryHeartbeatMs})
  --quiet                 no event lines on stdout (errors still go to stderr)
  -h, --help              show this help

Times are milliseconds, or take a unit: 500ms, 30s, 5m, 1h.
A compiled .js steps module works with the installed bin. For a .ts module, start the
bin under tsx: node --import tsx node_modules/.bin/stepping-worker --steps steps.ts

Signals: the first SIGINT/SIGTERM stops claiming and lets running steps finish (then
exit 0); a second one exits at once (exit 1).
Exit codes: 0 stopped cleanly, 1 runtime error, 2 usage error.
`;
}

/** Parsed command line: the worker's options minus its steps, plus the bin's own flags. */
export interface WorkerCliArgs {
  help: boolean;
  quiet: boolean;
  stepsModule: string;
  /** --schedules: a file of recurring schedules. */
  schedulesFile?: string;
  /** --databases as a file: re-read periodically, and at once when it changes (watchFile). */
  databasesFile?: string;
  options: Omit<WorkerOptions, 'steps'>;
}

/** `emails=5` → ['emails', 5]; `emails` → ['emails', undefined]. */
function parseQueue(text: string): [string, number | undefined] {
  const at = text.lastIndexOf('=');
  if (at < 0) return [text, undefined];
  return [text.slice(0, at), parseInteger(`--queue ${text}`, text.slice(at + 1), 1, 10_000)];
}

/** Queues as WorkerOptions takes them: a list, or limits for all when any has one. */
function queuesOption(specs: readonly string[], concurrency: number): WorkerOptions['queues'] {
  const parsed = specs.map(parseQueue);
  if (parsed.every(([, limit]) => limit === undefined)) return parsed.map(([name]) => name);
  // A queue given without a limit may use every slot, which is what concurrency caps anyway.
  return Object.fromEntries(parsed.map(([name, limit]) => [name, limit ?? concurrency]));
}

/** Parses argv (without node and script); throws UsageError. */
export function parseWorkerArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): WorkerCliArgs {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: false, strict: true }));
  } catch (error) {
    throw asUsageError(error);
  }
  const help = values.help ?? false;
  const stepsModule = values.steps ?? '';
  if (!help && !stepsModule) throw new UsageError('--steps <module> is required');
  const concurrency =
    values.concurrency === undefined
      ? WORKER_DEFAULTS.concurrency
      : parseInteger('--concurrency', values.concurrency, 1, 10_000);
  const ms = (option: string, text: string | undefined) =>
    text === undefined ? undefined : parseDuration(option, text, 'ms');
  const listArg = values.databases;
  if (listArg !== undefined && values['database-url'] !== undefined) {
    throw new UsageError('give --databases or --database-url, not both');
  }
  // A file is re-read periodically (tenants come and go); a URL list is fixed.
  const fromList = listArg === undefined ? undefined : parseDatabasesArg(listArg);
  const urls = fromList
    ? fromList.map((d) => (typeof d === 'string' ? d : d.connectionString))
    : (values['database-url'] ?? (env.DATABASE_URL ? [env.DATABASE_URL] : []));
  if (!help && urls.length === 0)
    throw new UsageError('no database: pass --database-url or set DATABASE_URL');
  const int = (option: string, text: string | undefined, max: number) =>
    text === undefined ? undefined : parseInteger(option, text, 1, max);
  const pollIntervalMs = ms('--poll-interval', values['poll-interval']);
  const leaseMs = ms('--lease', values.lease);
  const gracefulStopMs = ms('--graceful-stop', values['graceful-stop']);
  const idlePollMaxMs = ms('--idle-poll-max', values['idle-poll-max']);
  const callTimeoutMs = ms('--call-timeout', values['call-timeout']);
  const retention =
    values.retention === undefined
      ? undefined
      : values.retention === 'off'
        ? (false as const)
        : parseDuration('--retention', values.retention, 'ms');
  const maintenanceIntervalMs = ms('--maintenance-interval', values['maintenance-interval']);
  const registryHeartbeatMs = ms('--registry-heartbeat', values['registry-heartbeat']);
  const poolSize = int('--pool-size', values['pool-size'], 1000);
  const maxConnections = int('--max-connections', values['max-connections'], 100_000);
  const startConcurrency = int('--start-concurrency', values['start-concurrency'], 10_000);
  const startBurst =
    values['start-burst'] === undefined
      ? undefined
      : parseInteger('--start-burst', values['start-burst'], 0, 100_000);
  const many = fromList !== undefined || urls.length > 1;
  if (
    !many &&
    (maxConnections !== undefined ||
      startConcurrency !== undefined ||
      startBurst !== undefined ||
      idlePollMaxMs !== undefined ||
      callTimeoutMs !== undefined)
  ) {
    throw new UsageError(
      '--max-connections, --start-concurrency, --start-burst, --idle-poll-max and --call-timeout need several databases',
    );
  }
  const databasesFile = listArg !== undefined && !listArg.includes('://') ? listArg : undefined;
  const databases =
    databasesFile !== undefined
      ? { list: () => parseDatabasesArg(databasesFile) }
      : (fromList ?? (urls.length > 1 ? urls : undefined));
  return {
    help,
    quiet: values.quiet ?? false,
    stepsModule,
    ...(values.schedules !== undefined ? { schedulesFile: values.schedules } : {}),
    ...(databasesFile !== undefined ? { databasesFile } : {}),
    options: {
      // One database is the common case; several switch the worker to multi-database mode.
      ...(databases !== undefined ? { databases } : urls.length === 1 ? { connectionString: urls[0] } : {}),
      ...(values.schema !== undefined ? { schema: values.schema } : {}),
      ...(values.queue !== undefined ? { queues: queuesOption(values.queue, concurrency) } : {}),
      concurrency,
      ...(pollIntervalMs !== undefined ? { pollIntervalMs } : {}),
      ...(leaseMs !== undefined ? { leaseMs } : {}),
      ...(gracefulStopMs !== undefined ? { gracefulStopMs } : {}),
      ...(poolSize !== undefined ? { poolSize } : {}),
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(startConcurrency !== undefined ? { startConcurrency } : {}),
      ...(startBurst !== undefined ? { startBurst } : {}),
      ...(idlePollMaxMs !== undefined ? { idlePollMaxMs } : {}),
      ...(callTimeoutMs !== undefined ? { callTimeoutMs } : {}),
      ...(retention !== undefined ? { retention } : {}),
      ...(maintenanceIntervalMs !== undefined ? { maintenanceIntervalMs } : {}),
      ...(registryHeartbeatMs !== undefined ? { registryHeartbeatMs } : {}),
    },
  };
}

/** Resolves on the first SIGINT/SIGTERM after stopping the worker; a second signal exits at once. */
function runUntilSignal(worker: Worker, log: (text: string) => void, io: CliIo): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        io.stderr(`stepping-worker: second ${signal}, exiting without waiting for running steps\n`);
        process.exit(EXIT.failure);
      }
      stopping = true;
      // stop() stops claiming synchronously; the line below is printed after that point.
      const stopped = worker.stop();
      const n = worker.running;
      log(
        `stopping on ${signal}: claiming stopped; waiting up to ${worker.config.gracefulStopMs}ms for ` +
          `${n} running step${n === 1 ? '' : 's'} (send ${signal} again to exit now)`,
      );
      stopped.then(
        () => {
          log('stopped');
          resolve(EXIT.ok);
        },
        (error: unknown) => {
          io.stderr(`stepping-worker: stopping failed: ${describeError(error)}\n`);
          resolve(EXIT.failure);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * How long a changed --databases file must stay unchanged before it is read: a file being
 * written in several pieces (not renamed into place) would otherwise be read half written,
 * and the databases missing from the half would be drained.
 */
const FILE_SETTLE_MS = 500;

/** Runs the `stepping-worker` bin; resolves with the exit code once stopped. `env` supplies DATABASE_URL. */
export async function runWorkerCli(
  argv: readonly string[],
  rawIo: CliIo = workerProcessIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const io = terminalIo(rawIo);
  let args: WorkerCliArgs;
  let worker: Worker;
  try {
    args = parseWorkerArgs(argv, env);
    if (args.help) {
      io.stdout(workerHelp());
      return EXIT.ok;
    }
    const steps = await loadSteps(args.stepsModule);
    const schedules = args.schedulesFile ? await loadSchedules(args.schedulesFile) : undefined;
    worker = createWorker({ ...args.options, steps, ...(schedules ? { schedules } : {}) });
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      io.stderr(`stepping-worker: ${describeError(error)}\nRun \`stepping-worker --help\` for usage.\n`);
      return EXIT.usage;
    }
    io.stderr(`stepping-worker: ${describeError(error)}\n`);
    return EXIT.failure;
  }
  const stamp = (text: string) => `${new Date().toISOString()} ${escapeControl(text)}\n`;
  const log = (text: string) => {
    if (!args.quiet) io.stdout(stamp(text));
  };
  attachWorkerLog(worker, args.options.databases !== undefined, {
    info: (line) => {
      if (!args.quiet) io.stdout(`${line}\n`);
    },
    error: (line) => io.stderr(`${line}\n`),
  });
  try {
    await worker.start();
  } catch (error) {
    io.stderr(`stepping-worker: cannot start: ${describeError(error)}\n`);
    await worker.stop().catch(() => {});
    return EXIT.failure;
  }
  const c = worker.config;
  const queues = c.queues?.map((q) => (c.queueLimits.has(q) ? `${q}=${c.queueLimits.get(q)}` : q));
  const databases = args.options.databases;
  log(
    `started worker ${c.workerId}: schema ${c.schema}, ${c.names.length} step${c.names.length === 1 ? '' : 's'} ` +
      `(${c.names.join(', ')}), queues ${queues?.join(', ') ?? 'all'}, concurrency ${c.concurrency}` +
      (Array.isArray(databases) ? `, ${databases.length} databases` : ''),
  );
  // An edit of the file takes effect at once. The periodic re-read (every 30 s) stays: it
  // is the fallback where watching is not possible, and it reports a file that cannot be
  // read (a failed read changes nothing: the databases served stay).
  const unwatch = args.databasesFile
    ? watchFile(
        args.databasesFile,
        () => {
          void worker.refresh().catch(() => {});
        },
        FILE_SETTLE_MS,
      )
    : () => {};
  try {
    return await runUntilSignal(worker, log, io);
  } finally {
    unwatch();
  }
}
