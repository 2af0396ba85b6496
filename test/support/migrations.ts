/** The versioned table migrations of this checkout (names without extension), in order. */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const MIGRATIONS: readonly string[] = readdirSync(
  fileURLToPath(new URL('../../migrations/', import.meta.url)),
)
  .filter((f) => /\.(sql|js|ts|cjs|mjs)$/.test(f))
  .map((f) => f.replace(/\.[^.]+$/, ''))
  .sort();
