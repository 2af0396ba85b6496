/**
 * HTML built so that data cannot become markup. Queue and step names, keys, errors and
 * results come from producers and handlers (untrusted, see the trust model); every page is
 * written with the `html` template tag, which escapes each interpolated value unless it is
 * already `Html` made by `html` itself. There is no other way to turn a string into Html
 * than `trustedHtml`, used only for constants of this module's callers (CSS, the script).
 */
import { escapeControl } from '../text.js';

let make: (text: string) => Html;

/** Markup that is safe to send as is: made by `html` (values escaped) or `trustedHtml` (constants). */
export class Html {
  readonly #text: string;
  private constructor(text: string) {
    this.#text = text;
  }

  static {
    // The only way to make one, kept inside this module.
    make = (text) => new Html(text);
  }

  /** The markup. */
  get text(): string {
    return this.#text;
  }

  toString(): string {
    return this.#text;
  }
}

/** What `html` accepts between `${}`. */
export type HtmlValue =
  Html | string | number | bigint | boolean | Date | null | undefined | readonly HtmlValue[];

const HTML_SPECIAL = /[&<>"'`]/g;
const ENTITY: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/**
 * Text as HTML character data or a quoted attribute value: `& < > " ' \`` become entities,
 * and control characters (C0 but the line feed, C1, bidi overrides: see src/text.ts) show
 * as `\uXXXX`, as in the CLI, so a name cannot reorder what an operator reads.
 */
export function escapeHtml(text: string): string {
  return escapeControl(text, { keepNewlines: true }).replace(HTML_SPECIAL, (c) => ENTITY[c]!);
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value instanceof Date) return escapeHtml(value.toISOString());
  return escapeHtml(String(value));
}

/**
 * Template tag: `html\`<td>${queue}</td>\`` escapes `queue`. Nested `html` results,
 * arrays of them, numbers and dates are inserted as expected; null, undefined and false
 * insert nothing. Write every attribute value in double quotes.
 */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return make(out);
}

/** Marks a constant of the program's own (never data) as markup. */
export function trustedHtml(text: string): Html {
  return make(text);
}

/** Joins fragments with a separator (itself escaped when a string). */
export function joinHtml(parts: readonly HtmlValue[], separator: HtmlValue = ''): Html {
  return make(parts.map(render).join(render(separator)));
}
