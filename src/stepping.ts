/**
 * The producer/operator client: enqueue in the caller's transaction, migrate, inspect,
 * retry, cancel and wait. Holds a pool for calls made without a transaction; holds no
 * job state of its own.
 */
import { setMaxListeners } from 'node:events';

import type pg from 'pg';

import { checkConnectionString, schemaName } from './config.js';
import { isPgPool, notTransactionLikeMessage } from './db/adapters.js';
import { Engine } from './db/engine.js';
import { describeConnection, ListenCheck } from './db/listen-check.js';
import { type MigrateOutcome, migrateSchema } from './db/migrate.js';
import { NotificationHub } from './db/notifications.js';
import { createPool } from './db/pool.js';
import { isTransactionLike, toQueryable, type TransactionLike } from './db/queryable.js';
import { waitForFinalState } from './db/wait-for-job.js';
import { describeValue, printable } from './enqueue/describe.js';
import { type EnqueueOptions, jobsJson, validateJobs } from './enqueue/serialize.js';
import {
  ConfigError,
  DuplicateJobError,
  EnqueueValidationError,
  InvalidArgumentError,
  SteppingError,
  UnreadableResultError,
} from './errors.js';
import { isFinalStatus, type JobStatus, PRUNABLE_STATUSES } from './job-status.js';
import { MAX_DELAY_MS, MAX_PRUNE_BATCH } from './limits.js';
import {
  type QueueLimit,
  type QueueLimitState,
  type ScheduleOptions,
  Schedules,
  type ScheduleState,
} from './schedules/schedules.js';
import type { StepCall } from './steps.js';
import { ProducerTracing } from './telemetry/producer.js';
import type { TelemetryOptions } from './telemetry/types.js';

/** How to reach the database. */
export interface SteppingOptions {
  /** PostgreSQL connection string (ignored when `pool` is given). Default: DATABASE_URL. */
  connectionString?: string;
  /** Your own pg Pool; Stepping will not end it on close(). */
  pool?: pg.Pool;
  /** Schema holding Stepping's tables and functions. Default `stepping`. */
  schema?: string;
  /**
   * A direct server URL for waitForJob's LISTEN, when `connectionString`/`pool` go through
   * PgBouncer in transaction pooling mode (where LISTEN hears nothing). Without it,
   * waitForJob checks that notifications arrive and otherwise polls, with one warning.
   */
  listenConnectionString?: string;
  /**
   * OpenTelemetry (with `@opentelemetry/api` installed): enqueue runs in a PRODUCER span
   * whose context is stored on the job, so the steps' spans link to it. Default: the
   * global tracer provider. See README, Tracing and metrics.
   */
  telemetry?: Pick<TelemetryOptions, 'tracerProvider'>;
}

/** One job of a bulk enqueue. */
export interface JobSpec {
  steps: readonly StepCall[];
  options?: EnqueueOptions;
}

/** A job as seen through the job_overview view. */
export interface JobState {
  jobId: string;
  queue: string;
  status: JobStatus;
  key: string | null;
  /** What a per-key rate limit counts the job's starts under (the enqueue option `rateKey`). */
  rateKey: string | null;
  stepCount: number;
  currentStep: number;
  currentStepName: string;
  currentAttempt: number;
  lastError: string | null;
  createdAt: Date;
  finishedAt: Date | null;
  /** The result of the job's last step (its output), once it has one. */
  output: unknown;
}

/** A step as seen through the step_overview view. */
export interface StepState {
  stepIndex: number;
  name: string;
  /** pending, running, retrying, succeeded, failed, cancelled or skipped (never ran: the job ended). */
  status: string;
  attempts: number;
  maxAttempts: number | null;
  lastError: string | null;
  finishedAt: Date | null;
  /** The handler's return value, stored with the step's completion (undefined: none). */
  result: unknown;
  compensateName: string | null;
  /** null (none to run), pending, running or succeeded. */
  compensationStatus: string | null;
  compensationAttempts: number;
  compensationLastError: string | null;
}

/** A finished job with every step's result, as waitForJob resolves it. */
export interface FinishedJob extends JobState {
  /** Results by step index (undefined where a step returned nothing or did not run). */
  results: unknown[];
}

