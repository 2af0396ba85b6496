/**
 * Analysis tool, not part of `npm run bench`: what tracing and metrics cost a one-step
 * drain. Each repetition runs, interleaved, in fresh databases of one server and one child
 * process each (bench/tools/telemetry-overhead-child.ts): Stepping from another checkout
 * (`--before`, e.g. the commit before telemetry, extracted with `git archive`), and this
 * checkout with `@opentelemetry/api` hidden, installed without an SDK (telemetry off, the
 * default), and with the SDK on (spans through a BatchSpanProcessor, metrics). Each drains
 * N pre-loaded one-step no-op jobs with the benchmark's "best" worker settings
 * (concurrency 100, batchSize 100, poolSize 20). Prints one JSON line per run and the
 * medians.
 *
 *   npx tsx bench/tools/telemetry-overhead.ts <serverUrl|-> [--before <dir>] [--jobs N] [--reps R]
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startDatabaseServer } from '../../scripts/embedded-db.js';
import { DatabaseFactory } from '../lib/db.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const before = option('--before');
const jobs = Number(option('--jobs') ?? 20_000);
const reps = Number(option('--reps') ?? 3);
const server = args[0] && args[0] !== '-' ? null : await startDatabaseServer((l) => console.error(l));
const serverUrl = server ? server.url : args[0]!;
const factory = new DatabaseFactory(serverUrl);

interface Mode {
  label: string;
  engine: string;
  otel: 'hidden' | 'off' | 'on';
}
const modes: Mode[] = [
  ...(before
    ? [{ label: 'before', engine: path.resolve(before, 'src/index.ts'), otel: 'hidden' as const }]
    : []),
  { label: 'api hidden', engine: path.join(root, 'src/index.ts'), otel: 'hidden' },
  { label: 'telemetry off', engine: path.join(root, 'src/index.ts'), otel: 'off' },
  { label: 'telemetry on', engine: path.join(root, 'src/index.ts'), otel: 'on' },
];

function runChild(mode: Mode, url: string): Promise<{ seconds: number; rssMb: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(root, 'bench/tools/telemetry-overhead-child.ts'),
        url,
        mode.engine,
        mode.otel,
        String(jobs),
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${mode.label}: exit ${code}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1)!) as { seconds: number; rssMb: number });
    });
  });
}

const rates = new Map<string, number[]>();
try {
  for (let rep = 0; rep < reps; rep++) {
    // Rotate the order so no mode always runs first (or last) in a repetition.
    const order = modes.map((_, i) => modes[(i + rep) % modes.length]!);
    for (const mode of order) {
      const name = await factory.create('tele', undefined, { trackFunctions: false });
      const r = await runChild(mode, factory.url(name));
      const perSecond = jobs / r.seconds;
      rates.set(mode.label, [...(rates.get(mode.label) ?? []), perSecond]);
      console.log(
        JSON.stringify({
          rep,
          mode: mode.label,
          jobs,
          seconds: r.seconds,
          jobsPerSecond: Math.round(perSecond),
          rssMb: r.rssMb,
        }),
      );
      await factory.drop(name);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  // The machine's load moves every mode of a repetition alike: compare within repetitions.
  const base = rates.get(modes[0]!.label)!;
  for (const [label, xs] of rates) {
    const ratios = xs.map((x, rep) => x / base[rep]!);
    console.log(
      `${label}: median ${Math.round(median(xs))} jobs/s (${xs.map((x) => Math.round(x)).join(', ')}); ` +
        `vs ${modes[0]!.label} in the same repetition: median ${median(ratios).toFixed(2)}× ` +
        `(${ratios.map((r) => r.toFixed(2)).join(', ')})`,
    );
  }
} finally {
  await factory.dropAll();
  await server?.stop();
}
