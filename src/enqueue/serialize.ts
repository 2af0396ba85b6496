/**
 * Turns enqueue input into the JSON that sql/enqueue.sql takes, enforcing every limit of
 * src/limits.ts before any SQL runs, so that a rejected enqueue never aborts the caller's
 * transaction. Total: whatever the input, the result is JSON the engine accepts or an
 * EnqueueValidationError naming the problem (errors thrown by the caller's own getters,
 * toJSON or proxies included).
 */
import { EnqueueValidationError } from '../errors.js';
import {
  MAX_INT,
  MAX_KEY_LENGTH,
  MAX_NAME_LENGTH,
  MAX_PRIORITY,
  MAX_QUEUE_LENGTH,
  MAX_STEPS,
  MIN_PRIORITY,
} from '../limits.js';
import { MAX_CALL_JSON_BYTES } from '../limits.js';
import type { StepCall } from '../steps.js';
import type { StoredTraceContext } from '../telemetry/types.js';
import {
  checkBackoff,
  checkDate,
  checkDuration,
  checkInteger,
  checkText,
  fail,
  unknownKey,
} from './checks.js';
import { describeValue, printable, thrownKind } from './describe.js';
import { jsonbStringBytes, jsonbTextBytes } from './jsonb-text.js';
import { type StoredJson, toStoredJson } from './to-json.js';

export { MAX_CALL_JSON_BYTES } from '../limits.js';
/** What a step's keys, numbers and separators print to, at most, besides its names and args. */
const STEP_OVERHEAD_BYTES = 256;
/**
 * Allowance per job for its JSON around the strings counted exactly (braces, field names,
 * priority, times, on_duplicate, the trace context added after validation): the job's
 * key, rateKey and queue count too, or a batch of long multibyte keys would pass the
 * driver and be refused by PostgreSQL (54000), aborting the caller's transaction.
 */
const JOB_OVERHEAD_BYTES = 256;

/** Options of one enqueued job. */
export interface EnqueueOptions {
  /** Queue name (1 to MAX_QUEUE_LENGTH characters). Default `default`. */
  queue?: string;
  /** Lower runs first, MIN_PRIORITY to MAX_PRIORITY. Default 0. */
  priority?: number;
  /** Not before this time (MIN_DATE to before MAX_DATE). Default: now. */
  runAt?: Date;
  /** Not before this many ms from now (0 to MAX_DELAY_MS; alternative to runAt). */
  delayMs?: number;
  /** Dedupe key (1 to MAX_KEY_LENGTH characters): unique among unfinished jobs. */
  key?: string;
  /**
   * What a per-key rate limit of the queue counts this job's starts under (1 to
   * MAX_KEY_LENGTH characters), e.g. a customer id: see `setQueueLimit`'s `rate.perKey`.
   */
  rateKey?: string;
  /** With a key held by an unfinished job: return its id (default) or throw DuplicateJobError. */
  onDuplicate?: 'return' | 'error';
  /** The forward path ends (compensating) once this time has passed (MIN_DATE to before MAX_DATE). */
  deadline?: Date;
  /** Deadline as a duration from now (1 to MAX_DELAY_MS ms; alternative to deadline). */
  timeoutMs?: number;
  /** Default maxAttempts (1 to MAX_INT) for steps that do not set one. Default: unlimited. */
  maxAttempts?: number;
}

const OPTION_NAMES = new Set<string>([
  'queue',
  'priority',
  'runAt',
  'delayMs',
  'key',
  'rateKey',
  'onDuplicate',
  'deadline',
  'timeoutMs',
  'maxAttempts',
]);

/** Options of one step call (StepCallOptions): the rest belong to defineStep. */
const CALL_OPTION_NAMES: readonly string[] = ['maxAttempts', 'backoff', 'compensate'];
/** Fields of a step call's explicit compensation. */
const COMPENSATE_FIELDS: readonly string[] = ['name', 'args'];

