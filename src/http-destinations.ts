/**
 * Where an HTTP step may send requests. Whoever can enqueue names the URL, so a worker
 * that can reach internal services, localhost or a cloud metadata address would call them
 * on a producer's behalf (server-side request forgery). A policy limits the host names a
 * request may name and refuses addresses that are not public; the addresses are checked
 * when connecting, on what the name resolved to for that very connection, so a name that
 * resolves to a public address once and to 127.0.0.1 next (DNS rebinding) is refused too.
 */
import dns from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { domainToASCII } from 'node:url';

import type { Agent } from 'undici';

import { InvalidArgumentError } from './errors.js';
import { undici } from './lazy-undici.js';

/** Options of createHttpStep: where its requests may go. */
export interface HttpDestinationOptions {
  /**
   * Host names a request may name: exact (`api.example.com`, case-insensitive) or every
   * subdomain of one (`*.example.com`, not example.com itself); an IP address is a name
   * too. On any port. Any other host fails the step permanently. Default: any host.
   */
  allowHosts?: readonly string[];
  /**
   * Refuse every address that is not public: loopback, private networks, link-local
   * (cloud metadata at 169.254.169.254), carrier-grade NAT, unspecified, multicast,
   * documentation and benchmarking ranges, IPv4 embedded in IPv6 (compatible, mapped,
   * NAT64, 6to4, Teredo), and any IPv6 address outside global unicast (2000::/3). Default false.
   */
  denyPrivateAddresses?: boolean;
}

/** A request to a destination the policy refuses (a permanent failure of the step). */
export class HttpDestinationError extends Error {
  override name = 'HttpDestinationError';
  /** Node's dns/net layers pass an error on by its code. */
  readonly code = 'ERR_STEPPING_DESTINATION';
}

/**
 * Addresses that are not public (IANA special-purpose registries), one list per family:
 * a BlockList checks an IPv4 address against its IPv6 rules too (as ::ffff:a.b.c.d), so
 * the IPv4-mapped range below would refuse every IPv4 address.
 */
