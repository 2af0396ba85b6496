/**
 * Analysis tool, not part of `npm run bench`: `stepping migrate --databases` over `n`
 * already-migrated databases, repeated on the same copies (issue 17: under 5 s at 1,000).
 * Makes `n` copies of a migrated template, runs the compiled CLI (dist/, built first when
 * src/ is newer) `runs` times over them, and prints each run's wall time with the CLI's
 * own CPU (user + system, from /proc after it exits): what is left is the server's
 * start-up of a backend per database. The first run is the first connection ever to each
 * copy (the server builds its catalog cache file then). Then drops the copies.
 *
 *   npx tsx bench/tools/migrate-fleet.ts <serverUrl> [n=1000] [runs=4]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { createStepping } from '../../src/index.js';
import { ensureBuilt } from '../lib/built-package.js';
import { DatabaseFactory } from '../lib/db.js';

const [serverUrl, nArg, runsArg] = process.argv.slice(2);
if (!serverUrl) throw new Error('usage: tsx bench/tools/migrate-fleet.ts <serverUrl> [n=1000] [runs=4]');
const N = Number(nArg ?? 1000);
const RUNS = Number(runsArg ?? 4);
const CLI = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'dist',
  'src',
  'cli',
  'stepping.js',
);

ensureBuilt((line) => console.log(line));
const factory = new DatabaseFactory(serverUrl);
const dir = mkdtempSync(path.join(tmpdir(), 'migrate-fleet-'));
try {
  const template = await factory.create('fleet_tpl');
  const stepping = createStepping({ connectionString: factory.url(template) });
  await stepping.migrate();
  await stepping.close();
  const names: string[] = [];
  const t0 = Date.now();
  let made = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (made < N) {
        made++;
        names.push(await factory.create('fleet', template, { strategy: 'WAL_LOG' }));
      }
    }),
  );
  console.log(`${N} copies of a migrated database in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const file = path.join(dir, 'databases.txt');
  writeFileSync(file, names.map((n, i) => `t${i}=${factory.url(n)}`).join('\n') + '\n');
  for (let run = 1; run <= RUNS; run++) {
    const started = Date.now();
    const cli = spawn(
      '/usr/bin/time',
      ['-f', '%U %S', process.execPath, CLI, 'migrate', '--databases', file],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    cli.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const code = await new Promise<number | null>((resolve) => cli.once('exit', resolve));
    const wall = Date.now() - started;
    // /usr/bin/time prints "user system" as the last line of stderr.
    const [user, system] = err.trim().split('\n').at(-1)!.split(' ').map(Number);
    if (code !== 0) throw new Error(`migrate --databases failed (${code}): ${err}`);
    console.log(
      `run ${run}${run === 1 ? ' (first connections)' : ''}: ${(wall / 1000).toFixed(2)} s, ` +
        `the CLI's CPU ${(user! + system!).toFixed(2)} s (user ${user}, system ${system})`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  await factory.dropAll();
}