/** A serialised job and the bytes its JSON takes (args exactly, the rest with allowances), for the per-call total. */
interface SerializedJob {
  job: Record<string, unknown>;
  bytes: number;
}

function serializeStep(
  step: unknown,
  i: number,
  jobMaxAttempts: number | undefined,
): { step: Record<string, unknown>; bytes: number } {
  if (typeof step === 'function') {
    const stepName = (step as { stepName?: unknown }).stepName;
    fail(
      `step ${i} is a step definition, not a call: write ${typeof stepName === 'string' ? printable(stepName) : 'step'}(args)`,
    );
  }
  if (typeof step !== 'object' || step === null) {
    fail(`step ${i} must be an object { name, args }, got ${describeValue(step)}`);
  }
  const s = step as StepCall & Record<string, unknown>;
  const name = checkText(s.name, `step ${i} name`, MAX_NAME_LENGTH);
  const rawArgs = s.args;
  const args = toStoredJson(rawArgs, () => `step ${i} (${printable(name)}) args`);
  const out: Record<string, unknown> = { name, args: args.value };
  let bytes = args.bytes + jsonbTextBytes(name) + STEP_OVERHEAD_BYTES;

  const o: unknown = s.options ?? {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    fail(`step ${i} options must be an object, got ${describeValue(o)}`);
  }
  // Refused, not dropped: a per-call timeoutMs or a misspelt maxAttempts would otherwise
  // enqueue and silently not apply.
  const context = `step ${i} (${printable(name)}) options: `;
  const unknown = unknownKey(o, CALL_OPTION_NAMES);
  if (unknown !== undefined) {
    const byDefinition = unknown === '"timeoutMs"' || unknown === '"transactional"';
    fail(
      `${context}unknown option ${unknown} (known: ${CALL_OPTION_NAMES.join(', ')})` +
        (byDefinition
          ? '; timeoutMs and transactional are set by defineStep, in the definition the worker runs'
          : ''),
    );
  }
  const { maxAttempts = jobMaxAttempts, backoff, compensate } = o as Record<string, unknown>;
  if (maxAttempts !== undefined)
    out.max_attempts = checkInteger(maxAttempts, `step ${i} maxAttempts`, 1, MAX_INT);
  if (backoff !== undefined) {
    const { baseMs, maxMs } = checkBackoff(backoff, `step ${i} backoff`, context);
    if (baseMs !== undefined) out.backoff_base_ms = baseMs;
    if (maxMs !== undefined) out.backoff_max_ms = maxMs;
  }
  if (compensate !== undefined) {
    if (typeof compensate !== 'object' || compensate === null || Array.isArray(compensate)) {
      fail(`step ${i} compensate must be an object { name, args }, got ${describeValue(compensate)}`);
    }
    const unknownField = unknownKey(compensate, COMPENSATE_FIELDS);
    if (unknownField !== undefined) {
      fail(`${context}unknown compensate option ${unknownField} (known: ${COMPENSATE_FIELDS.join(', ')})`);
    }
    const c = compensate as Record<string, unknown>;
    const cname = checkText(c.name, `step ${i} compensate.name`, MAX_NAME_LENGTH);
    const rawCompArgs = c.args;
    // Its args default to the step's own (read once: toJSON and getters may have effects).
    const cargs: StoredJson =
      rawCompArgs === undefined || rawCompArgs === rawArgs
        ? args
        : toStoredJson(rawCompArgs, () => `step ${i} (${printable(name)}) compensate.args`);
    out.compensate = { name: cname, args: cargs.value };
    bytes += cargs.bytes + jsonbTextBytes(cname);
  }
  return { step: out, bytes };
}

