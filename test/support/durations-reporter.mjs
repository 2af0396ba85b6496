/**
 * A node:test reporter that writes how long each test file's tests took (seconds, the sum
 * of its top-level tests) as the JSON test/durations.json holds. test/run.ts adds it when
 * TEST_DURATIONS_OUT names a file: `TEST_DURATIONS_OUT=test/durations.json npm test`
 * refreshes the order in which the runner starts the files. Plain JavaScript: node loads
 * reporters before tsx's hooks.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** @param {AsyncIterable<{ type: string, data: { nesting: number, file?: string, details?: { duration_ms: number } } }>} source */
export default async function* durationsReporter(source) {
  /** @type {Map<string, number>} */
  const seconds = new Map();
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { nesting, file, details } = event.data;
    if (nesting !== 0 || file === undefined || details === undefined) continue;
    // The runner runs test/x.test.ts compiled, as .test-build/<pid>/test/x.test.js.
    const name = path
      .relative(process.cwd(), file)
      .split(path.sep)
      .join('/')
      .replace(/^\.test-build\/\d+\//, '')
      .replace(/\.js$/, '.ts');
    seconds.set(name, (seconds.get(name) ?? 0) + details.duration_ms / 1000);
  }
  const out = process.env.TEST_DURATIONS_OUT;
  if (out) {
    const sorted = [...seconds].sort((a, b) => b[1] - a[1]);
    const json = Object.fromEntries(sorted.map(([f, s]) => [f, Math.round(s * 10) / 10]));
    writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  }
  yield '';
}
