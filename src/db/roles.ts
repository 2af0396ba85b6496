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
 * The grant map. engine_now(), engine_now_stable() and SELECT on settings are needed by the views (they read
 * the engine's clock as the querying role); settings holds only the clock offset.
 */
export const ROLE_GRANTS: Readonly<Record<RoleKind, RoleGrants>> = {
  producer: {
    functions: ['job_enqueue', 'job_enqueue_batch', 'engine_now', 'engine_now_stable'],
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
      'worker_register',
      'worker_heartbeat',
      'worker_deregister',
      'maintenance_run',
      'queue_metrics',
      'engine_now',
      'schedule_due',
      'schedule_fire',
      'schedule_next_due_in_ms',
    ],
    relations: ['settings'],
    summary:
      'claim, report, heartbeat and release units; look up when work is due; register itself; run maintenance; fire due schedules; read queue metrics',
  },
  operator: {
    functions: [
      'job_cancel',
      'job_retry',
      'job_retry_many',
      'job_prune',
      'maintenance_run',
      'queue_metrics',
      'engine_now',
      'engine_now_stable',
      'schedule_upsert',
      'schedule_remove',
      'schedule_pause',
      'queue_limit_set',
      'queue_limit_clear',
    ],
    relations: [
      'job_overview',
      'step_overview',
      'queue_stats',
      'worker_overview',
      'live_workers',
      'unrunnable_steps',
      'settings',
      'schedule_overview',
      'queue_limits_overview',
    ],
    summary:
      'read every view; cancel, retry and prune jobs; run maintenance; manage schedules and queue limits',
  },
};

/** The role name of `kind` for `schema`. */
export function roleName(schema: string, kind: RoleKind): string {
  return `${schema}_${kind}`;
}

/** Every role kind, in the order the README lists them. */
export const ROLE_KINDS: readonly RoleKind[] = ['producer', 'worker', 'operator'];

/** Example login roles for the commented GRANT lines. */
const EXAMPLE_LOGIN: Readonly<Record<RoleKind, string>> = {
  producer: 'app',
  worker: 'app_worker',
  operator: 'ops',
};

/**
 * SQL a DBA can run to create the roles, for installations whose migrating role may not
 * create roles (`stepping roles` prints it); the next migrate grants them their share.
 * Commented GRANT lines show how to give the roles to login roles.
 */
export function createRolesSql(schema: string): string {
  const width = Math.max(...ROLE_KINDS.map((kind) => quoteIdent(roleName(schema, kind)).length));
  return [
    `-- The roles of the Stepping installation in schema ${schema}. Run as a role with`,
    '-- CREATEROLE (or a superuser), then run `stepping migrate` again: it grants them their share.',
    ...ROLE_KINDS.map((kind) => {
      const role = quoteIdent(roleName(schema, kind));
      return `CREATE ROLE ${role} NOLOGIN;${' '.repeat(width - role.length)} -- ${ROLE_GRANTS[kind].summary}`;
    }),
    '-- Then give each to the login roles that need it, e.g.:',
    ...ROLE_KINDS.map((kind) => `-- GRANT ${quoteIdent(roleName(schema, kind))} TO ${EXAMPLE_LOGIN[kind]};`),
  ].join('\n');
}