function serializeJobChecked(steps: unknown, options: unknown): SerializedJob {
  if (!Array.isArray(steps))
    fail(`steps must be an array of step calls or { name, args } objects, got ${describeValue(steps)}`);
  const count = steps.length;
  if (count === 0) fail('a job needs at least one step');
  if (count > MAX_STEPS) fail(`a job has at most ${MAX_STEPS} steps, got ${count}`);
  const o: unknown = options ?? {};
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    fail(`options must be an object, got ${describeValue(o)}`);
  for (const key of Object.keys(o)) {
    if (!OPTION_NAMES.has(key)) {
      fail(`unknown enqueue option "${printable(key, 40)}" (known: ${[...OPTION_NAMES].join(', ')})`);
    }
  }
  const opts = o as Record<string, unknown>;
  const job: Record<string, unknown> = {};
  const maxAttempts =
    opts.maxAttempts === undefined ? undefined : checkInteger(opts.maxAttempts, 'maxAttempts', 1, MAX_INT);
  // Indexes, not map(): map() skips the holes of a sparse array.
  const out: Record<string, unknown>[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const s = serializeStep(steps[i], i, maxAttempts);
    out.push(s.step);
    bytes += s.bytes;
  }
  job.steps = out;
  if (opts.queue !== undefined) job.queue = checkText(opts.queue, 'queue', MAX_QUEUE_LENGTH);
  if (opts.priority !== undefined)
    job.priority = checkInteger(opts.priority, 'priority', MIN_PRIORITY, MAX_PRIORITY);
  if (opts.runAt !== undefined && opts.delayMs !== undefined) fail('give runAt or delayMs, not both');
  if (opts.runAt !== undefined) job.run_at = checkDate(opts.runAt, 'runAt');
  if (opts.delayMs !== undefined) job.delay_ms = checkDuration(opts.delayMs, 'delayMs', 0);
  if (opts.key !== undefined) job.key = checkText(opts.key, 'key', MAX_KEY_LENGTH);
  if (opts.rateKey !== undefined) job.rate_key = checkText(opts.rateKey, 'rateKey', MAX_KEY_LENGTH);
  if (opts.onDuplicate !== undefined) {
    if (opts.onDuplicate !== 'return' && opts.onDuplicate !== 'error') {
      fail(`onDuplicate must be 'return' or 'error', got ${describeValue(opts.onDuplicate)}`);
    }
    job.on_duplicate = opts.onDuplicate;
  }
  if (opts.deadline !== undefined && opts.timeoutMs !== undefined)
    fail('give deadline or timeoutMs, not both');
  if (opts.deadline !== undefined) job.deadline = checkDate(opts.deadline, 'deadline');
  // The engine adds timeoutMs to its own clock, so client clock skew does not matter.
  if (opts.timeoutMs !== undefined) job.timeout_ms = checkDuration(opts.timeoutMs, 'timeoutMs', 1);
  checkDeadlineAfterStart(job);
  bytes += JOB_OVERHEAD_BYTES;
  for (const text of [job.queue, job.key, job.rate_key])
    if (typeof text === 'string') bytes += jsonbStringBytes(text);
  if (bytes > MAX_CALL_JSON_BYTES) {
    fail(
      `the job's args and options print to more than ${MAX_CALL_JSON_BYTES} bytes of JSON in all, over the limit of one call`,
    );
  }
  return { job, bytes };
}

/**
 * A job whose deadline is not later than its first run could never run: it would fail at
 * its first claim. The engine refuses it too (by its own clock, SP001, which aborts the
 * caller's transaction), so the driver refuses it first: exactly when both times are
 * absolute or both relative, by this machine's clock when one of them is "now" (a runAt
 * in the past is "now").
 */
