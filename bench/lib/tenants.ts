/**
 * Tenant databases for the many-databases analysis tools: one migrated template, holding
 * the quiet tenant's queued one-step jobs, and copies of it made as the many-databases
 * scenario makes them (`STRATEGY WAL_LOG`, no function statistics).
 */
import { createStepping } from '../../src/index.js';
import type { DatabaseFactory } from './db.js';

/** A migrated database with `quietJobs` queued one-step `noop` jobs; its name. */
export async function tenantTemplate(
  factory: DatabaseFactory,
  label: string,
  quietJobs: number,
): Promise<string> {
  const template = await factory.create(label, undefined, { trackFunctions: false });
  const stepping = createStepping({ connectionString: factory.url(template) });
  try {
    await stepping.migrate();
    if (quietJobs > 0) {
      await stepping.enqueueMany(
        undefined,
        Array.from({ length: quietJobs }, () => ({ steps: [{ name: 'noop', args: {} }] })),
      );
    }
  } finally {
    await stepping.close();
  }
  return template;
}

/** `n` copies of `template`, one at a time; their names. */
export async function tenantCopies(
  factory: DatabaseFactory,
  template: string,
  label: string,
  n: number,
): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    names.push(await factory.create(label, template, { strategy: 'WAL_LOG', trackFunctions: false }));
  }
  return names;
}
