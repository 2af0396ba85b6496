/**
 * undici, loaded at its first use. Only HTTP steps with `denyPrivateAddresses` need it (a
 * dispatcher with its own address lookup), and loading it cost every process that imports
 * the package about 60 ms of CPU at start: each worker, each CLI run, each application that
 * only enqueues.
 */
import { createRequire } from 'node:module';

type Undici = typeof import('undici');

let loaded: Undici | undefined;

/** The undici module (its CommonJS build, the one `import 'undici'` also gives). */
export function undici(): Undici {
  loaded ??= createRequire(import.meta.url)('undici') as Undici;
  return loaded;
}
