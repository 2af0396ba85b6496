/**
 * A handler's return value as the JSON text stored for the step's result, or a clear
 * permanent error naming the step when it cannot be stored (not JSON, or over the size
 * limit). undefined means "no result".
 */
import { PermanentError } from '../errors.js';
import { MAX_JSON_BYTES } from '../limits.js';

/** The JSON text of `value`, or null for undefined; throws PermanentError when it cannot be stored. */
export function encodeResult(value: unknown, stepName: string): string | null {
  if (value === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new PermanentError(
      `step ${stepName} returned a value that is not JSON (${(error as Error).message}); return a JSON value or nothing`,
    );
  }
  if (text === undefined) {
    throw new PermanentError(
      `step ${stepName} returned a ${typeof value}, which is not JSON; return a JSON value or nothing`,
    );
  }
  // JSON.stringify escapes \u0000 and lone surrogates; jsonb refuses both.
  if (
    /\\u0000|\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i.test(text)
  ) {
    throw new PermanentError(
      `step ${stepName} returned text containing \\u0000 or a lone surrogate, which PostgreSQL jsonb cannot store`,
    );
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_JSON_BYTES) {
    throw new PermanentError(
      `step ${stepName} returned a result of ${bytes} bytes, over the limit of ${MAX_JSON_BYTES} bytes`,
    );
  }
  return text;
}
