/** The migrated template every test database is cloned from. */
export const TEMPLATE_DB = 'stepping_test_template';
/** Prefix of per-test-file databases (dropped after a green run, kept after a red one). */
export const TEST_DB_PREFIX = 'stepping_t_';
