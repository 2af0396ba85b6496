/**
 * Turns recorded figures into markdown (stdout) and the JSON document
 * (results/latest.json): per configuration, medians with min–max over repetitions;
 * the goals of issue 11 as ratios of medians measured in the same run (reported, never
 * asserted); and a profile of what each configuration sends to the database per step.
 */
import type { ProfileSample, Results, Who } from './context.js';
import { summarize, type Summary } from './stats.js';
import { LIBRARY_LABEL, type Variant } from './variants.js';

const fmt = (v: number, digits: number): string =>
  Number.isFinite(v)
    ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '–';

/** `median (min–max)`, or the single value of one repetition. */
export function cell(s: Summary, digits: number): string {
  if (s.runs.length === 0) return '–';
  if (s.runs.length === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** Every figure summarised, for the JSON. */
export function summarizeAll(results: Results): Record<string, Record<Who, Summary>> {
  const out: Record<string, Record<Who, Summary>> = {};
  for (const [figure, byWho] of results.figures) {
    out[figure] = {};
    for (const [who, values] of byWho) out[figure][who] = summarize(values);
  }
  return out;
}

/** Adds derived figures: each drain as a percentage of the floor's median. */
export function deriveFigures(results: Results, variants: readonly Variant[]): void {
  const floor = summarize(results.values('drain.throughput', 'floor')).median;
  if (!Number.isFinite(floor)) return;
  for (const v of variants) {
    for (const value of results.values('drain.throughput', v.id)) {
      results.record('drain.percentOfFloor', v.id, (value / floor) * 100);
    }
  }
}

/** The configurations and their settings. */
export function markdownSettings(variants: readonly Variant[]): string {
  const lines = ['| Configuration | Settings |', '|---|---|'];
  for (const v of variants) lines.push(`| ${label(v)} | \`${v.settings}\` |`);
  return lines.join('\n');
}

function label(v: Variant): string {
  return `${LIBRARY_LABEL[v.library]} · ${v.id.split(':')[1]}`;
}

/** The main table: one row per configuration (and the floor). */
export function markdownFigures(
  results: Results,
  variants: readonly Variant[],
  sizes: { bulk: number; chain: number; chainSteps: number },
): string {
  const n = (v: number) => v.toLocaleString('en-US');
  const lines = [
    `| Configuration | Drain ${n(sizes.bulk)} one-step jobs, jobs/s | % of SQL floor | ` +
      `${n(sizes.chain)} ${sizes.chainSteps}-step jobs, steps/s | Latency p50 / p99, ms | WAL bytes/job | ` +
      'Row updates/job (HOT %) + deletes | Statements/job | Transactions/job | Worker RSS, MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const s = (figure: string, who: Who) => summarize(results.values(figure, who));
  const capped = (figure: string, who: Who) => (results.capped.has(`${figure}/${who}`) ? ' ⏱' : '');
  // The database's own WAL when it was decoded; else the server-wide figure, marked †.
  const wal = (who: Who) => {
    const own = s('drain.walBytesPerStep', who);
    if (own.runs.length > 0) return fmt(own.median, 0);
    const server = s('drain.walServerBytesPerStep', who);
    return server.runs.length > 0 ? `${fmt(server.median, 0)} †` : '–';
  };
  for (const v of variants) {
    const w = v.id;
    const updates = s('drain.updatesPerStep', w);
    const hot = s('drain.hotPercent', w);
    const deletes = s('drain.deletesPerStep', w);
    lines.push(
      `| ${label(v)} | ${cell(s('drain.throughput', w), 0)}${capped('drain', w)} | ` +
        `${fmt(s('drain.percentOfFloor', w).median, 0)} | ` +
        `${cell(s('chain.throughput', w), 0)}${capped('chain', w)} | ` +
        `${fmt(s('latency.p50', w).median, 1)} / ${fmt(s('latency.p99', w).median, 1)} | ` +
        `${wal(w)} | ` +
        `${fmt(updates.median, 2)} (${fmt(hot.median, 0)}%) + ${fmt(deletes.median, 2)} | ` +
        `${fmt(s('drain.statementsPerStep', w).median, 3)} | ` +
        `${fmt(s('drain.transactionsPerStep', w).median, 3)} | ` +
        `${fmt(s('drain.hwmMb', w).median, 0)} |`,
    );
  }
  const floor = s('drain.throughput', 'floor');
  if (floor.runs.length > 0) {
    lines.push(
      `| SQL floor (plain table, SKIP LOCKED claim of 100 + DELETE, 2 connections) | ${cell(floor, 0)} | 100 | | | ` +
        `${wal('floor')} | 1 + 1 | ` +
        `${fmt(s('drain.statementsPerStep', 'floor').median, 3)} | ` +
        `${fmt(s('drain.transactionsPerStep', 'floor').median, 3)} | |`,
    );
  }
  return lines.join('\n');
}

/** Per-library enqueue figures. */
export function markdownEnqueue(results: Results, libraries: readonly string[], bulkJobs: number): string {
  const rows = libraries.filter(
    (l) => results.values('bulk', l).length + results.values('enqueue.single', l).length > 0,
  );
  if (rows.length === 0) return '';
  const lines = [
    `| Library | Enqueue 1 job/tx, 1 client, jobs/s | 1 job/tx, 8 clients, jobs/s | Bulk ${bulkJobs.toLocaleString('en-US')} (batches of 5,000), jobs/s |`,
    '|---|---:|---:|---:|',
  ];
  for (const l of rows) {
    lines.push(
      `| ${LIBRARY_LABEL[l as keyof typeof LIBRARY_LABEL] ?? l} | ${cell(summarize(results.values('enqueue.single', l)), 0)} | ` +
        `${cell(summarize(results.values('enqueue.concurrent', l)), 0)} | ${cell(summarize(results.values('bulk', l)), 0)} |`,
    );
  }
  return lines.join('\n');
}

/** One goal of issue 11, evaluated on medians of this run. */
export interface Goal {
  goal: string;
  measured: string;
  met: boolean | null;
}

/** Issue 11's goals, from the medians of this run (null: not measured in this run). */
export function goals(results: Results): Goal[] {
  const m = (figure: string, who: Who) => summarize(results.values(figure, who)).median;
  const ratio = (a: number, b: number) => a / b;
  const out: Goal[] = [];
  const add = (goal: string, value: number, text: (v: number) => string, met: (v: number) => boolean) =>
    out.push({
      goal,
      measured: Number.isFinite(value) ? text(value) : 'not measured',
      met: Number.isFinite(value) ? met(value) : null,
    });
  const x = (v: number) => `${v.toFixed(2)}×`;
  add(
    'One-step drain: Stepping best ≥ 1.5× graphile-worker best',
    ratio(m('drain.throughput', 'stepping:best'), m('drain.throughput', 'graphile:best')),
    x,
    (v) => v >= 1.5,
  );
  add(
    'One-step drain: Stepping best ≥ 50% of the SQL floor',
    m('drain.percentOfFloor', 'stepping:best'),
    (v) => `${v.toFixed(0)}%`,
    (v) => v >= 50,
  );
  add(
    'No tuning: Stepping default ≥ 80% of Stepping best (drain)',
    ratio(m('drain.throughput', 'stepping:default'), m('drain.throughput', 'stepping:best')) * 100,
    (v) => `${v.toFixed(0)}%`,
    (v) => v >= 80,
  );
  for (const p of ['p50', 'p99'] as const) {
    add(
      `Latency ${p}, idle worker: Stepping default ≤ graphile-worker best`,
      ratio(m(`latency.${p}`, 'stepping:default'), m(`latency.${p}`, 'graphile:best')),
      x,
      (v) => v <= 1,
    );
  }
  add(
    'Five-step jobs: Stepping best keeps its lead over graphile-worker best (about 4×)',
    ratio(m('chain.throughput', 'stepping:best'), m('chain.throughput', 'graphile:best')),
    x,
    (v) => v >= 3.5,
  );
  const walOf = (who: Who) => {
    const own = m('drain.walBytesPerStep', who);
    return Number.isFinite(own) ? own : m('drain.walServerBytesPerStep', who);
  };
  add(
    'WAL bytes per drained job: Stepping best ≤ graphile-worker best',
    ratio(walOf('stepping:best'), walOf('graphile:best')),
    x,
    (v) => v <= 1,
  );
  add(
    'Worker RSS ≤ 150 MB (Stepping best, one-step drain)',
    m('drain.hwmMb', 'stepping:best'),
    (v) => `${v.toFixed(0)} MB`,
    (v) => v <= 150,
  );
  return out;
}

/** The goals as a markdown table. */
export function markdownGoals(list: Goal[]): string {
  const lines = ['| Goal (issue 11) | Measured (medians of this run) | Met |', '|---|---:|---|'];
  for (const g of list)
    lines.push(`| ${g.goal} | ${g.measured} | ${g.met === null ? '' : g.met ? 'yes' : 'no'} |`);
  return lines.join('\n');
}

/** The sweep: every setting's drain, best first within each library. */
export function markdownSweep(results: Results, variants: readonly Variant[]): string {
  const lines = [
    '| Configuration | Settings | Drain, jobs/s | WAL bytes/job | Statements/job | Transactions/job |',
    '|---|---|---:|---:|---:|---:|',
  ];
  const rate = (v: Variant) => summarize(results.values('sweep.throughput', v.id)).median;
  const sorted = [...variants].sort((a, b) =>
    a.library === b.library ? rate(b) - rate(a) : a.library.localeCompare(b.library),
  );
  for (const v of sorted) {
    const s = (f: string) => summarize(results.values(`sweep.${f}`, v.id));
    lines.push(
      `| ${v.id} | \`${v.settings}\` | ${cell(s('throughput'), 0)}${results.capped.has(`sweep/${v.id}`) ? ' ⏱' : ''} | ` +
        `${fmt(s('walBytesPerStep').runs.length ? s('walBytesPerStep').median : s('walServerBytesPerStep').median, 0)}${s('walBytesPerStep').runs.length ? '' : ' †'} | ${fmt(s('statementsPerStep').median, 3)} | ` +
        `${fmt(s('transactionsPerStep').median, 3)} |`,
    );
  }
  return lines.join('\n');
}

/** Per-step database work of one configuration in one scenario, summed over repetitions. */
export interface Profile {
  scenario: string;
  variant: string;
  steps: number;
  statementsPerStep: number;
  statements: { text: string; perStep: number; meanMs: number; shareOfClientTime: number }[];
  functions: { fn: string; callsPerStep: number; selfUsPerStep: number; totalUsPerStep: number }[];
  tables: {
    table: string;
    insertedPerStep: number;
    updatedPerStep: number;
    hotPercent: number;
    deletedPerStep: number;
  }[];
  /** The database's own WAL by record kind, per step (from the decoded repetition). */
  wal: { kind: string; recordsPerStep: number; bytesPerStep: number; fpiBytesPerStep: number }[];
}

/** Aggregates the profile samples of each (scenario, variant). */
export function profiles(samples: ProfileSample[]): Profile[] {
  const groups = new Map<string, ProfileSample[]>();
  for (const s of samples) {
    const key = `${s.scenario}/${s.variant}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  const out: Profile[] = [];
  for (const group of groups.values()) {
    const first = group[0]!;
    const steps = group.reduce((a, s) => a + s.steps, 0);
    const stmts = new Map<string, { count: number; ms: number }>();
    const fns = new Map<string, { calls: number; self: number; total: number }>();
    const tables = new Map<string, { ins: number; upd: number; hot: number; del: number }>();
    for (const s of group) {
      for (const st of s.statements) {
        const e = stmts.get(st.text) ?? { count: 0, ms: 0 };
        e.count += st.count;
        e.ms += st.totalMs;
        stmts.set(st.text, e);
      }
      for (const f of s.functions) {
        const e = fns.get(f.fn) ?? { calls: 0, self: 0, total: 0 };
        e.calls += f.calls;
        e.self += f.selfMs;
        e.total += f.totalMs;
        fns.set(f.fn, e);
      }
      for (const t of s.tables) {
        const e = tables.get(t.table) ?? { ins: 0, upd: 0, hot: 0, del: 0 };
        e.ins += t.inserted;
        e.upd += t.updated;
        e.hot += t.hotUpdated;
        e.del += t.deleted;
        tables.set(t.table, e);
      }
    }
    const decoded = group.find((s) => s.walKinds.length > 0);
    const totalCount = [...stmts.values()].reduce((a, e) => a + e.count, 0);
    const totalMs = [...stmts.values()].reduce((a, e) => a + e.ms, 0);
    out.push({
      scenario: first.scenario,
      variant: first.variant,
      steps,
      statementsPerStep: totalCount / steps,
      statements: [...stmts.entries()]
        .map(([text, e]) => ({
          text,
          perStep: e.count / steps,
          meanMs: e.count ? e.ms / e.count : 0,
          shareOfClientTime: totalMs ? e.ms / totalMs : 0,
        }))
        .sort((a, b) => b.shareOfClientTime - a.shareOfClientTime),
      functions: [...fns.entries()]
        .map(([fn, e]) => ({
          fn,
          callsPerStep: e.calls / steps,
          selfUsPerStep: (e.self * 1000) / steps,
          totalUsPerStep: (e.total * 1000) / steps,
        }))
        .sort((a, b) => b.selfUsPerStep - a.selfUsPerStep),
      tables: [...tables.entries()]
        .filter(([, e]) => e.ins + e.upd + e.del > 0)
        .map(([table, e]) => ({
          table,
          insertedPerStep: e.ins / steps,
          updatedPerStep: e.upd / steps,
          hotPercent: e.upd ? (e.hot / e.upd) * 100 : 0,
          deletedPerStep: e.del / steps,
        })),
      wal: (decoded?.walKinds ?? []).map((k) => ({
        kind: k.kind,
        recordsPerStep: k.records / decoded!.steps,
        bytesPerStep: k.bytes / decoded!.steps,
        fpiBytesPerStep: k.fpiBytes / decoded!.steps,
      })),
    });
  }
  return out;
}

/** A short markdown rendering of the drain profiles: statements and table writes per job. */
export function markdownProfiles(list: Profile[]): string {
  const parts: string[] = [];
  for (const p of list.filter((x) => x.scenario === 'drain')) {
    parts.push(
      `\n**${p.variant}, one-step drain**: ${p.statementsPerStep.toFixed(3)} statements per job (driver count)\n`,
    );
    parts.push('| Statement | per job | mean ms |', '|---|---:|---:|');
    for (const s of p.statements.slice(0, 4)) {
      parts.push(
        `| \`${s.text.slice(0, 90).replace(/\|/g, '\\|')}\` | ${s.perStep.toFixed(3)} | ${s.meanMs.toFixed(2)} |`,
      );
    }
    if (p.wal.length > 0) {
      parts.push(
        '',
        '| WAL record (own database) | records/job | bytes/job | of which full-page images |',
        '|---|---:|---:|---:|',
      );
      for (const k of p.wal.slice(0, 6)) {
        parts.push(
          `| ${k.kind} | ${k.recordsPerStep.toFixed(2)} | ${k.bytesPerStep.toFixed(0)} | ${k.fpiBytesPerStep.toFixed(0)} |`,
        );
      }
    }
    if (p.tables.length > 0) {
      parts.push(
        '',
        '| Table | inserts/job | updates/job | HOT % | deletes/job |',
        '|---|---:|---:|---:|---:|',
      );
      for (const t of p.tables) {
        parts.push(
          `| ${t.table} | ${t.insertedPerStep.toFixed(2)} | ${t.updatedPerStep.toFixed(2)} | ` +
            `${t.hotPercent.toFixed(0)} | ${t.deletedPerStep.toFixed(2)} |`,
        );
      }
    }
  }
  return parts.join('\n');
}
