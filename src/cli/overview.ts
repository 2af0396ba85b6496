/**
 * How rows of the job_overview and step_overview views are shown as text, shared by the
 * CLI and the demo. Step numbers are 0-based, as in the views. Results and the job's
 * output are data from handlers: shown escaped and cut to one line.
 */
import { escapeControl, textOf } from '../text.js';
import type { Column } from './table.js';

type Row = Readonly<Record<string, unknown>>;

/** Characters of a step's result shown in the step table (`--json` has them all). */
export const RESULT_WIDTH = 40;
/** Characters of the job's output shown by `stepping job ID` (`--json` has them all). */
export const OUTPUT_WIDTH = 100;

/**
 * A stored result (or output) as one line of JSON, control characters escaped, cut to
 * `maxWidth` characters with an ellipsis; null when there is none. JSON rather than the
 * bare value, so that the string "42" and the number 42 look different.
 */
export function resultText(value: unknown, maxWidth: number): string | null {
  if (value === null || value === undefined) return null;
  const text = escapeControl(JSON.stringify(value));
  if (text.length <= maxWidth) return text;
  // Never split a surrogate pair (half of one would print as a replacement character).
  let end = maxWidth - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

/** Columns of a job list (job_overview rows). */
export const JOB_COLUMNS: readonly Column<Row>[] = [
  { header: 'id', value: (r) => r.job_id, right: true },
  { header: 'queue', value: (r) => r.queue },
  { header: 'status', value: (r) => r.status },
  { header: 'steps', value: (r) => r.step_count, right: true },
  { header: 'at step', value: (r) => `#${String(r.current_step)} ${String(r.current_step_name)}` },
  { header: 'attempt', value: (r) => r.current_attempt, right: true },
  { header: 'created', value: (r) => r.created_at },
  { header: 'finished', value: (r) => r.finished_at },
  { header: 'last error', value: (r) => r.last_error, maxWidth: 60 },
];

/** Columns of one job's steps (step_overview rows). */
export const STEP_COLUMNS: readonly Column<Row>[] = [
  { header: '#', value: (r) => r.step_index, right: true },
  { header: 'name', value: (r) => r.name },
  { header: 'status', value: (r) => r.status },
  { header: 'attempts', value: (r) => r.attempts, right: true },
  { header: 'max', value: (r) => r.max_attempts, right: true },
  { header: 'finished', value: (r) => r.finished_at },
  { header: 'last error', value: (r) => r.last_error, maxWidth: 60 },
  {
    header: 'compensation',
    value: (r) =>
      r.compensate_name && `${textOf(r.compensate_name)}: ${textOf(r.compensation_status ?? 'not needed')}`,
  },
  { header: 'result', value: (r) => resultText(r.result, RESULT_WIDTH) },
];

/** One job shown vertically (label, value) from its job_overview row. */
export function jobRecord(r: Row): [string, unknown][] {
  return [
    ['job', r.job_id],
    ['queue', r.queue],
    ['status', r.status],
    ['key', r.key],
    ['priority', r.priority],
    ['steps', r.step_count],
    [
      'at step',
      `#${String(r.current_step)} ${String(r.current_step_name)} (${r.phase === 'compensate' ? 'compensating' : 'forward'})`,
    ],
    ['attempt', r.current_attempt],
    ['run at', r.run_at],
    ['lease expires', r.lease_expires_at],
    ['locked by', r.locked_by],
    ['cancel requested', r.cancel_requested],
    ['deadline', r.deadline],
    ['last error', r.last_error],
    ['output', resultText(r.output, OUTPUT_WIDTH)],
    ['created', r.created_at],
    ['updated', r.updated_at],
    ['finished', r.finished_at],
  ];
}
