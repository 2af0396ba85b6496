/**
 * Attribute names of Stepping's spans and metrics: OpenTelemetry's messaging semantic
 * conventions where one fits (a job is a message, its queue the destination), `stepping.*`
 * for the rest. Listed in the README (Tracing and metrics).
 */

export const MESSAGING_SYSTEM = 'messaging.system';
export const MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const MESSAGING_DESTINATION = 'messaging.destination.name';
export const MESSAGING_MESSAGE_ID = 'messaging.message.id';
export const MESSAGING_BATCH_COUNT = 'messaging.batch.message_count';

/** Value of messaging.system. */
export const SYSTEM = 'stepping';

export const JOB_ID = 'stepping.job.id';
export const STEP_NAME = 'stepping.step.name';
export const STEP_INDEX = 'stepping.step.index';
export const STEP_ATTEMPT = 'stepping.step.attempt';
export const STEP_PHASE = 'stepping.step.phase';
export const STEP_OUTCOME = 'stepping.step.outcome';
export const DATABASE = 'stepping.database';
export const JOB_STATE = 'stepping.job.state';
