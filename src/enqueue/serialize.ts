/**
 * Turns enqueue input into the JSON the engine takes, rejecting anything PostgreSQL's
 * jsonb would refuse or silently change, before any SQL runs (so a rejected enqueue never
 * aborts the caller's transaction).
 */
import { EnqueueValidationError } from '../errors.js';
import type { StepCall } from '../steps.js';

/** Largest serialised `args` of one step, in bytes (UTF-8). */
export const MAX_ARGS_BYTES = 1024 * 1024;
/** Largest number of steps in one job. */
export const MAX_STEPS = 1000;

/** Options of one enqueued job. */
export interface EnqueueOptions {
  /** Queue name (1-100 characters). Default `default`. */
  queue?: string;
  /** Lower runs first. Default 0. */
  priority?: number;
  /** Not before this time. Default: now. */
  runAt?: Date;
  /** Not before this many ms from now (alternative to runAt). */
  delayMs?: number;
  /** Dedupe key: unique among unfinished jobs. */
  key?: string;
  /** With a key held by an unfinished job: return its id (default) or throw DuplicateJobError. */
  onDuplicate?: 'return' | 'error';
  /** The forward path ends (compensating) once this time has passed. */
  deadline?: Date;
  /** Deadline as a duration from now (alternative to deadline). */
  timeoutMs?: number;
  /** Default maxAttempts for steps that do not set one. Default: unlimited. */
  maxAttempts?: number;
}

const OPTION_NAMES = new Set<string>([
  'queue',
  'priority',
  'runAt',
  'delayMs',
  'key',
  'onDuplicate',
  'deadline',
  'timeoutMs',
  'maxAttempts',
]);

function fail(message: string): never {
  throw new EnqueueValidationError(message);
}

/** Copies a value into plain JSON, or throws naming the first offending path. */
function toJson(value: unknown, where: string, seen: Set<object>): unknown {
  switch (typeof value) {
    case 'string':
      if (value.includes('\u0000'))
        fail(`${where} contains the character \\u0000, which PostgreSQL jsonb cannot store`);
      return value;
    case 'number':
      if (!Number.isFinite(value)) fail(`${where} is ${value}, which JSON cannot represent`);
      return value;
    case 'boolean':
      return value;
    case 'bigint':
      fail(`${where} is a BigInt, which JSON cannot represent (convert it to a string)`);
    // falls through: fail() never returns
    case 'function':
    case 'symbol':
      fail(`${where} is a ${typeof value}, which is not JSON`);
    // falls through
    case 'undefined':
      return undefined;
    default:
      break;
  }
  if (value === null) return null;
  const obj = value as object;
  if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
    return toJson((obj as { toJSON: () => unknown }).toJSON(), where, seen);
  }
  if (seen.has(obj)) fail(`${where} refers back to itself (a cycle), which JSON cannot represent`);
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      return obj.map((item, i) => {
        const v = toJson(item, `${where}[${i}]`, seen);
        return v === undefined ? null : v;
      });
    }
    const proto = Object.getPrototypeOf(obj) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      const kind = (obj as { constructor?: { name?: string } }).constructor?.name ?? 'object';
      if (obj instanceof Map || obj instanceof Set)
        fail(`${where} is a ${kind}, which JSON.stringify would drop`);
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (k.includes('\u0000'))
        fail(`${where} has a key containing \\u0000, which PostgreSQL jsonb cannot store`);
      const converted = toJson(v, `${where}.${k}`, seen);
      if (converted !== undefined) out[k] = converted;
    }
    return out;
  } finally {
    seen.delete(obj);
  }
}

function checkString(value: unknown, what: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    fail(`${what} must be a string of 1 to ${max} characters, got ${JSON.stringify(value) ?? String(value)}`);
  }
  if (value.includes('\u0000')) fail(`${what} contains \\u0000`);
  return value;
}

function checkPositiveInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2_147_483_647) {
    fail(`${what} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function checkDate(value: unknown, what: string): string {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) fail(`${what} must be a valid Date`);
  return value.toISOString();
}

function serializeStep(
  step: unknown,
  i: number,
  jobMaxAttempts: number | undefined,
): Record<string, unknown> {
  if (typeof step === 'function') {
    fail(
      `step ${i} is a step definition, not a call: write ${(step as { stepName?: string }).stepName ?? 'step'}(args)`,
    );
  }
  if (typeof step !== 'object' || step === null) fail(`step ${i} must be an object { name, args }`);
  const s = step as StepCall & Record<string, unknown>;
  const name = checkString(s.name, `step ${i} name`, 200);
  const where = `step ${i} (${name}) args`;
  const args = toJson(s.args, where, new Set());
  const argsText = JSON.stringify(args ?? null);
  const bytes = Buffer.byteLength(argsText, 'utf8');
  if (bytes > MAX_ARGS_BYTES) fail(`${where} are ${bytes} bytes, over the limit of ${MAX_ARGS_BYTES} bytes`);

  const out: Record<string, unknown> = { name, args: args ?? null };
  const o = s.options ?? {};
  const maxAttempts = o.maxAttempts ?? jobMaxAttempts;
  if (maxAttempts !== undefined) out.max_attempts = checkPositiveInt(maxAttempts, `step ${i} maxAttempts`);
  if (o.backoff?.baseMs !== undefined)
    out.backoff_base_ms = checkPositiveInt(o.backoff.baseMs, `step ${i} backoff.baseMs`);
  if (o.backoff?.maxMs !== undefined)
    out.backoff_max_ms = checkPositiveInt(o.backoff.maxMs, `step ${i} backoff.maxMs`);
  if (s.transactional === true) out.transactional = true;
  if (o.compensate !== undefined) {
    const c = o.compensate;
    const cname = checkString(c?.name, `step ${i} compensate.name`, 200);
    const cargs = toJson(c.args === undefined ? s.args : c.args, `step ${i} compensate args`, new Set());
    out.compensate = { name: cname, args: cargs ?? null };
  }
  return out;
}

/** Validates one job and returns the object sql/enqueue.sql expects. */
export function serializeJob(steps: unknown, options: EnqueueOptions | undefined): Record<string, unknown> {
  if (!Array.isArray(steps)) fail('steps must be an array of step calls or { name, args } objects');
  if (steps.length === 0) fail('a job needs at least one step');
  if (steps.length > MAX_STEPS) fail(`a job has at most ${MAX_STEPS} steps, got ${steps.length}`);
  const o = options ?? {};
  if (typeof o !== 'object') fail('options must be an object');
  for (const key of Object.keys(o)) {
    if (!OPTION_NAMES.has(key))
      fail(`unknown enqueue option "${key}" (known: ${[...OPTION_NAMES].join(', ')})`);
  }
  const job: Record<string, unknown> = {};
  if (o.maxAttempts !== undefined) checkPositiveInt(o.maxAttempts, 'maxAttempts');
  job.steps = steps.map((s, i) => serializeStep(s, i, o.maxAttempts));
  if (o.queue !== undefined) job.queue = checkString(o.queue, 'queue', 100);
  if (o.priority !== undefined) {
    if (!Number.isInteger(o.priority) || Math.abs(o.priority) > 1_000_000) {
      fail(`priority must be an integer from -1000000 to 1000000, got ${String(o.priority)}`);
    }
    job.priority = o.priority;
  }
  if (o.runAt !== undefined && o.delayMs !== undefined) fail('give runAt or delayMs, not both');
  if (o.runAt !== undefined) job.run_at = checkDate(o.runAt, 'runAt');
  if (o.delayMs !== undefined) {
    if (typeof o.delayMs !== 'number' || !Number.isFinite(o.delayMs) || o.delayMs < 0) {
      fail(`delayMs must be a non-negative number, got ${String(o.delayMs)}`);
    }
    job.delay_ms = Math.round(o.delayMs);
  }
  if (o.key !== undefined) job.key = checkString(o.key, 'key', 500);
  if (o.onDuplicate !== undefined) {
    if (o.onDuplicate !== 'return' && o.onDuplicate !== 'error') {
      fail(`onDuplicate must be 'return' or 'error', got ${JSON.stringify(o.onDuplicate)}`);
    }
    job.on_duplicate = o.onDuplicate;
  }
  if (o.deadline !== undefined && o.timeoutMs !== undefined) fail('give deadline or timeoutMs, not both');
  if (o.deadline !== undefined) job.deadline = checkDate(o.deadline, 'deadline');
  if (o.timeoutMs !== undefined) {
    // The engine adds it to its own clock, so client clock skew does not matter.
    job.timeout_ms = checkPositiveInt(o.timeoutMs, 'timeoutMs');
  }
  return job;
}
