/** The package's version, for the instrumentation scope of tracers and meters. */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { packageRoot } from '../paths.js';
import { textOf } from '../text.js';

let version: string | undefined;

/** The version in package.json (read once). */
export function packageVersion(): string {
  if (version === undefined) {
    try {
      version = textOf(
        (JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version?: unknown })
          .version,
      );
    } catch {
      version = '';
    }
  }
  return version;
}
