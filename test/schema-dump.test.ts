/**
 * One schema, however it was reached: a fresh install equals the checked-in description
 * (sql/schema.dump.sql, rewritten by `npm run db:dump` whenever sql/ or migrations/ change)
 * and equals an install upgraded from the previous version of the engine.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import pg from 'pg';

import { DUMP_FILE, schemaDump } from '../scripts/schema-dump.js';
import { migrateSchema } from '../src/db/migrate.js';
import { installPreviousEngine } from './fixtures/previous-engine.js';
import { createTestDatabase } from './support/db.js';
import { setup } from './support/harness.js';

const h = await setup(import.meta.url);

/** The checked-in description without its header comment. */
function checkedIn(): string {
  return readFileSync(DUMP_FILE, 'utf8').replace(/^(--[^\n]*\n)+\n/, '');
}

test('a fresh install is what sql/schema.dump.sql describes (run `npm run db:dump` after changing sql/ or migrations/)', async () => {
  const c = await h.client();
  assert.equal(await schemaDump(c, 'stepping'), checkedIn());
});

test('an install upgraded from the previous version equals a fresh install', async () => {
  const { url, name } = await createTestDatabase('schema_upgrade', { empty: true });
  console.log(`# database ${name}`);
  const c = new pg.Client(url);
  await c.connect();
  try {
    await installPreviousEngine(c, 'stepping');
    await migrateSchema(c, 'stepping');
    assert.equal(await schemaDump(c, 'stepping'), checkedIn());
  } finally {
    await c.end();
  }
});
