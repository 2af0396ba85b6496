/**
 * The three roles of an installation and what each may do. migrate revokes everything
 * from PUBLIC, creates these NOLOGIN roles when it may (CREATEROLE or superuser), and
 * grants exactly this; a DBA grants the roles to login roles. Names follow the schema
 * (`<schema>_producer`, ...), so two installations never share a role.
 */
import { quoteIdent } from '../config.js';

/** A role's kind. */
export type RoleKind = 'producer' | 'worker' | 'operator';

/** What a role may use: engine functions (every overload of the name) and relations to read. */
interface RoleGrants {
  functions: readonly string[];
  relations: readonly string[];
  summary: string;
}

/**
 * The grant map. engine_now() and SELECT on settings are needed by the views (they read
 * the engine's clock as the querying role); settings holds only the clock offset.
 */
export const ROLE_GRANTS: Readonly<Record<RoleKind, RoleGrants>> = {
  producer: {
    functions: ['job_enqueue', 'job_enqueue_batch', 'engine_now'],
    relations: ['job_overview', 'step_overview', 'settings'],
    summary: 'enqueue jobs; read job and step state (getJob, steps, waitForJob)',
  },
  worker: {
    functions: [
      'step_claim',
      'step_complete',
      'step_fail',
      'lease_extend',
      'lease_release',
      'next_due_in_ms',
      'engine_now',
    ],
    relations: ['settings'],
    summary: 'claim, report, heartbeat and release units; look up when work is due',
  },
  operator: {
    functions: ['job_cancel', 'job_retry', 'job_prune', 'engine_now'],
    relations: ['job_overview', 'step_overview', 'queue_stats', 'settings'],
    summary: 'read every view; cancel, retry and prune jobs',
  },
};

/** The role name of `kind` for `schema`. */
export function roleName(schema: string, kind: RoleKind): string {
  return `${schema}_${kind}`;
}

/** Every role kind, in the order the README lists them. */
export const ROLE_KINDS: readonly RoleKind[] = ['producer', 'worker', 'operator'];

/**
 * SQL a DBA can run to create the roles and grant them, for installations whose migrating
 * role may not create roles (`stepping roles` prints it).
 */
export function createRolesSql(schema: string): string {
  return ROLE_KINDS.map((kind) => `CREATE ROLE ${quoteIdent(roleName(schema, kind))} NOLOGIN;`).join('\n');
}
