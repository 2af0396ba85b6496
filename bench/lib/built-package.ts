/**
 * The benchmark's Stepping worker runs the package as a user installs it: compiled by tsc
 * into dist/, not transpiled on the fly by tsx as the rest of the benchmark is (tsx's
 * keepNames helper wraps every closure a worker makes per job: in a 50,000-job drain the
 * worker spent 28–34 µs of CPU per job from src/ against 20–25 µs from dist/). The peers
 * run their published JavaScript too. ensureBuilt() builds dist/ first when it is missing
 * or older than a source file, so a run never measures stale code.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The compiled entry point the worker child imports. */
export const BUILT_ENTRY = path.join(ROOT, 'dist/src/index.js');

/** The newest modification time (ms) of the files under `dir` whose names end with `ext`; 0: none. */
function newest(dir: string, ext: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(full, ext));
    else if (entry.isFile() && entry.name.endsWith(ext)) latest = Math.max(latest, statSync(full).mtimeMs);
  }
  return latest;
}

/** Builds dist/ (`npm run build`) when it is missing or a file of src/ is newer; returns whether it did. */
export function ensureBuilt(log: (line: string) => void): boolean {
  let built = 0;
  try {
    built = newest(path.join(ROOT, 'dist/src'), '.js');
  } catch {
    built = 0;
  }
  if (built > 0 && built >= newest(path.join(ROOT, 'src'), '.ts')) return false;
  log(built === 0 ? 'building dist/ (missing)' : 'building dist/ (src/ is newer)');
  execFileSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  return true;
}