function nonPublicAddresses(): { ipv4: BlockList; ipv6: BlockList } {
  const list = new BlockList();
  for (const [net, prefix] of [
    ['0.0.0.0', 8], // "this network"
    ['10.0.0.0', 8],
    ['100.64.0.0', 10], // carrier-grade NAT
    ['127.0.0.0', 8],
    ['169.254.0.0', 16], // link-local: cloud metadata services
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.0.2.0', 24],
    ['192.88.99.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['198.51.100.0', 24],
    ['203.0.113.0', 24],
    ['224.0.0.0', 4], // multicast
    ['240.0.0.0', 4], // reserved, broadcast
  ] as const) {
    list.addSubnet(net, prefix, 'ipv4');
  }
  const v6 = new BlockList();
  for (const [net, prefix] of [
    // Only 2000::/3 is global unicast (IANA IPv6 address space registry). Everything
    // outside it is refused whole, so a range nobody listed cannot slip through: the
    // unspecified address and loopback, IPv4-compatible (::/96, deprecated: [::127.0.0.1]
    // is ::7f00:1), IPv4-mapped and -translated (::ffff:0:0/96, ::ffff:0:0:0/96), NAT64
    // (64:ff9b::/96, 64:ff9b:1::/48), discard-only (100::/64), the dummy prefix
    // (100:0:0:1::/64), segment-routing SIDs (5f00::/16), unique local (fc00::/7),
    // link-local (fe80::/10), site-local (fec0::/10) and multicast (ff00::/8).
    ['::', 3],
    ['4000::', 2],
    ['8000::', 1],
    // Inside 2000::/3, the special-purpose ranges that are not globally reachable or embed
    // an IPv4 address (refused whole rather than decoded: the IPv4 address inside may be
    // any of the above).
    ['2001::', 23], // IETF protocol assignments: Teredo (2001::/32, IPv4 inside), benchmarking, ORCHID
    ['2001:db8::', 32], // documentation
    ['2002::', 16], // 6to4: IPv4 inside
    ['3fff::', 20], // documentation (RFC 9637)
  ] as const) {
    v6.addSubnet(net, prefix, 'ipv6');
  }
  return { ipv4: list, ipv6: v6 };
}

const NON_PUBLIC = nonPublicAddresses();

/** True when `address` (an IP) is not a public address. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return family === 4 ? NON_PUBLIC.ipv4.check(address, 'ipv4') : NON_PUBLIC.ipv6.check(address, 'ipv6');
}

/** A host pattern: a lower-cased name, or `*.` and a suffix. */
const HOST_PATTERN = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** A request's checks before and while it connects. */
export class HttpDestinationPolicy {
  private readonly exact = new Set<string>();
  private readonly suffixes: string[] = [];
  private readonly anyHost: boolean;
  private readonly denyPrivate: boolean;
  /** Connects through a lookup that refuses non-public addresses (null: fetch's own). */
  readonly dispatcher: Agent | null;

  constructor(options: HttpDestinationOptions) {
    if (typeof options !== 'object' || options === null)
      throw new InvalidArgumentError('createHttpStep takes an options object');
    for (const key of Object.keys(options)) {
      if (key !== 'allowHosts' && key !== 'denyPrivateAddresses')
        throw new InvalidArgumentError(
          `unknown createHttpStep option ${JSON.stringify(key.slice(0, 40))} (known: allowHosts, denyPrivateAddresses)`,
        );
    }
    const { allowHosts, denyPrivateAddresses } = options;
    if (denyPrivateAddresses !== undefined && typeof denyPrivateAddresses !== 'boolean')
      throw new InvalidArgumentError('denyPrivateAddresses must be a boolean');
    this.denyPrivate = denyPrivateAddresses ?? false;
    if (allowHosts !== undefined && !Array.isArray(allowHosts))
      throw new InvalidArgumentError('allowHosts must be an array of host names');
    this.anyHost = allowHosts === undefined;
    for (const entry of allowHosts ?? []) {
      if (typeof entry !== 'string') throw new InvalidArgumentError('allowHosts holds host names (strings)');
      // As URLs spell it: an internationalised name in punycode (bücher.example → xn--bcher-kva.example).
      const wildcard = entry.startsWith('*.');
      const name = normalHost(wildcard ? entry.slice(2) : entry);
      const ascii = isIP(name) !== 0 ? name : domainToASCII(name);
      const host = `${wildcard ? '*.' : ''}${ascii}`;
      if (isIP(host) !== 0) {
        this.exact.add(host);
      } else if (host.length > 253 || !HOST_PATTERN.test(host)) {
        throw new InvalidArgumentError(
          `allowHosts: ${JSON.stringify(entry.slice(0, 100))} is not a host name, an IP address or *.domain`,
        );
      } else if (host.startsWith('*.')) {
        this.suffixes.push(host.slice(1));
      } else {
        this.exact.add(host);
      }
    }
    this.dispatcher = this.denyPrivate
      ? new (undici().Agent)({ connect: { lookup: publicOnlyLookup } })
      : null;
  }

  /** Throws HttpDestinationError when a request to `url` may not be sent. */
  check(url: URL): void {
    const host = normalHost(url.hostname);
    if (!this.anyHost && !this.exact.has(host) && !this.suffixes.some((s) => host.endsWith(s)))
      throw new HttpDestinationError(`host ${host.slice(0, 253)} is not in allowHosts`);
    // An address in the URL is never looked up: checked here.
    if (this.denyPrivate && isNonPublicAddress(host))
      throw new HttpDestinationError(`${host} is not a public address (denyPrivateAddresses)`);
  }
}

/** A URL's or a pattern's host as compared: lower case, no brackets, no trailing dot. */
function normalHost(host: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return bare.toLowerCase().replace(/\.$/, '');
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/**
 * dns.lookup for connections of a denyPrivateAddresses policy: every address the name
 * resolves to must be public (one that is not refuses the whole name: the connection
 * may try any of them). The addresses stay out of the message (errors are read by
 * producers).
 */
function publicOnlyLookup(hostname: string, options: dns.LookupOptions, callback: LookupCallback): void {
  dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) {
      callback(error, []);
      return;
    }
    if (addresses.length === 0 || addresses.some((a) => isNonPublicAddress(a.address))) {
      callback(
        new HttpDestinationError(
          `${hostname.slice(0, 253)} resolves to an address that is not public (denyPrivateAddresses)`,
        ),
        [],
      );
      return;
    }
    if (options.all) callback(null, addresses);
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  });
}
