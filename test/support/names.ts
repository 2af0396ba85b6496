/**
 * Database names of one `npm test` run. The run id (set by test/run.ts) keeps runs that
 * share a server (several checkouts, CI) from dropping each other's databases.
 */
import { randomBytes } from 'node:crypto';

/** This run's id: inherited by the test processes from the runner. */
export const TEST_RUN_ID = (process.env.STEPPING_TEST_RUN ??= randomBytes(3).toString('hex'));
/** The migrated template every test database of this run is cloned from. */
export const TEMPLATE_DB = `stepping_tpl_${TEST_RUN_ID}`;
/** Prefix of this run's per-test-file databases (dropped after a green run, kept after a red one). */
export const TEST_DB_PREFIX = `stepping_t_${TEST_RUN_ID}_`;
