/** Job statuses, defined once for the driver, the worker and the CLI. */

/** Final statuses: the job will not change again (except a retry of `failed`). */
export const FINAL_STATUSES = ['succeeded', 'failed', 'compensated', 'cancelled'] as const;

/** A final status. */
export type FinalStatus = (typeof FINAL_STATUSES)[number];

/** A job's status as shown by job_overview (`compensating`: unfinished, running compensations). */
export type JobStatus = 'pending' | 'running' | 'compensating' | FinalStatus;

/** True for final statuses. */
export function isFinalStatus(status: string | null | undefined): status is FinalStatus {
  return (FINAL_STATUSES as readonly string[]).includes(status ?? '');
}

/** Statuses prune() deletes by default: final and not waiting for a person (failed is kept). */
export const PRUNABLE_STATUSES: readonly FinalStatus[] = ['succeeded', 'compensated', 'cancelled'];
