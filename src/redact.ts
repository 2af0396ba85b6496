/**
 * Connection strings without their secrets. Passwords are found by parsing, in both forms
 * PostgreSQL users write: URLs (`postgres://user:pass@host:5432/db?password=...`, several
 * hosts, IPv6, sockets) and keyword/value strings (`host=x password='a b' dbname=y`).
 *
 * A URL whose password holds an unencoded `/`, `?` or `#` is ambiguous: a URL parser
 * (WHATWG's, and node-postgres through it) ends the host at the first `/` and reads
 * `postgres://app:1234/secret@db/orders` as host `app`, port 1234, database
 * `secret@db/orders`. So whenever an `@` follows the parser's host, the string is read
 * the way that hides the most: the credentials end at the last `@` (the way its author
 * meant it, when the password holds such a character). Masking never shows less than
 * either reading would hide.
 */

/** What replaces a secret. */
export const MASK = '***';

/** Parameters whose values are secrets, in a URL's query or a keyword/value string. */
const SECRET_KEYS = new Set(['password', 'sslpassword']);

/** The parts of a connection URL, as raw (still percent-encoded) text. */
export interface ConnectionUrl {
  /** `postgres`, `postgresql`, `socket`, ... */
  scheme: string;
  /** The user, or null when the URL has no `user@` part (the user may be empty: `:pw@host`). */
  user: string | null;
  /** True when the user part carries a password (`user:password@`), even an empty one. */
  hasPassword: boolean;
  /** The host list: `db`, `h1:5432,h2:5433`, `[::1]:5432`, `%2Fvar%2Frun%2Fpostgresql`, or empty. */
  hosts: string;
  /** The path after the hosts, with its leading `/` (the database name), or empty. */
  path: string;
  /** The query after `?`, or null. */
  query: string | null;
  /**
   * How sure the reading is:
   * - `none`: it is what a URL parser (and so node-postgres) reads;
   * - `password`: the password holds an unencoded `/`, `?` or `#`, so a URL parser
   *   misreads the string (connecting fails or reaches another host); read as meant,
   *   credentials ending at the last `@`. Percent-encoding the password fixes it;
   * - `unclear`: an `@` after the host is in the query only: a query value holding `@`,
   *   or a password holding `?`. Read as the latter; no id can be derived from it.
   */
  ambiguity: 'none' | 'password' | 'unclear';
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/** One host of a host list: a bracketed IPv6 address or a registered name / IPv4 (percent-encoding allowed), then an optional port. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+(?:%[0-9A-Za-z._~%-]+)?\]|[A-Za-z0-9._~%!$&'()*+;=-]*)(?::\d*)?$/;
const QUERY_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** True for a host list a connection URL may carry: `h`, `h:5432`, `h1,h2:5433`, `[::1]:5432`, or empty (the default host). */
export function isValidHostList(text: string): boolean {
  if (text === '') return true;
  return text.split(',').every((host) => host !== '' && HOST.test(host));
}

/** Splits what follows the hosts into path and query. */
function pathAndQuery(rest: string): { path: string; query: string | null } {
  const q = rest.indexOf('?');
  return q < 0 ? { path: rest, query: null } : { path: rest.slice(0, q), query: rest.slice(q + 1) };
}

/** Splits `user:password@hosts/path?query` at the given `@` (or none, at -1). */
function split(scheme: string, rest: string, at: number): ConnectionUrl {
  const userinfo = at < 0 ? null : rest.slice(0, at);
  const after = rest.slice(at + 1);
  const end = after.search(/[/?]/);
  const hosts = end < 0 ? after : after.slice(0, end);
  const colon = userinfo?.indexOf(':') ?? -1;
  return {
    scheme,
    user: userinfo === null ? null : colon < 0 ? userinfo : userinfo.slice(0, colon),
    hasPassword: colon >= 0,
    hosts,
    ambiguity: 'none',
    ...pathAndQuery(end < 0 ? '' : after.slice(end)),
  };
}

/**
 * Parses a connection URL (`scheme://...`) into its parts; null when `text` is not one.
 * The hosts may not be valid (the caller decides); see the module comment for passwords
 * that contain `/`, `?`, `#` or `@`.
 */
export function parseConnectionUrl(text: string): ConnectionUrl | null {
  const scheme = SCHEME.exec(text);
  if (!scheme) return null;
  const name = scheme[0].slice(0, -3);
  const rest = text.slice(scheme[0].length);
  // A URL parser's reading: the authority ends at the first '/', '?' or '#', and the
  // credentials at the authority's last '@'.
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const strict = split(name, rest, authority.lastIndexOf('@'));
  const remainder = authorityEnd < 0 ? '' : rest.slice(authorityEnd);
  const { path } = pathAndQuery(remainder);
  // The reading that hides the most: the credentials end at the last '@'.
  const lenient = split(name, rest, rest.lastIndexOf('@'));
  // Both readings agree (no '@' after the authority), or neither has a password.
  if (!remainder.includes('@') || !lenient.hasPassword) return strict;
  const readable =
    !rest.slice(authority.length).startsWith('#') && isValidHostList(strict.hosts) && !path.includes('@');
  // An '@' only in the query: a query value (or query password) holding '@', or a
  // password holding '?'. No reading is safe to name the database by.
  if (readable) return { ...lenient, ambiguity: 'unclear' };
  // The password holds a '/', '?' or '#'.
  return { ...lenient, ambiguity: 'password' };
}

/** A range [start, end) of text that is secret. */
type Span = [number, number];

/**
 * The secret values in a query that starts at `offset`: each `password=` / `sslpassword=`
 * value, running to the next `&key=` (an unencoded `&` in a password does not end it).
 */
function querySecrets(query: string, offset: number): Span[] {
  const spans: Span[] = [];
  let at = offset;
  let open: Span | null = null;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (open && (eq < 0 || !QUERY_KEY.test(key))) {
      open[1] = at + pair.length; // still the secret value
    } else {
      open = null;
      if (eq >= 0 && SECRET_KEYS.has(safeDecode(key).toLowerCase())) {
        open = [at + eq + 1, at + pair.length];
        spans.push(open);
      }
    }
    at += pair.length + 1;
  }
  return spans;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The secrets of `rest` (a URL after `scheme://`) when its credentials end at the `@` at
 * index `at` (-1: none): the password, or the whole `user:password` when the user runs
 * past a `/`, `?` or `#` (then it is not a user but path or query text), and the
 * query's secret values.
 */
function readingSecrets(rest: string, at: number): Span[] {
  const spans: Span[] = [];
  const colon = rest.indexOf(':');
  if (at >= 0 && colon >= 0 && colon < at) {
    if (/[/?#]/.test(rest.slice(0, colon))) spans.push([0, at]);
    else spans.push([colon + 1, at]);
  }
  const q = rest.indexOf('?', at + 1);
  if (q >= 0) spans.push(...querySecrets(rest.slice(q + 1), q + 1));
  return spans;
}

/**
 * A connection URL with its secrets masked. Both readings count (a URL parser's, where
 * the credentials end at the host's last `@`, and the one where they end at the last
 * `@`): whatever either takes for a secret is hidden.
 */
function maskUrl(text: string): string {
  const scheme = SCHEME.exec(text)![0].length;
  const rest = text.slice(scheme);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const spans = [
    ...readingSecrets(rest, authority.lastIndexOf('@')),
    ...readingSecrets(rest, rest.lastIndexOf('@')),
  ].sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged: Span[] = [];
  for (const span of spans) {
    const last = merged.at(-1);
    if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
    else merged.push([...span]);
  }
  // What is left shown may still carry `password=...` words (a message after the URL).
  let out = text.slice(0, scheme);
  let done = 0;
  for (const [from, to] of merged) {
    out += maskKeywords(rest.slice(done, from)) + MASK;
    done = to;
  }
  return out + maskKeywords(rest.slice(done));
}

/**
 * End of a keyword/value value starting at `from`: a single-quoted value runs to the
 * unescaped closing quote, a bare one to the next whitespace; a backslash escapes the
 * next character in both (libpq's rules).
 */
function keywordValueEnd(text: string, from: number): number {
  const quoted = text[from] === "'";
  let i = quoted ? from + 1 : from;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\\') i += 2;
    else if (quoted && c === "'") return i + 1;
    else if (!quoted && /\s/.test(c)) return i;
    else i += 1;
  }
  return text.length;
}

/** Masks the values of `password=` and `sslpassword=` keywords in text without URLs. */
function maskKeywords(text: string): string {
  const keyword = /(^|[^A-Za-z0-9_])((?:ssl)?password)\s*=\s*/gi;
  let out = '';
  let done = 0;
  for (let m = keyword.exec(text); m; m = keyword.exec(text)) {
    const valueStart = m.index + m[0].length;
    if (valueStart >= text.length) break; // no value (or masked already, past this piece)
    const valueEnd = keywordValueEnd(text, valueStart);
    out += `${text.slice(done, valueStart)}${MASK}`;
    done = valueEnd;
    keyword.lastIndex = Math.max(valueEnd, keyword.lastIndex);
  }
  return out + text.slice(done);
}

/**
 * Masks the passwords of every connection string in `text`: a whole connection string
 * (URL or keyword/value form) or a message that contains some. The user, hosts, ports,
 * database and other parameters stay readable: `postgres://app:***@db:5432/orders`.
 * A URL runs to the end of its line (a password may hold spaces, even `x://`), so with
 * two URLs on one line everything up to the last `@` is masked.
 */
export function maskConnectionString(text: string): string {
  const start = /(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:\/\//g;
  let out = '';
  let done = 0;
  for (let m = start.exec(text); m; m = start.exec(text)) {
    const lineEnd = text.slice(m.index).search(/[\r\n]/);
    const end = lineEnd < 0 ? text.length : m.index + lineEnd;
    out += maskKeywords(text.slice(done, m.index)) + maskUrl(text.slice(m.index, end));
    done = end;
    start.lastIndex = end;
  }
  return out + maskKeywords(text.slice(done));
}
