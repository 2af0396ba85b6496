/**
 * Step results a hostile handler returns, on the job page: a result within the 1 MB limit
 * can be 70 MB once indented (340,000 numbers nested 100 deep put 200 spaces before each),
 * and the page shows only the first 20,000 characters of it. The page must cost what it
 * shows: indenting the whole value took about 1.7 s per result while the server answered
 * nothing else, twice per result, on every live refresh of an open page.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { jsonText, MAX_JSON_SHOWN } from '../src/dashboard/format.js';
import { completeStep, dashboard, request } from './support/dashboard.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** `count` ones in an array nested `depth` deep: the most indentation per byte the limits allow. */
function deepOnes(count: number, depth: number): unknown {
  let value: unknown = Array.from({ length: count }, () => 1);
  for (let i = 1; i < depth; i++) value = [value];
  return value;
}

/** `value` wrapped so that every element or member read from it is counted. */
function counted(value: unknown, reads: { n: number }): unknown {
  if (value === null || typeof value !== 'object') return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      const v: unknown = Reflect.get(target, key, receiver);
      if (
        typeof key === 'string' &&
        Object.hasOwn(target, key) &&
        !(Array.isArray(target) && key === 'length')
      ) {
        reads.n++;
        return counted(v, reads);
      }
      return v;
    },
  });
}

test(
  'a stored JSON value is shown as JSON.stringify indents it, and only as much of it is read as is shown',
  { timeout: 60_000 },
  () => {
    // 340,000 numbers nested 100 deep: 1 MB as PostgreSQL prints it, 69 MB indented.
    const reads = { n: 0 };
    const shown = jsonText(counted(deepOnes(340_000, 100), reads));
    assert.ok(shown.length < MAX_JSON_SHOWN + 100, String(shown.length));
    assert.ok(shown.startsWith(`[\n  [\n    [`), shown.slice(0, 20));
    // Each number shown takes a line of more than 200 characters.
    assert.ok(
      reads.n <= MAX_JSON_SHOWN / 200 + 200,
      `read ${reads.n} elements to show ${shown.length} characters`,
    );

    const values: unknown[] = [
      null,
      true,
      0,
      -0,
      1e21,
      -1.5e-7,
      '',
      'line\nbreak "quoted" \u2028 \u0000 é 😀',
      [],
      {},
      [[], {}, [[]], { a: [] }],
      { a: 1, 'b c': [1, '2', null, { d: {} }], e: { f: { g: 'h' } } },
      deepOnes(5, 4),
    ];
    for (const value of values) {
      assert.equal(jsonText(value), JSON.stringify(value, null, 2), JSON.stringify(value));
    }
    // Cut at the limit (never inside a surrogate pair), with a note.
    const long = { text: 'x'.repeat(MAX_JSON_SHOWN * 2) };
    const cut = jsonText(long);
    assert.ok(cut.startsWith(JSON.stringify(long, null, 2).slice(0, MAX_JSON_SHOWN)), cut.slice(0, 40));
    assert.match(
      cut.slice(MAX_JSON_SHOWN),
      /^\n… \(cut at 20000 characters; `stepping job ID --json` shows all\)$/,
    );
    const emoji = jsonText(['😀'.repeat(MAX_JSON_SHOWN)]);
    assert.ok(!/[\ud800-\udbff]$/.test(emoji.split('\n…')[0]!), 'a surrogate pair split at the cut');
  },
);

test(
  'the job page of a job whose steps returned deeply nested 1 MB results shows each cut, and says so',
  { timeout: 120_000 },
  async () => {
    const names = ['results.a', 'results.b'];
    const jobId = await h.stepping.enqueue(
      names.map((name) => ({ name, args: {} })),
      { queue: 'results' },
    );
    for (const name of names) await completeStep(h.pool, jobId, name, deepOnes(340_000, 100));
    const d = await dashboard({ connectionString: h.url });
    const page = await request(new URL(`jobs/${jobId}`, d.url).href);
    assert.equal(page.status, 200, page.body.slice(0, 300));
    const notes = page.body.match(
      /… \(cut at 20000 characters; &#96;stepping job ID --json&#96; shows all\)/g,
    );
    // Each step's result, and the job's output (its last step's result).
    assert.equal(notes?.length, 3);
    assert.ok(page.body.length < 200_000, String(page.body.length));
  },
);

test(
  'the job page of a 1,000-step job whose every result is 8,000 quotes stays a few MB',
  { timeout: 120_000 },
  async () => {
    const name = 'results.quotes';
    const steps = 1000;
    const jobId = await h.stepping.enqueue(
      Array.from({ length: steps }, () => ({ name, args: {} })),
      { queue: 'results' },
    );
    for (let i = 0; i < steps; i++) await completeStep(h.pool, jobId, name, null);
    assert.equal((await h.stepping.getJob(jobId))?.status, 'succeeded');
    // What handlers returning 8,000 quotes each would have stored: 16 KB each as PostgreSQL
    // prints them, 16 MB in all (the per-job limit). Written in one statement: through the
    // engine, every claim carries the results before it (ctx.results), 8 GB in all.
    await h.pool.query(`UPDATE stepping.steps SET result = to_jsonb(repeat('"', 8000)) WHERE job_id = $1`, [
      jobId,
    ]);
    const d = await dashboard({ connectionString: h.url });
    const page = await request(new URL(`jobs/${jobId}`, d.url).href);
    assert.equal(page.status, 200, page.body.slice(0, 300));
    assert.ok(page.body.length < 5_000_000, `the page is ${page.body.length} characters`);
    // Every step is listed; the first results are shown, the rest point to the CLI. (Each
    // quote is `\"` in JSON and `\&quot;` in HTML: 7 characters of page per character.)
    assert.equal(page.body.match(/<li\s+class="t-succeeded"\s+data-step-index=/g)?.length, steps);
    assert.ok(page.body.includes(`<pre data-result>&quot;${'\\&quot;'.repeat(100)}`));
    assert.match(page.body, /not shown: this page shows \d[\d,]* characters of results and errors in all/);
  },
);
