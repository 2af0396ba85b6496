/**
 * Turns recorded figures into the markdown table (stdout) and the JSON document
 * (results/latest.json): medians with min–max over repetitions, Stepping ÷
 * graphile-worker ratios, targets (reported, not asserted), and a profile of what each
 * library sends to the database per step.
 */
import type { ProfileSample, Results, Who } from './context.js';
import type { LibraryName } from './protocol.js';
import { summarize, type Summary } from './stats.js';

/** One row of the main table. */
interface RowSpec {
  label: string;
  figure: string;
  unit: string;
  digits: number;
  /** Target on Stepping's figure or on the ratio, reported as met or not. */
  target?: { text: string; met: (stepping: number, ratio: number) => boolean };
}

/** A rendered row, as stored in the JSON. */
export interface TableRow {
  label: string;
  unit: string;
  stepping: Summary;
  graphile: Summary;
  ratio: number;
  target: string | null;
  met: boolean | null;
  digits: number;
}

function rowSpecs(jobsLabel: { bulk: number; chain: number; chainSteps: number }): RowSpec[] {
  const atLeast = (x: number) => ({ text: `≥ ${x}×`, met: (_: number, r: number) => r >= x });
  const atMost = (x: number) => ({ text: `≤ ${x}×`, met: (_: number, r: number) => r <= x });
  const n = (v: number) => v.toLocaleString('en-US');
  return [
    {
      label: 'Enqueue, 1 job/tx, 1 client',
      figure: 'enqueue.single',
      unit: 'jobs/s',
      digits: 0,
      target: atLeast(1),
    },
    {
      label: 'Enqueue, 1 job/tx, 8 clients',
      figure: 'enqueue.concurrent',
      unit: 'jobs/s',
      digits: 0,
      target: atLeast(1),
    },
    {
      label: `Bulk enqueue ${n(jobsLabel.bulk)}`,
      figure: 'bulk',
      unit: 'jobs/s',
      digits: 0,
      target: atLeast(1),
    },
    {
      label: `Drain ${n(jobsLabel.bulk)} one-step jobs`,
      figure: 'drain.throughput',
      unit: 'jobs/s',
      digits: 0,
      target: atLeast(1.5),
    },
    {
      label: `Drain ${n(jobsLabel.chain)} ${jobsLabel.chainSteps}-step jobs`,
      figure: 'chain.throughput',
      unit: 'steps/s',
      digits: 0,
      target: atLeast(2),
    },
    { label: 'Latency p50 (idle worker)', figure: 'latency.p50', unit: 'ms', digits: 1, target: atMost(1) },
    { label: 'Latency p95', figure: 'latency.p95', unit: 'ms', digits: 1 },
    { label: 'Latency p99', figure: 'latency.p99', unit: 'ms', digits: 1, target: atMost(1) },
    {
      label: 'Drain as % of SQL floor',
      figure: 'drain.percentOfFloor',
      unit: '%',
      digits: 0,
      target: { text: 'Stepping ≥ 50%', met: (s) => s >= 50 },
    },
    {
      label: 'Worker peak RSS, one-step drain',
      figure: 'drain.hwmMb',
      unit: 'MB',
      digits: 0,
      target: { text: 'Stepping ≤ 150 MB', met: (s) => s <= 150 },
    },
    { label: 'Worker peak RSS, multi-step drain', figure: 'chain.hwmMb', unit: 'MB', digits: 0 },
    { label: 'Statements per step, one-step', figure: 'drain.statementsPerStep', unit: 'stmts', digits: 2 },
    { label: 'Statements per step, multi-step', figure: 'chain.statementsPerStep', unit: 'stmts', digits: 2 },
    {
      label: 'Transactions per step, one-step',
      figure: 'drain.transactionsPerStep',
      unit: 'xacts',
      digits: 2,
    },
    {
      label: 'Transactions per step, multi-step',
      figure: 'chain.transactionsPerStep',
      unit: 'xacts',
      digits: 2,
    },
    {
      label: 'Server CPU per 1k steps, one-step',
      figure: 'drain.serverCpuMsPer1kSteps',
      unit: 'ms',
      digits: 0,
    },
    {
      label: 'Server CPU per 1k steps, multi-step',
      figure: 'chain.serverCpuMsPer1kSteps',
      unit: 'ms',
      digits: 0,
    },
    {
      label: 'Worker CPU per 1k steps, one-step',
      figure: 'drain.workerCpuMsPer1kSteps',
      unit: 'ms',
      digits: 0,
    },
    {
      label: 'Worker CPU per 1k steps, multi-step',
      figure: 'chain.workerCpuMsPer1kSteps',
      unit: 'ms',
      digits: 0,
    },
  ];
}

