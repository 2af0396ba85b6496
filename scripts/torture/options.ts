/** Command line of `npm run torture`: `[--quick] [--seed N] [--minutes M] [--keep] [--report FILE]`. */
import { parseArgs } from 'node:util';

import { randomSeed } from './random.js';

/** Everything the run is parameterised by. */
export interface TortureOptions {
  quick: boolean;
  seed: number;
  /** Length of the loaded phase with faults, in seconds. */
  faultSeconds: number;
  workers: number;
  concurrency: number;
  leaseMs: number;
  gracefulStopMs: number;
  /** Producers keep this many unfinished jobs in each database. */
  backlogTarget: number;
  /** After the faults stop, how long every job may take to become final. */
  drainTimeoutMs: number;
  /** A worker that lived through an outage must start a step within this long of the server answering. */
  resumeLimitMs: number;
  keep: boolean;
  reportFile: string | null;
}

/** `npm run torture -- --help`. */
export const HELP = `Usage: npm run torture [-- [--quick] [--seed N] [--minutes M] [--keep] [--report FILE]]

Runs stepping-worker processes over thousands of multi-step jobs in two databases of a
private PostgreSQL while killing workers, restarting and stopping the server, terminating
backends and holding a snapshot; then checks every job's outcome against a ledger.

  --quick          short run for CI (about 2.5 minutes in all)
  --seed N         fault schedule and job mix seed (default: random, printed)
  --minutes M      length of the loaded phase with faults (default 10; --quick: 1.5)
  --keep           keep the server's directory (data and server.log) at the end
  --report FILE    also write the figures and violations as JSON to FILE
Exit codes: 0 no violation, 1 violations found, 2 usage error, 3 the run itself failed.
`;

/** A command-line mistake. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses argv (without node and the script). */
export function parseOptions(argv: readonly string[]): TortureOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        quick: { type: 'boolean' },
        seed: { type: 'string' },
        minutes: { type: 'string' },
        keep: { type: 'boolean' },
        report: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return 'help';
  const quick = values.quick ?? false;
  let seed = randomSeed();
  if (values.seed !== undefined) {
    if (!/^\d{1,10}$/.test(values.seed) || Number(values.seed) > 2 ** 32 - 1)
      throw new UsageError(`--seed must be an integer from 0 to ${2 ** 32 - 1}, got ${values.seed}`);
    seed = Number(values.seed);
  }
  let minutes = quick ? 1.5 : 10;
  if (values.minutes !== undefined) {
    minutes = Number(values.minutes);
    if (!Number.isFinite(minutes) || minutes < 1 || minutes > 24 * 60)
      throw new UsageError(`--minutes must be a number from 1 to 1440, got ${values.minutes}`);
  }
  return {
    quick,
    seed,
    faultSeconds: Math.round(minutes * 60),
    workers: quick ? 4 : 5,
    concurrency: 8,
    leaseMs: 5000,
    gracefulStopMs: 2000,
    backlogTarget: 120,
    drainTimeoutMs: quick ? 60_000 : 180_000,
    // 3x the target (a second): room for a loaded machine, well under a claim backoff.
    resumeLimitMs: 3000,
    keep: values.keep ?? false,
    reportFile: values.report ?? null,
  };
}
