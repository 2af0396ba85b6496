/** Stepping: durable atomic jobs inside PostgreSQL. */
export type { MigrateOutcome } from './db/migrate.js';
export type { JsonValue } from './enqueue/jsonb-text.js';
export { jsonbTextBytes } from './enqueue/jsonb-text.js';
export type { EnqueueOptions } from './enqueue/serialize.js';
export { MAX_CALL_JSON_BYTES } from './enqueue/serialize.js';
export type { FinalStatus, JobStatus } from './job-status.js';
export { FINAL_STATUSES, isFinalStatus } from './job-status.js';
export * from './limits.js';
export type {
  QueueLimit,
  QueueLimitState,
  ScheduleDefinition,
  ScheduleOptions,
  ScheduleState,
} from './schedules/schedules.js';
export { MAX_BACKFILL } from './schedules/schedules.js';
export type { FinishedJob, JobSpec, JobState, SteppingOptions, StepState } from './stepping.js';
export { createStepping, Stepping } from './stepping.js';
export type {
  AnyStepDefinition,
  BackoffOptions,
  CompensationSpec,
  IsolationLevel,
  RetryLater,
  StepCall,
  StepCallOptions,
  StepContext,
  StepDefinition,
  StepHandler,
  StepOptions,
} from './steps.js';
export { defineStep, isStepDefinition } from './steps.js';
/** @deprecated Use MAX_JSON_BYTES (the same limit, now also applied to compensation args). */
export type {
  DrizzleExecutor,
  KnexExecutor,
  KyselyExecutor,
  PostgresJsExecutor,
  PrismaExecutor,
  Queryable,
  QueryClient,
  TransactionLike,
} from './db/queryable.js';
export {
  ConfigError,
  DuplicateJobError,
  EngineCallTimeoutError,
  EngineInputError,
  EnqueueValidationError,
  InvalidArgumentError,
  InvalidJobStateError,
  JobNotFoundError,
  MigrationRefusedError,
  PermanentError,
  ResponseTooLargeError,
  SchemaNotReadyError,
  SteppingError,
  UnreadableResultError,
  WaitTimeoutError,
} from './errors.js';
export type { HttpDestinationOptions } from './http-destinations.js';
export { HttpDestinationError } from './http-destinations.js';
export type { HttpStepArgs } from './http-step.js';
export { createHttpStep, HttpRedirectError, HttpStatusError, httpStep } from './http-step.js';
export { MAX_JSON_BYTES as MAX_ARGS_BYTES } from './limits.js';
export type { MigrateResult } from './multidb/migrate-many.js';
export { migrateDatabases } from './multidb/migrate-many.js';
export type { DatabaseSource, DatabaseSpec } from './multidb/sources.js';
export { maskConnectionString } from './redact.js';
export type { MeterProviderLike, TelemetryOptions, TracerProviderLike } from './telemetry/types.js';
export { escapeControl, jsonForTerminal } from './text.js';
export type { UnitEvent, WorkerEventMap, WorkerEventName } from './worker/events.js';
export { RetryLaterSignal } from './worker/executor.js';
export type { WorkerConfig, WorkerOptions } from './worker/options.js';
export { WORKER_DEFAULTS } from './worker/options.js';
export { AttemptEndedError } from './worker/transaction-client.js';
export type { DatabaseState } from './worker/worker.js';
export { createWorker, Worker } from './worker/worker.js';
