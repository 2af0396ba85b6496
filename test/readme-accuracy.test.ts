/**
 * The README against the code it describes: option tables, bin flags, view columns, SQL
 * function signatures, worker events and CLI output are read from the source, the bins
 * and the migrated database, so a claim that drifts from the code fails here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { workerHelp } from '../src/cli/worker-cli.js';
import { defineStep } from '../src/index.js';
import { resolveWorkerConfig } from '../src/worker/options.js';
import { sourceRoot } from './fixtures/processes.js';
import { operatorCli } from './support/cli.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);
const readme = readFileSync(path.join(sourceRoot, 'README.md'), 'utf8');
const source = (file: string) => readFileSync(path.join(sourceRoot, file), 'utf8');
const noop = defineStep('ra.noop', async () => {});

/** The README text from the line starting with `start` up to the next heading. */
function section(start: string): string {
  const from = readme.indexOf(`\n${start}`);
  assert.ok(from >= 0, `README has a section ${start}`);
  const rest = readme.slice(from + 1);
  const end = rest.slice(start.length).search(/\n#{1,4} /);
  return end < 0 ? rest : rest.slice(0, start.length + end);
}

/** The README paragraph (up to a blank line) that starts with `start`. */
function paragraph(start: string): string {
  const from = readme.indexOf(start);
  assert.ok(from >= 0, `README has a paragraph starting ${start}`);
  const rest = readme.slice(from);
  const end = rest.indexOf('\n\n');
  return end < 0 ? rest : rest.slice(0, end);
}

/** The table row of a README section whose first cell holds `` `name` ``. */
function row(text: string, name: string): string {
  const line = text.split('\n').find((l) => l.startsWith('|') && l.split('|')[1]!.includes(`\`${name}\``));
  assert.ok(line, `README table has a row for ${name}`);
  return line;
}

/** Names in backticks. */
function ticked(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

/** The property names of `export interface <name> { ... }` in a source file. */
function interfaceFields(file: string, name: string): string[] {
  const text = source(file);
  const start = text.indexOf(`export interface ${name} {`);
  assert.ok(start >= 0, `${file} declares ${name}`);
  const body = text.slice(start, text.indexOf('\n}', start));
  return [...body.matchAll(/^ {2}(?:readonly )?'?([\w:-]+)'?\??:/gm)].map((m) => m[1]!);
}

/** Every .ts file under a directory of the project. */
function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(sourceRoot, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(path.join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [path.join(dir, e.name)]
        : [],
  );
}

test('the createWorker table lists every WorkerOptions field', () => {
  const table = section('### `createWorker(options)`');
  const documented = new Set(
    table
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .flatMap((l) => ticked(l.split('|')[1]!)),
  );
  for (const field of interfaceFields('src/worker/options.ts', 'WorkerOptions')) {
    assert.ok(documented.has(field), `createWorker option ${field} is missing from the README table`);
  }
});

test("the README's per-queue limits example is accepted with the default concurrency", () => {
  const queues = row(section('### `createWorker(options)`'), 'queues');
  const literal = /\{[^}]*\}/.exec(queues.split('|')[3]!)?.[0];
  assert.ok(literal, 'the queues row shows a per-queue limits object');
  const limits = JSON.parse(literal.replace(/(\w+)\s*:/g, '"$1":')) as Record<string, number>;
  const config = resolveWorkerConfig({ steps: [noop], queues: limits });
  assert.deepEqual(Object.fromEntries(config.queueLimits), limits);
});

test('the stepping-worker paragraph names every flag of stepping-worker --help', () => {
  const text = paragraph('`stepping-worker --steps <module>` runs');
  const flags = [...workerHelp().matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!);
  assert.ok(flags.length > 10, 'flags read from the help text');
  for (const flag of flags.filter((f) => f !== '--help')) {
    assert.ok(
      new RegExp(`(?<![\\w-])${flag}(?![\\w-])`).test(text),
      `stepping-worker ${flag} is missing from the README`,
    );
  }
});

test('the worker views are documented with exactly their columns', async () => {
  const views = section('## Plain SQL');
  for (const view of ['live_workers', 'worker_overview']) {
    const { fields } = await h.pool.query(`SELECT * FROM stepping.${view} LIMIT 0`);
    const cells = row(views, `stepping.${view}`).split('|');
    assert.deepEqual(
      new Set(ticked(cells[2]!)),
      new Set(fields.map((f) => f.name)),
      `README columns of ${view}`,
    );
  }
});

test('the SQL function table lists every public function with its parameters', async () => {
  const sql = section('## Plain SQL');
  const table = sql.slice(sql.indexOf('| function | does |'));
  const calls = table
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .flatMap((l) => [...l.split('|')[1]!.matchAll(/`?(\w+)\(([^)]*)\)/g)])
    .map((m) => ({ name: m[1]!, args: m[2]! }));
  const { rows } = await h.pool.query<{ name: string; nargs: number; params: string }>(
    `SELECT p.proname AS name, p.pronargs AS nargs, pg_get_function_arguments(p.oid) AS params
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'stepping' AND p.proname !~ '^_'`,
  );
  assert.ok(rows.length > 20);
  for (const fn of rows) {
    const shown = calls.find((c) => c.name === fn.name);
    assert.ok(shown, `SQL function ${fn.name}(${fn.params}) is missing from the README`);
    if (shown.args.includes('…')) continue;
    const count = shown.args.trim() === '' ? 0 : shown.args.split(',').length;
    assert.equal(count, fn.nargs, `README shows ${fn.name}(${shown.args}); it is ${fn.name}(${fn.params})`);
  }
});

test("the worker's events are documented with their fields and every error `during`", () => {
  const text = paragraph('Events (`worker.on(name, fn)`');
  const events = source('src/worker/events.ts');
  const unitFields = interfaceFields('src/worker/events.ts', 'UnitEvent');
  for (const field of unitFields) {
    assert.ok(text.includes(`\`${field}\``), `the unit field ${field} of step events is not documented`);
  }
  for (const event of interfaceFields('src/worker/events.ts', 'WorkerEventMap')) {
    const quoted = /^\w+$/.test(event) ? event : `'${event}'`;
    const decl = new RegExp(`^ {2}${quoted}: ([^;]*?)\\{([^}]*)\\}`, 'ms').exec(events);
    const fields = decl
      ? [...decl[2]!.matchAll(/^\s*(\w+)\??:/gm)]
          .map((m) => m[1]!)
          .filter((f) => f !== 'database' && f !== 'jobId')
      : [];
    // The event itself, not a field of the same name (`step:failed` has an `error`).
    const listed = text.indexOf(`\`${event}\` (`);
    const at = listed >= 0 ? listed : text.indexOf(`\`${event}\``);
    assert.ok(at >= 0, `event ${event} is not documented`);
    if (fields.length === 0) continue;
    const after = text.slice(at + event.length + 2);
    assert.ok(after.startsWith(' ('), `event ${event}: its fields (${fields.join(', ')}) are not listed`);
    const list = after.slice(0, after.indexOf(')'));
    for (const field of fields) {
      assert.ok(list.includes(`\`${field}\``), `event ${event}: field ${field} is not listed`);
    }
  }
  // Every `during` the worker emits: `during: 'x'` and error(e, 'x') / error(e, `x ${...}`).
  const during = new Set<string>();
  for (const file of [...sourceFiles('src/worker'), ...sourceFiles('src/multidb')]) {
    const code = source(file);
    for (const m of code.matchAll(/during: '([a-z]+)'/g)) during.add(m[1]!);
    for (const m of code.matchAll(/\berror\(\s*\w+(?: as Error)?,\s*['`]([a-z]+)\b/g)) during.add(m[1]!);
  }
  for (const expected of ['claim', 'release', 'watch', 'schedule']) assert.ok(during.has(expected), expected);
  const errorAt = text.indexOf('`error` (');
  const list = text.slice(errorAt, text.indexOf(')', errorAt));
  for (const value of during) {
    assert.ok(new RegExp(`\\b${value}\\b`).test(list), `error during ${value} is not documented`);
  }
});

/** Runs the `stepping` CLI in this process on this file's database. */
const cli = operatorCli(h.url);

test('migrate --json prints schema, applied and missingRoles, as the README says', async () => {
  const run = await cli(['migrate', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const printed = JSON.parse(run.stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(printed).sort(), ['applied', 'missingRoles', 'schema']);
  assert.ok(Array.isArray(printed.missingRoles));
  assert.ok(
    /`migrate --json` prints\s+`\{ "schema", "applied", "missingRoles" \}`/.test(readme),
    'the README says what migrate --json prints',
  );
});

test('migrate --databases writes its per-database lines to stderr into a pipe, as the README says', async () => {
  const run = await cli(['migrate', '--databases', h.url], { stderrIsTerminal: false });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /^\[1\/1\] .*: /m);
  const text = paragraph('`status --json` prints');
  assert.ok(
    /`migrate --databases` still writes its per-database lines?\s+to stderr/.test(text),
    'the README says migrate --databases writes its per-database lines to stderr',
  );
});