function checkDeadlineAfterStart(job: Record<string, unknown>): void {
  if (job.deadline === undefined && job.timeout_ms === undefined) return;
  const now = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString();
  const runAt = job.run_at as string | undefined;
  const delayMs = job.delay_ms as number | undefined;
  const deadline = job.deadline as string | undefined;
  const timeoutMs = job.timeout_ms as number | undefined;
  if (delayMs !== undefined && timeoutMs !== undefined) {
    if (timeoutMs <= delayMs) {
      fail(
        `timeoutMs (${timeoutMs}) must be more than delayMs (${delayMs}): the job would fail before it could run`,
      );
    }
    return;
  }
  // A runAt in the past runs now.
  const start =
    runAt !== undefined
      ? Date.parse(runAt) >= now
        ? { at: Date.parse(runAt), text: `runAt ${runAt}` }
        : { at: now, text: `runAt ${runAt} is past, so now, ${iso(now)}` }
      : delayMs !== undefined
        ? { at: now + delayMs, text: `delayMs ${delayMs} from now, ${iso(now + delayMs)}` }
        : { at: now, text: `now, ${iso(now)}` };
  const end =
    deadline !== undefined
      ? { at: Date.parse(deadline), text: `deadline (${deadline})` }
      : {
          at: now + (timeoutMs ?? 0),
          text: `timeoutMs ${timeoutMs} from now (${iso(now + (timeoutMs ?? 0))})`,
        };
  if (end.at <= start.at) {
    fail(
      `${end.text} must be later than the job's first run (${start.text}): it would fail before it could run`,
    );
  }
}

/** Runs `read`, turning anything the caller's own code throws into EnqueueValidationError. */
function guarded<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof EnqueueValidationError) throw error;
    throw new EnqueueValidationError(
      `the enqueue input could not be read: a getter or proxy threw ${thrownKind(error)}`,
      { cause: error },
    );
  }
}

/** Validates one job and returns the object sql/enqueue.sql expects. */
export function serializeJob(steps: unknown, options: unknown): Record<string, unknown> {
  return guarded(() => serializeJobChecked(steps, options).job);
}

/**
 * Validates the jobs of one enqueueMany call and returns them as job_enqueue_batch takes
 * them (without trace context); errors name the job (`job 3: ...`) when there are several.
 * The caller's input is read here only: what comes after (the enqueue span, the JSON)
 * works on the result, so a getter or proxy is never read twice.
 */
export function validateJobs(jobs: unknown): Record<string, unknown>[] {
  return guarded(() => {
    if (!Array.isArray(jobs) || jobs.length === 0) fail('enqueueMany needs an array of at least one job');
    const out: Record<string, unknown>[] = [];
    let bytes = 0;
    for (let i = 0; i < jobs.length; i++) {
      const spec: unknown = jobs[i];
      if (typeof spec !== 'object' || spec === null) {
        fail(`job ${i} must be an object { steps, options }, got ${describeValue(spec)}`);
      }
      try {
        const { steps, options } = spec as Record<string, unknown>;
        const s = serializeJobChecked(steps, options);
        out.push(s.job);
        bytes += s.bytes;
      } catch (error) {
        if (error instanceof EnqueueValidationError && jobs.length > 1) {
          throw new EnqueueValidationError(`job ${i}: ${error.message}`, { cause: error.cause });
        }
        throw error;
      }
      if (bytes > MAX_CALL_JSON_BYTES) {
        fail(
          `jobs 0 to ${i} print to more than ${MAX_CALL_JSON_BYTES} bytes of JSON, over the limit of one call: split the batch`,
        );
      }
    }
    return out;
  });
}

/** The JSON text of validated jobs for job_enqueue_batch, each carrying `trace` when given. */
export function jobsJson(jobs: readonly Record<string, unknown>[], trace: StoredTraceContext | null): string {
  if (!trace) return JSON.stringify(jobs);
  return JSON.stringify(
    jobs.map((job) => ({
      ...job,
      trace_parent: trace.traceParent,
      ...(trace.traceState !== null ? { trace_state: trace.traceState } : {}),
    })),
  );
}

/**
 * Validates the jobs of one enqueueMany call and returns the JSON text of the batch for
 * job_enqueue_batch (validateJobs, then jobsJson).
 */
export function serializeJobs(jobs: unknown, trace: StoredTraceContext | null = null): string {
  return jobsJson(validateJobs(jobs), trace);
}