function fmt(v: number, digits: number): string {
  if (!Number.isFinite(v)) return '–';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function cell(s: Summary, digits: number): string {
  if (s.runs.length === 0) return '–';
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** Adds derived figures (drain as % of the floor, per repetition). */
export function deriveFigures(results: Results): void {
  const floor = results.values('drain.throughput', 'floor');
  for (const library of ['stepping', 'graphile'] as const) {
    results.values('drain.throughput', library).forEach((v, i) => {
      const f = floor[i];
      if (f !== undefined) results.record('drain.percentOfFloor', library, (v / f) * 100);
    });
  }
}

/** Summaries of every figure, per producer. */
export function summarizeAll(results: Results): Record<string, Partial<Record<Who, Summary>>> {
  const out: Record<string, Partial<Record<Who, Summary>>> = {};
  for (const [figure, byWho] of results.figures) {
    out[figure] = {};
    for (const [who, values] of byWho) out[figure][who] = summarize(values);
  }
  return out;
}

/** The main table's rows. */
export function tableRows(results: Results, labels: Parameters<typeof rowSpecs>[0]): TableRow[] {
  return rowSpecs(labels)
    .filter((spec) => results.figures.has(spec.figure))
    .map((spec) => {
      const stepping = summarize(results.values(spec.figure, 'stepping'));
      const graphile = summarize(results.values(spec.figure, 'graphile'));
      const ratio = stepping.median / graphile.median;
      const met =
        spec.target && Number.isFinite(stepping.median) ? spec.target.met(stepping.median, ratio) : null;
      return {
        label: spec.label,
        unit: spec.unit,
        stepping,
        graphile,
        ratio,
        target: spec.target?.text ?? null,
        met,
        digits: spec.digits,
      };
    });
}

/** The main markdown table. */
export function markdownTable(rows: TableRow[], floor: Summary): string {
  const lines = [
    '| Scenario | Unit | Stepping, median (min–max) | graphile-worker, median (min–max) | Stepping ÷ graphile | Target | Met |',
    '|---|---|---:|---:|---:|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${r.unit} | ${cell(r.stepping, r.digits)} | ${cell(r.graphile, r.digits)} | ` +
        `${Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}×` : '–'} | ${r.target ?? ''} | ` +
        `${r.met === null ? '' : r.met ? 'yes' : 'no'} |`,
    );
  }
  if (floor.runs.length > 0) {
    lines.push(
      `| SQL floor (plain table, SKIP LOCKED claim + DELETE) | jobs/s | ${cell(floor, 0)} | | | | |`,
    );
  }
  return lines.join('\n');
}

/** Per-step database work of one library in one scenario, summed over repetitions. */
export interface Profile {
  scenario: string;
  library: LibraryName;
  steps: number;
  statementsPerStep: number;
  /** Wall time of the runs per step, and client-observed statement time per step (> wall: statements overlapped). */
  wallMsPerStep: number;
  statementMsPerStep: number;
  statements: { text: string; perStep: number; meanMs: number; shareOfClientTime: number }[];
  functions: { fn: string; callsPerStep: number; selfUsPerStep: number; totalUsPerStep: number }[];
  tables: {
    table: string;
    insertedPerStep: number;
    updatedPerStep: number;
    hotPercent: number;
    deletedPerStep: number;
  }[];
}

/** Aggregates the profile samples of each (scenario, library). */
export function profiles(samples: ProfileSample[]): Profile[] {
  const groups = new Map<string, ProfileSample[]>();
  for (const s of samples) {
    const key = `${s.scenario}/${s.library}`;
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
    const totalCount = [...stmts.values()].reduce((a, e) => a + e.count, 0);
    const totalMs = [...stmts.values()].reduce((a, e) => a + e.ms, 0);
    out.push({
      scenario: first.scenario,
      library: first.library,
      steps,
      statementsPerStep: totalCount / steps,
      wallMsPerStep: group.reduce((a, s) => a + s.elapsedMs, 0) / steps,
      statementMsPerStep: totalMs / steps,
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
    });
  }
  return out;
}

/** A short markdown rendering of the profiles (top statements and functions). */
export function markdownProfiles(list: Profile[]): string {
  const parts: string[] = [];
  for (const p of list) {
    parts.push(
      `\n**${p.library}, ${p.scenario}**: ${p.statementsPerStep.toFixed(2)} statements per step ` +
        `(driver count, all repetitions); statements in flight ${p.statementMsPerStep.toFixed(3)} ms per step ` +
        `against ${p.wallMsPerStep.toFixed(3)} ms of wall time per step\n`,
    );
    parts.push('| Statement | per step | mean ms | share of client DB time |', '|---|---:|---:|---:|');
    for (const s of p.statements.slice(0, 6)) {
      parts.push(
        `| \`${s.text.slice(0, 90).replace(/\|/g, '\\|')}\` | ${s.perStep.toFixed(3)} | ${s.meanMs.toFixed(2)} | ` +
          `${(s.shareOfClientTime * 100).toFixed(0)}% |`,
      );
    }
    const fns = p.functions.filter((f) => f.callsPerStep > 0.001).slice(0, 6);
    if (fns.length > 0) {
      parts.push(
        '',
        '| Function (pg_stat_user_functions) | calls/step | self µs/step | total µs/step |',
        '|---|---:|---:|---:|',
      );
      for (const f of fns) {
        parts.push(
          `| ${f.fn} | ${f.callsPerStep.toFixed(3)} | ${f.selfUsPerStep.toFixed(0)} | ${f.totalUsPerStep.toFixed(0)} |`,
        );
      }
    }
    if (p.tables.length > 0) {
      parts.push(
        '',
        '| Table | inserts/step | updates/step | HOT % | deletes/step |',
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
