/** Base class of every error Stepping throws on purpose. */
export class SteppingError extends Error {
  override name = 'SteppingError';
}

/** Enqueue input was rejected before any SQL ran; the caller's transaction is still usable. */
export class EnqueueValidationError extends SteppingError {
  override name = 'EnqueueValidationError';
}

/** A call got an argument it cannot use (e.g. `ctx.retryLater(NaN)`); the message names it. */
export class InvalidArgumentError extends SteppingError {
  override name = 'InvalidArgumentError';
}

/** Configuration passed to createStepping/createWorker is invalid. */
export class ConfigError extends SteppingError {
  override name = 'ConfigError';
}

/**
 * The caller's client returned enqueue's result in a shape the driver cannot read (a
 * column missing or renamed by a result hook the driver does not know, a value of the
 * wrong type). The jobs may have been inserted in that client's transaction: roll it back.
 */
export class UnreadableResultError extends SteppingError {
  override name = 'UnreadableResultError';
}

/** An unfinished job already holds the key (onDuplicate: 'error'), or a retry would collide on it. SQLSTATE SP002. */
export class DuplicateJobError extends SteppingError {
  override name = 'DuplicateJobError';
  /** The unfinished job holding the key, when known. */
  readonly existingJobId: string | undefined;
  constructor(message: string, existingJobId?: string, options?: ErrorOptions) {
    super(message, options);
    this.existingJobId = existingJobId;
  }
}

/** No job with that id. SQLSTATE SP003. */
export class JobNotFoundError extends SteppingError {
  override name = 'JobNotFoundError';
}

/** The job's status does not allow the operation (retrying a succeeded job, cancelling a finished one). SQLSTATE SP004. */
export class InvalidJobStateError extends SteppingError {
  override name = 'InvalidJobStateError';
}

/** The engine rejected input (SQLSTATE SP001), e.g. a malformed call from outside the driver. */
export class EngineInputError extends SteppingError {
  override name = 'EngineInputError';
}

/** The schema is missing or older than this driver: run `stepping migrate`. */
export class SchemaNotReadyError extends SteppingError {
  override name = 'SchemaNotReadyError';
}

/**
 * migrate refused to touch the database: the schema (or an object in it) belongs to
 * another role, which could otherwise run code as the migrating role.
 */
export class MigrationRefusedError extends SteppingError {
  override name = 'MigrationRefusedError';
}

/** waitForJob gave up before the job finished. */
export class WaitTimeoutError extends SteppingError {
  override name = 'WaitTimeoutError';
}

/**
 * Thrown by a handler to end the job's forward path at once, without further retries.
 * The job then compensates (if it has compensations) or ends `failed`.
 */
export class PermanentError extends SteppingError {
  override name = 'PermanentError';
}

/**
 * Many-databases mode: an engine call (claim, report, heartbeat, registry, ...) did not
 * answer within callTimeoutMs. Its connection was closed, and the database is served
 * again only after a backoff, like one that is down.
 */
export class EngineCallTimeoutError extends SteppingError {
  override name = 'EngineCallTimeoutError';
}

/**
 * Many-databases mode: a database sent a message longer than the longest string Node.js
 * can make (node-postgres would have ended the process making it one). Its connection was
 * closed; the call failed like one whose connection was lost.
 */
export class ResponseTooLargeError extends SteppingError {
  override name = 'ResponseTooLargeError';
}

/** Maps an engine SQLSTATE (class SP) to its typed error; anything else is returned unchanged. */
export function translateDatabaseError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'SP001':
      return new EngineInputError(message, { cause: error });
    case 'SP002':
      return new DuplicateJobError(message, undefined, { cause: error });
    case 'SP003':
      return new JobNotFoundError(message, { cause: error });
    case 'SP004':
      return new InvalidJobStateError(message, { cause: error });
    case '3F000':
    case '42883':
    case '42P01':
      return new SchemaNotReadyError(`${message} (has \`stepping migrate\` been run on this database?)`, {
        cause: error,
      });
    default:
      return error;
  }
}