function stepStateFromRow(r: Record<string, unknown>): StepState {
  return {
    stepIndex: Number(r.step_index),
    name: String(r.name),
    status: String(r.status),
    attempts: Number(r.attempts),
    maxAttempts: r.max_attempts === null ? null : Number(r.max_attempts),
    lastError: (r.last_error as string | null) ?? null,
    finishedAt: (r.finished_at as Date | null) ?? null,
    result: r.result ?? undefined,
    compensateName: (r.compensate_name as string | null) ?? null,
    compensationStatus: (r.compensation_status as string | null) ?? null,
    compensationAttempts: Number(r.compensation_attempts ?? 0),
    compensationLastError: (r.compensation_last_error as string | null) ?? null,
  };
}

const BIGINT_MAX = 2n ** 63n - 1n;

/**
 * A job id as the engine takes it: a decimal string of a bigint (leading zeros dropped,
 * so it compares equal to the ids in notifications), or a safe integer. Anything else is
 * an InvalidArgumentError naming the call and the id, rather than SQLSTATE 22P02/22003
 * from PostgreSQL. 0 is accepted: no job has it, so it reads as "no such job".
 */
function jobIdText(call: string, value: unknown): string {
  if (typeof value === 'string' && /^\d{1,30}$/.test(value) && BigInt(value) <= BIGINT_MAX) {
    return BigInt(value).toString();
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  throw new InvalidArgumentError(
    `${call}: a job id must be a decimal string of a bigint from 0 to ${BIGINT_MAX} (or a safe ` +
      `integer), got ${describeValue(value)}`,
  );
}

/**
 * A call's options object, or `{}` for undefined and null (plain JavaScript and config
 * files pass null for "not given"). Anything else that is not an object, and any key not
 * in `known`, is an InvalidArgumentError naming it: a misspelt `timeout` or
 * `compensation` would otherwise be dropped without a word (a wait with no end, a cancel
 * without compensation).
 */
function callOptions(call: string, options: unknown, known: readonly string[]): Record<string, unknown> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentError(`${call}: options must be an object, got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new InvalidArgumentError(
        `${call}: unknown option "${printable(key, 40)}" (known: ${known.join(', ')})`,
      );
    }
  }
  return options as Record<string, unknown>;
}

/** What createStepping takes (SteppingOptions' keys). */
const STEPPING_OPTIONS = ['connectionString', 'pool', 'schema', 'listenConnectionString', 'telemetry'];

/** A number of milliseconds from 0 to MAX_DELAY_MS, or InvalidArgumentError naming the option. */
function millisecondsOption(call: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_DELAY_MS) {
    throw new InvalidArgumentError(
      `${call}: ${name} must be a number of milliseconds from 0 to ${MAX_DELAY_MS}, got ${describeValue(value)}`,
    );
  }
  return value;
}

function jobStateFromRow(r: Record<string, unknown>): JobState {
  return {
    jobId: String(r.job_id),
    queue: String(r.queue),
    status: r.status as JobStatus,
    key: (r.key as string | null) ?? null,
    rateKey: (r.rate_key as string | null) ?? null,
    stepCount: Number(r.step_count),
    currentStep: Number(r.current_step),
    currentStepName: String(r.current_step_name),
    currentAttempt: Number(r.current_attempt),
    lastError: (r.last_error as string | null) ?? null,
    createdAt: r.created_at as Date,
    finishedAt: (r.finished_at as Date | null) ?? null,
    output: r.output ?? undefined,
  };
}

/**
 * createStepping's options: undefined and null read as `{}` (DATABASE_URL); anything else
 * must be an object with known keys, or a ConfigError names it (a misspelt
 * connectionString would otherwise fall back to DATABASE_URL without a word).
 */
function steppingOptions(options: unknown): SteppingOptions {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new ConfigError(
      `createStepping: options must be an object { connectionString } or { pool }, got ${describeValue(options)}`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!STEPPING_OPTIONS.includes(key)) {
      throw new ConfigError(
        `createStepping: unknown option "${printable(key, 40)}" (known: ${STEPPING_OPTIONS.join(', ')})`,
      );
    }
  }
  return options as SteppingOptions;
}

/** The Stepping client. Create with createStepping(). */
export class Stepping {
  /** The schema this client talks to. */
  readonly schema: string;
  /** The pool used for calls made without a transaction. */
  readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly engine: Engine;
  private readonly schedules: Schedules;
  private hub: NotificationHub | undefined;
  private listenCheck: ListenCheck | undefined;
  private readonly listenConnectionString: string | undefined;
  private readonly tracing: ProducerTracing;
  /** Aborted by close(): ends the waits in flight, and marks the client closed. */
  private readonly closing = new AbortController();
  private closed: Promise<void> | undefined;

  constructor(given: SteppingOptions = {}) {
    // Every waitForJob in flight listens for close(): any number at once is normal use,
    // not the leak Node warns of past 10 listeners (each wait removes its own).
    setMaxListeners(0, this.closing.signal);
    const options = steppingOptions(given);
    this.schema = schemaName(options.schema);
    if (options.pool) {
      this.pool = options.pool;
      this.ownsPool = false;
    } else {
      const fromEnv = options.connectionString === undefined;
      const connectionString = options.connectionString ?? process.env.DATABASE_URL;
      if (!connectionString)
        throw new ConfigError('createStepping needs connectionString, pool or DATABASE_URL');
      checkConnectionString(connectionString, fromEnv ? 'DATABASE_URL' : 'connectionString');
      this.pool = createPool({ connectionString, applicationName: 'stepping', max: 10 });
      this.ownsPool = true;
    }
    this.engine = new Engine(this.schema);
    this.schedules = new Schedules(this.schema);
    if (options.listenConnectionString !== undefined)
      checkConnectionString(options.listenConnectionString, 'listenConnectionString');
    this.listenConnectionString = options.listenConnectionString;
    this.tracing = new ProducerTracing(options.telemetry?.tracerProvider);
  }

  /** Refuses a call on a closed client (whose pool may be ended), naming the call. */
  private checkOpen(call: string): void {
    if (this.closing.signal.aborted)
      throw new SteppingError(`stepping: ${call}: this client was closed (close() was called)`);
  }

  /**
   * Enqueues one job. With `tx` (a pg client inside BEGIN, or a Kysely transaction) the
   * job exists exactly when that transaction commits; without it, the job is committed
   * at once. Invalid input throws EnqueueValidationError before any SQL runs.
   * Returns the job id (the existing job's id when `key` matched an unfinished job).
   */
  enqueue(tx: TransactionLike, steps: readonly StepCall[], options?: EnqueueOptions): Promise<string>;
  enqueue(steps: readonly StepCall[], options?: EnqueueOptions): Promise<string>;
  async enqueue(
    a: TransactionLike | readonly StepCall[],
    b?: readonly StepCall[] | EnqueueOptions,
    c?: EnqueueOptions,
  ): Promise<string> {
    this.checkOpen('enqueue');
    const [tx, steps, options] = Array.isArray(a)
      ? [undefined, a as readonly StepCall[], b as EnqueueOptions | undefined]
      : [a as TransactionLike, b as readonly StepCall[], c];
    if (tx !== undefined && !isTransactionLike(tx)) {
      throw new EnqueueValidationError(notTransactionLikeMessage(tx));
    }
    const [result] = await this.enqueueMany(tx, [{ steps, ...(options ? { options } : {}) }]);
    return result!.jobId;
  }

  /**
   * Enqueues many jobs in one statement (the bulk path). Same transaction rules as
   * enqueue(); pass `undefined` as tx to commit at once. Returns one entry per job, in order.
   */
  async enqueueMany(
    tx: TransactionLike | undefined,
    jobs: readonly JobSpec[],
  ): Promise<{ jobId: string; created: boolean }[]> {
    this.checkOpen('enqueueMany');
    if (!Array.isArray(jobs) || jobs.length === 0)
      throw new EnqueueValidationError('enqueueMany needs at least one job');
    // Validated first: the span reads the validated queues, never the caller's input (whose
    // getters and proxies may throw) before validation has turned such errors into
    // EnqueueValidationError.
    const validated = validateJobs(jobs);
    const specs = validated.map((job) => ({ options: { queue: job.queue } }));
    return await this.tracing.send(specs, (trace) =>
      this.insert(tx, jobsJson(validated, trace), validated.length),
    );
  }

  /**
   * Runs the batch: in the caller's transaction, or (none given, or a pg Pool) in one of our
   * own. A refused duplicate (onDuplicate: 'error') leaves none of the batch behind with any
   * client: job_enqueue_batch undoes the batch in its own statement (a subtransaction).
   */
  private async insert(
    tx: TransactionLike | undefined,
    payload: string,
    count: number,
  ): Promise<{ jobId: string; created: boolean }[]> {
    if (tx !== undefined && !isPgPool(tx))
      return this.checkDuplicates(await this.engine.enqueueBatch(toQueryable(tx), payload), count);
    // Without the caller's transaction (none, or a pg Pool, whose statements commit at once),
    // use our own so that a refused duplicate inserts nothing of the batch.
    const client = await (tx ?? this.pool).connect();
    try {
      await client.query('BEGIN');
      const result = this.checkDuplicates(await this.engine.enqueueBatch(client, payload), count);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * Turns refused duplicates (onDuplicate: 'error') into DuplicateJobError. The engine
   * reports them as rows rather than raising, so the caller's transaction stays usable, and
   * has undone the rest of the batch (whose rows then carry no job id).
   */
  private checkDuplicates(
    rows: { jobId: string | null; created: boolean; duplicateRefused: boolean }[],
    count: number,
  ): { jobId: string; created: boolean }[] {
    if (rows.length !== count)
      throw new UnreadableResultError(
        `stepping: enqueue sent ${count} jobs but the client returned ${rows.length} rows; ` +
          "the jobs may have been inserted in the client's transaction: roll it back",
      );
    const refused = rows.find((r) => r.duplicateRefused);
    if (refused) {
      throw new DuplicateJobError(
        `an unfinished job (${refused.jobId}) already has this key; nothing was enqueued by this call`,
        refused.jobId ?? '',
      );
    }
    return rows.map(({ jobId, created }) => {
      // Only the rows of a batch undone for a refused duplicate carry no id.
      if (jobId === null)
        throw new UnreadableResultError(
          "stepping: enqueue's result has a row without a job id and no refused duplicate: roll the transaction back",
        );
      return { jobId, created };
    });
  }

  /**
   * Creates or upgrades the schema (tables, functions, views, roles and grants). Safe to
   * run from many processes at once; costs one query when already up to date.
   */
  async migrate(): Promise<MigrateOutcome> {
    this.checkOpen('migrate');
    const client = await this.pool.connect();
    try {
      return await migrateSchema(client, this.schema);
    } finally {
      client.release();
    }
  }

  /** The job's current state, or null when there is no such job. */
  async getJob(jobId: string): Promise<JobState | null> {
    this.checkOpen('getJob');
    const row = await this.engine.jobOverview(this.pool, jobIdText('getJob', jobId));
    return row ? jobStateFromRow(row) : null;
  }

  /** The job's steps in order (empty when there is no such job). */
  async steps(jobId: string): Promise<StepState[]> {
    this.checkOpen('steps');
    return (await this.engine.stepOverview(this.pool, jobIdText('steps', jobId))).map(stepStateFromRow);
  }

  /**
   * Resumes a failed job from its failed step (attempts reset; a deadline that has passed
   * is removed, or replaced by `deadline`). Other statuses: InvalidJobStateError.
   */
  async retry(jobId: string, options: { deadline?: Date } = {}): Promise<void> {
    this.checkOpen('retry');
    const id = jobIdText('retry', jobId);
    // null reads as "not given", as it did before these checks (JS callers and configs pass it).
    const deadline = callOptions('retry', options, ['deadline']).deadline ?? undefined;
    if (deadline !== undefined && !(deadline instanceof Date && Number.isFinite(deadline.getTime()))) {
      throw new InvalidArgumentError(
        `retry: deadline must be a valid Date, got ${deadline instanceof Date ? 'an invalid Date' : describeValue(deadline)}`,
      );
    }
    await this.engine.retry(this.pool, id, deadline ?? null);
  }

  /**
   * Cancels an unfinished job. Pending: stops at once. Running: the step's ctx.signal is
   * aborted and the job stops after it. `compensate: true` runs compensations first.
   * Returns the status after the call (`running` while the current step winds down).
   */
  async cancel(jobId: string, options: { compensate?: boolean } = {}): Promise<string> {
    this.checkOpen('cancel');
    const id = jobIdText('cancel', jobId);
    const compensate = callOptions('cancel', options, ['compensate']).compensate ?? false;
    if (typeof compensate !== 'boolean') {
      throw new InvalidArgumentError(
        `cancel: compensate must be true or false, got ${describeValue(compensate)}`,
      );
    }
    return await this.engine.cancel(this.pool, id, compensate);
  }

  /**
   * Deletes finished jobs older than `olderThanMs` (default 7 days), at most `limit` per
   * call (default 10,000); failed jobs are kept unless listed in `statuses`.
   */
  async prune(
    options: { olderThanMs?: number; statuses?: readonly string[]; limit?: number } = {},
  ): Promise<number> {
    this.checkOpen('prune');
    const given = callOptions('prune', options, ['olderThanMs', 'statuses', 'limit']);
    // null reads as "not given", as it did before these checks (JS callers and configs pass it).
    const olderThanMs = given.olderThanMs ?? undefined;
    const limit = given.limit ?? undefined;
    const statuses = given.statuses ?? PRUNABLE_STATUSES;
    // Which names are statuses is the engine's to say (EngineInputError); the type is checked here.
    if (!Array.isArray(statuses) || !statuses.every((status) => typeof status === 'string')) {
      const bad = Array.isArray(statuses)
        ? `an array holding ${describeValue(statuses.find((status) => typeof status !== 'string'))}`
        : describeValue(statuses);
      throw new InvalidArgumentError(`prune: statuses must be an array of status names, got ${bad}`);
    }
    if (
      limit !== undefined &&
      (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_PRUNE_BATCH)
    ) {
      throw new InvalidArgumentError(
        `prune: limit must be an integer from 1 to ${MAX_PRUNE_BATCH}, got ${describeValue(limit)}`,
      );
    }
    return await this.engine.prune(
      this.pool,
      olderThanMs === undefined ? null : millisecondsOption('prune', 'olderThanMs', olderThanMs),
      statuses as readonly string[],
      limit ?? null,
    );
  }

  /**
   * Resolves with the job's state and every step's result once it is final (succeeded,
   * failed, compensated, cancelled). Woken by NOTIFY on the <schema>_done channel (a hint
   * to re-read the job, never trusted by itself); where LISTEN does not work (PgBouncer in
   * transaction pooling mode, no listenConnectionString) it re-reads the job every second.
   * `signal` stops the wait at once (rejecting with its reason); so does close().
   */
  async waitForJob(
    jobId: string,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<FinishedJob> {
    this.checkOpen('waitForJob');
    // Checked before anything listens: NaN, or a misspelt option, would otherwise wait forever.
    const id = jobIdText('waitForJob', jobId);
    const { timeoutMs: timeoutOption, signal } = callOptions('waitForJob', options, ['timeoutMs', 'signal']);
    const timeoutMs =
      timeoutOption === undefined ? undefined : millisecondsOption('waitForJob', 'timeoutMs', timeoutOption);
    // null reads as "not given", as for the other options of plain JavaScript callers.
    const given: unknown = signal ?? undefined;
    if (given !== undefined && !(given instanceof AbortSignal)) {
      throw new InvalidArgumentError(
        `waitForJob: signal must be an AbortSignal, got ${describeValue(given)}`,
      );
    }
    given?.throwIfAborted();
    // One signal for this wait: the caller's, or close().
    const sources = given ? [given, this.closing.signal] : [this.closing.signal];
    const stop = new AbortController();
    const forward = () => stop.abort(sources.find((s) => s.aborted)?.reason);
    for (const source of sources) source.addEventListener('abort', forward, { once: true });
    try {
      const listenOn = this.listenConnectionString
        ? { connectionString: this.listenConnectionString }
        : this.pool;
      this.hub ??= new NotificationHub(listenOn);
      this.listenCheck ??= new ListenCheck(this.hub, this.pool, `${this.schema}_probe`, {
        describe: describeConnection(listenOn),
        // Once per client: the check keeps its answer. Not after close(): a probe refused by
        // the ended pool says nothing about LISTEN.
        onUnavailable: (message) => {
          if (!this.closing.signal.aborted)
            process.emitWarning(message, { code: 'STEPPING_LISTEN_UNAVAILABLE' });
        },
      });
      // The job and its steps as of one moment: read in two statements, a prune (or a
      // retry) committed between them gave a succeeded job with an output but no results.
      // One REPEATABLE READ transaction on one connection (which PgBouncer's transaction
      // mode keeps together); null when the job is gone, the job alone when it is not final.
      const snapshot = async (): Promise<FinishedJob | JobState | null> => {
        const client = await this.pool.connect();
        let broken = false;
        try {
          await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
          const row = await this.engine.jobOverview(client, id);
          const job = row ? jobStateFromRow(row) : null;
          if (!job || !isFinalStatus(job.status)) {
            await client.query('COMMIT');
            return job;
          }
          const steps = (await this.engine.stepOverview(client, id)).map(stepStateFromRow);
          await client.query('COMMIT');
          const results = new Array<unknown>(job.stepCount);
          for (const step of steps) results[step.stepIndex] = step.result;
          return { ...job, results };
        } catch (error) {
          await client.query('ROLLBACK').catch(() => (broken = true));
          throw error;
        } finally {
          // A connection that could not roll back is closed, not handed to the next caller.
          client.release(broken);
        }
      };
      const state = await waitForFinalState<FinishedJob | JobState>({
        jobId: id,
        // Polled on the job alone (cheap); once that is final, read again with the steps.
        read: async () => {
          const job = await this.getJob(id);
          return job && isFinalStatus(job.status) ? await snapshot() : job;
        },
        // A job retried between the two reads is not final in the snapshot: waited for again.
        isFinal: (job) => 'results' in job,
        hub: this.hub,
        doneChannel: this.engine.doneChannel,
        listenCheck: this.listenCheck,
        signal: stop.signal,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      });
      return state as FinishedJob;
    } finally {
      for (const source of sources) source.removeEventListener('abort', forward);
    }
  }

  /**
   * Creates or replaces the recurring schedule `name`: each due time of `cron` (in
   * `options.timeZone`, default UTC) enqueues `steps` once, however many workers run
   * (README "Recurring schedules"). Returns true when it was created.
   */
  async schedule(
    name: string,
    cron: string,
    steps: readonly StepCall[],
    options: ScheduleOptions = {},
  ): Promise<boolean> {
    this.checkOpen('schedule');
    return await this.schedules.define(this.pool, { ...options, name, cron, steps });
  }

  /** Deletes a schedule (jobs it enqueued stay); true when it existed. */
  async unschedule(name: string): Promise<boolean> {
    this.checkOpen('unschedule');
    return await this.schedules.remove(this.pool, name);
  }

  /** Pauses a schedule; true when it exists. */
  async pauseSchedule(name: string): Promise<boolean> {
    this.checkOpen('pauseSchedule');
    return await this.schedules.pause(this.pool, name);
  }

  /** Resumes a schedule from its next due time after now; true when it exists. */
  async resumeSchedule(name: string): Promise<boolean> {
    this.checkOpen('resumeSchedule');
    return await this.schedules.resume(this.pool, name);
  }

  /** Every schedule with its next and last run (schedule_overview). */
  async listSchedules(): Promise<ScheduleState[]> {
    this.checkOpen('listSchedules');
    return await this.schedules.list(this.pool);
  }

  /** Sets a queue's fleet-wide limits (README "Fleet-wide limits"). */
  async setQueueLimit(queue: string, limit: QueueLimit): Promise<void> {
    this.checkOpen('setQueueLimit');
    await this.schedules.setQueueLimit(this.pool, queue, limit);
  }

  /** Removes a queue's fleet-wide limits; true when it had some. */
  async clearQueueLimit(queue: string): Promise<boolean> {
    this.checkOpen('clearQueueLimit');
    return await this.schedules.clearQueueLimit(this.pool, queue);
  }

  /** Every limited queue with its usage now (queue_limits_overview). */
  async queueLimits(): Promise<QueueLimitState[]> {
    this.checkOpen('queueLimits');
    return await this.schedules.queueLimits(this.pool);
  }

  /**
   * Closes the listener and, when Stepping created it, the pool. Waits in flight reject at
   * once with a SteppingError; later calls are refused with one. Calling it again returns
   * the same promise.
   */
  close(): Promise<void> {
    this.closed ??= this.shutDown();
    return this.closed;
  }

  private async shutDown(): Promise<void> {
    this.closing.abort(
      new SteppingError('stepping: waitForJob: the client was closed (close() was called) while waiting'),
    );
    await this.hub?.close();
    this.hub = undefined;
    this.listenCheck = undefined;
    if (this.ownsPool) await this.pool.end();
  }
}

/** Creates a Stepping client. */
export function createStepping(options: SteppingOptions = {}): Stepping {
  return new Stepping(options);
}
