/**
 * Finds the positional parameters (`$1`, `$2`, ...) of a PostgreSQL statement, so that
 * clients whose raw-SQL API takes another placeholder syntax (Knex's `?`, Drizzle's
 * `sql` chunks) can run Stepping's statements. Placeholders inside string literals,
 * quoted identifiers, dollar-quoted bodies and comments are text, not parameters.
 */

/** A statement split at its placeholders: `text = chunks[0] $params[0] chunks[1] ... chunks[n]`. */
export interface SplitStatement {
  /** The text around the placeholders; always one more than `params`. */
  chunks: string[];
  /** The 1-based parameter number of each placeholder, in order of appearance (may repeat). */
  params: number[];
}

const IDENT_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;
const DOLLAR_TAG = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/** Index just past the quoted run starting at `start` (a `'` or `"`); doubled quotes are escapes. */
function skipQuoted(text: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text[i]!;
    if (backslashEscapes && c === '\\') i += 2;
    else if (c === quote && text[i + 1] === quote) i += 2;
    else if (c === quote) return i + 1;
    else i++;
  }
  return i;
}

/** Index just past the block comment starting at `start`; PostgreSQL's block comments nest. */
function skipBlockComment(text: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < text.length) {
    if (text.startsWith('/*', i)) {
      depth++;
      i += 2;
    } else if (text.startsWith('*/', i)) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return i;
}

/** Splits `text` at its `$n` placeholders (see SplitStatement). */
export function splitPlaceholders(text: string): SplitStatement {
  const chunks: string[] = [];
  const params: number[] = [];
  let chunkStart = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const previous = i > 0 ? text[i - 1]! : '';
    if (c === "'") {
      // E'...' strings take backslash escapes; standard strings do not.
      i = skipQuoted(text, i, "'", previous === 'E' || previous === 'e');
    } else if (c === '"') {
      i = skipQuoted(text, i, '"', false);
    } else if (c === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end + 1;
    } else if (c === '/' && text[i + 1] === '*') {
      i = skipBlockComment(text, i);
    } else if (c === '$' && !IDENT_CHAR.test(previous)) {
      const digits = /^\$(\d+)/.exec(text.slice(i));
      if (digits) {
        chunks.push(text.slice(chunkStart, i));
        params.push(Number(digits[1]));
        i += digits[0].length;
        chunkStart = i;
        continue;
      }
      const tag = DOLLAR_TAG.exec(text.slice(i));
      if (tag) {
        const end = text.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? text.length : end + tag[0].length;
      } else i++;
    } else i++;
  }
  chunks.push(text.slice(chunkStart));
  return { chunks, params };
}
