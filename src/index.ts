/** Stepping: durable atomic jobs inside PostgreSQL. */
export { createStepping, Stepping } from './stepping.js';
export type { SteppingOptions, JobSpec, JobState, FinishedJob, StepState } from './stepping.js';
export { FINAL_STATUSES, isFinalStatus } from './job-status.js';
export type { JobStatus, FinalStatus } from './job-status.js';
export type { MigrateOutcome } from './db/migrate.js';
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
export type {
  QueueLimit,
  QueueLimitState,
  ScheduleDefinition,
  ScheduleOptions,
  ScheduleState,
} from './schedules/schedules.js';
export { MAX_BACKFILL } from './schedules/schedules.js';
export { MAX_CALL_JSON_BYTES } from './enqueue/serialize.js';
export { jsonbTextBytes } from './enqueue/jsonb-text.js';
export type { JsonValue } from './enqueue/jsonb-text.js';
export * from './limits.js';
/** @deprecated Use MAX_JSON_BYTES (the same limit, now also applied to compensation args). */
export { MAX_JSON_BYTES as MAX_ARGS_BYTES } from './limits.js';
export type {
  TransactionLike,
  Queryable,
  QueryClient,
  KyselyExecutor,
  KnexExecutor,
  PostgresJsExecutor,
  PrismaExecutor,
  DrizzleExecutor,
} from './db/queryable.js';
export { createWorker, Worker } from './worker/worker.js';
export type { WorkerOptions, WorkerConfig } from './worker/options.js';
export { WORKER_DEFAULTS } from './worker/options.js';
export type { WorkerEventMap, WorkerEventName, UnitEvent } from './worker/events.js';
export { AttemptEndedError, RetryLaterSignal } from './worker/executor.js';
export {
  SteppingError,
  EnqueueValidationError,
  ConfigError,
  DuplicateJobError,
  JobNotFoundError,
  InvalidJobStateError,
  InvalidArgumentError,
  MigrationRefusedError,
  EngineInputError,
  SchemaNotReadyError,
  WaitTimeoutError,
  PermanentError,
} from './errors.js';
export { httpStep, HttpRedirectError, HttpStatusError } from './http-step.js';
export { escapeControl, jsonForTerminal } from './text.js';
export { maskConnectionString } from './redact.js';
export type { HttpStepArgs } from './http-step.js';
export { migrateDatabases } from './multidb/migrate-many.js';
export type { MigrateResult } from './multidb/migrate-many.js';
export type { DatabaseSource, DatabaseSpec } from './multidb/sources.js';
export type { DatabaseState } from './worker/worker.js';
export type { MeterProviderLike, TelemetryOptions, TracerProviderLike } from './telemetry/types.js';
