/** Loads the step definitions a `stepping-worker --steps <module>` serves. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { type AnyStepDefinition, isStepDefinition } from '../steps.js';
import { UsageError } from './args.js';

/**
 * Every step definition the module exports: named exports, the default export, and the
 * members of exported arrays (e.g. `export const steps = [a, b]`). A definition exported
 * twice counts once.
 */
export function collectSteps(namespace: Readonly<Record<string, unknown>>): AnyStepDefinition[] {
  const found = new Set<AnyStepDefinition>();
  for (const value of Object.values(namespace)) {
    const candidates: unknown[] = Array.isArray(value) ? value : [value];
    for (const candidate of candidates) if (isStepDefinition(candidate)) found.add(candidate);
  }
  return [...found];
}

/** Imports the module at `modulePath` (relative to the current directory) and collects its steps. */
export async function loadSteps(modulePath: string): Promise<AnyStepDefinition[]> {
  const file = resolve(modulePath);
  if (!existsSync(file)) throw new UsageError(`--steps: no such file ${file}`);
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ERR_UNKNOWN_FILE_EXTENSION') {
      throw new UsageError(
        `--steps: node cannot import ${file} by itself; for a TypeScript module start the worker under tsx ` +
          `(node --import tsx <path to stepping-worker> --steps ${modulePath}), or compile it to .js`,
      );
    }
    throw error;
  }
  const steps = collectSteps(namespace);
  if (steps.length === 0) {
    throw new UsageError(
      `--steps: ${file} exports no step definitions (export the values made by defineStep, or an array of them)`,
    );
  }
  return steps;
}
