/**
 * `--databases <file|url,...>`: a comma-separated list of connection strings, or a file
 * with one database per line (`url` or `id=url`; blank lines and # comments skipped).
 */
import { readFileSync } from 'node:fs';

import type { DatabaseSpec } from '../multidb/sources.js';
import { maskConnectionString } from '../redact.js';
import { UsageError } from './args.js';

/** A comma that starts the next item: the one before `url` or `id=url` (a multi-host URL keeps its own commas). */
const ITEM_SEPARATOR = /,(?=\s*(?:[^\s,=/]+=)?[A-Za-z][A-Za-z0-9+.-]*:\/\/)/;

function spec(text: string): DatabaseSpec {
  const eq = text.indexOf('=');
  const scheme = text.indexOf('://');
  // "id=postgres://..." names the database; an "=" inside the URL's query does not, nor
  // does one of a keyword/value string (left whole, so resolveDatabase refuses it by name).
  if (eq > 0 && eq < scheme)
    return { id: text.slice(0, eq).trim(), connectionString: text.slice(eq + 1).trim() };
  return text.trim();
}

/** Parses the option's value into database specs. */
export function parseDatabasesArg(value: string): DatabaseSpec[] {
  let items: string[];
  if (value.includes('://')) {
    items = value.split(ITEM_SEPARATOR);
  } else {
    let text: string;
    try {
      text = readFileSync(value, 'utf8');
    } catch (error) {
      // The value may be a mistyped connection string; fs quotes it in its message.
      throw new UsageError(
        maskConnectionString(
          `--databases ${value}: not a URL list and not a readable file (${(error as Error).message})`,
        ),
      );
    }
    items = text.split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
  }
  const specs = items
    .map((item) => item.trim())
    .filter(Boolean)
    .map(spec);
  if (specs.length === 0)
    throw new UsageError(`--databases ${maskConnectionString(value)}: no databases listed`);
  return specs;
}
