/**
 * Text that reaches an operator's terminal. Queue names, step names, job keys, error
 * messages and remote servers' answers are data from outside (see the trust model); a
 * terminal obeys the control sequences in them (colours, title changes, cursor moves, a
 * forged line after a line break). Everything printed that carries data goes through
 * `escapeControl` (text) or `jsonForTerminal` (--json output).
 */

/**
 * Characters a terminal may act on instead of showing: C0 controls (incl. ESC, tab, CR,
 * LF), DEL, C1 controls U+0080–U+009F (U+009B is a one-character CSI), the invisible
 * bidirectional marks, embeddings, overrides and isolates (U+061C, U+200E, U+200F,
 * U+202A–U+202E, U+2066–U+2069: "Trojan Source" reordering), and the line and paragraph
 * separators U+2028/U+2029.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same without LF. */
const CONTROL_BUT_NEWLINE =
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** What JSON.stringify leaves raw that CONTROL lists (it escapes U+0000–U+001F itself). */
const JSON_RAW_CONTROL = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `\u001b`: the JSON/JavaScript escape, so escaped text stays valid inside a JSON string. */
function unicodeEscape(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** Options of escapeControl. */
export interface EscapeControlOptions {
  /** Keep line feeds (multi-line text such as a stack trace); every other control is still escaped. */
  keepNewlines?: boolean;
}

/**
 * Replaces every control character (see above) with its `\uXXXX` escape, so the text
 * shows as what it is and cannot drive the terminal: `"\u001b]0;x\u0007"` prints as the
 * 18 visible characters `\u001b]0;x\u0007`. Without `keepNewlines` the result is one line.
 * Idempotent (backslashes are left alone, so escaping escaped text changes nothing; a
 * name that contains the six characters `\u001b` therefore prints like one that contains
 * ESC, which is harmless). Use it on every line that prints data.
 */
export function escapeControl(text: string, options: EscapeControlOptions = {}): string {
  return text.replace(options.keepNewlines ? CONTROL_BUT_NEWLINE : CONTROL, unicodeEscape);
}

/**
 * `JSON.stringify(value, null, space)` for a terminal: still valid JSON that parses back
 * to the same value, but without the controls JSON.stringify leaves raw (DEL, C1 such as
 * U+009B, bidi overrides, U+2028/U+2029), which are written as `\u00XX` escapes.
 */
/**
 * A value read from the database as text: strings as they are, numbers, bigints and
 * booleans printed, null and undefined as '', anything else as its JSON.
 */
export function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  if (value === null || value === undefined) return '';
  return JSON.stringify(value) ?? '';
}

export function jsonForTerminal(value: unknown, space = 2): string {
  // Inside JSON text these characters can only occur within strings, where \uXXXX is valid.
  return (JSON.stringify(value, null, space) ?? 'null').replace(JSON_RAW_CONTROL, unicodeEscape);
}

/**
 * Whole seconds as their two largest non-zero units (`3d 4h`, `2h 5m`, `1m 4s`): enough to
 * read a lag or an age. The one spelling of long durations for the CLI and the dashboard.
 */
export function twoLargestUnits(seconds: number): string {
  const parts: [number, string][] = [
    [Math.floor(seconds / 86_400), 'd'],
    [Math.floor(seconds / 3600) % 24, 'h'],
    [Math.floor(seconds / 60) % 60, 'm'],
    [seconds % 60, 's'],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n}${unit}`)
    .join(' ');
}
