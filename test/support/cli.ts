/** The `stepping` CLI run in this process against one database, its output captured. */
import type { CliIo } from '../../src/cli/args.js';
import { runOperatorCli } from '../../src/cli/operator.js';

/** What a run printed and its exit code. */
export interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A runner of the CLI with DATABASE_URL set to `url`; `extra` plays a terminal or brings
 * an interrupt signal.
 */
export function operatorCli(url: string): (args: string[], extra?: Partial<CliIo>) => Promise<Captured> {
  return async (args, extra = {}) => {
    const out = { stdout: '', stderr: '' };
    const code = await runOperatorCli(
      args,
      { stdout: (t) => (out.stdout += t), stderr: (t) => (out.stderr += t), ...extra },
      { DATABASE_URL: url },
    );
    return { code, ...out };
  };
}
