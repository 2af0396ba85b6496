/** Stepping: durable atomic jobs inside PostgreSQL. */
export { createStepping, Stepping, FINAL_STATUSES } from './stepping.js';
export type { SteppingOptions, JobSpec, JobState, JobStatus, StepState } from './stepping.js';
export { defineStep, isStepDefinition } from './steps.js';
export type {
  AnyStepDefinition,
  BackoffOptions,
  CompensationSpec,
  RetryLater,
  StepCall,
  StepCallOptions,
  StepContext,
  StepDefinition,
  StepHandler,
  StepOptions,
} from './steps.js';
export type { EnqueueOptions } from './enqueue/serialize.js';
export { MAX_CALL_JSON_BYTES } from './enqueue/serialize.js';
export { jsonbTextBytes } from './enqueue/jsonb-text.js';
export type { JsonValue } from './enqueue/jsonb-text.js';
export {
  MAX_STEPS,
  MAX_NAME_LENGTH,
  MAX_QUEUE_LENGTH,
  MAX_KEY_LENGTH,
  MAX_JSON_BYTES,
  MAX_JSON_DEPTH,
  MIN_PRIORITY,
  MAX_PRIORITY,
  MAX_INT,
  MIN_DATE,
  MAX_DATE,
  MAX_DELAY_MS,
} from './limits.js';
/** @deprecated Use MAX_JSON_BYTES (the same limit, now also applied to compensation args). */
export { MAX_JSON_BYTES as MAX_ARGS_BYTES } from './limits.js';
export type { TransactionLike, Queryable, KyselyExecutor } from './db/queryable.js';
export { createWorker, Worker } from './worker/worker.js';
export type { WorkerOptions, WorkerConfig } from './worker/options.js';
export { WORKER_DEFAULTS } from './worker/options.js';
export type { WorkerEventMap, WorkerEventName, UnitEvent } from './worker/events.js';
export { RetryLaterSignal } from './worker/runner.js';
export {
  SteppingError,
  EnqueueValidationError,
  ConfigError,
  DuplicateJobError,
  JobNotFoundError,
  InvalidJobStateError,
  EngineInputError,
  SchemaNotReadyError,
  WaitTimeoutError,
  PermanentError,
} from './errors.js';
export { httpStep, HttpStatusError } from './http-step.js';
export type { HttpStepArgs } from './http-step.js';
export { migrateDatabases } from './multidb/migrate-many.js';
export type { MigrateResult } from './multidb/migrate-many.js';
export type { DatabaseSource, DatabaseSpec } from './multidb/sources.js';
export type { DatabaseState } from './worker/worker.js';
