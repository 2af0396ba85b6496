/** Loads the recurring schedules of `stepping-worker --schedules <file>`. */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import type { ScheduleDefinition } from '../schedules/schedules.js';
import { UsageError } from './args.js';

/**
 * A .json file holds an array of schedule definitions (or `{ "schedules": [...] }`); a
 * module exports `schedules` (or a default export) as such an array. The worker checks
 * each definition when it starts.
 */
export async function loadSchedules(filePath: string): Promise<ScheduleDefinition[]> {
  const file = resolve(filePath);
  if (!existsSync(file)) throw new UsageError(`--schedules: no such file ${file}`);
  let value: unknown;
  if (file.endsWith('.json')) {
    try {
      value = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new UsageError(`--schedules: ${file} is not valid JSON: ${(error as Error).message}`);
    }
  } else {
    const namespace = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    value = namespace.schedules ?? namespace.default;
  }
  if (!Array.isArray(value) && typeof value === 'object' && value !== null)
    value = (value as { schedules?: unknown }).schedules;
  if (!Array.isArray(value))
    throw new UsageError(`--schedules: ${file} must hold an array of schedules (or export one as schedules)`);
  return value as ScheduleDefinition[];
}
