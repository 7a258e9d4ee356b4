/**
 * The client address a request is counted under (rate-limit.ts). By default it is the socket's
 * peer and nothing else: any client can write an X-Forwarded-For header. Only when the peer is
 * one of TRUSTED_PROXIES (addresses or CIDR ranges) is X-Forwarded-For read, from the right, as
 * those proxies append to it: the first address that is not itself a trusted proxy is the client;
 * whatever lies to its left the client wrote itself. IPv6 clients are counted per /64 network,
 * since one host is usually given a whole /64 and could otherwise rotate through it.
 */
import { BlockList, isIP } from "node:net";

export const TRUSTED_PROXIES_FORMAT =
  "a comma-separated list of IP addresses or CIDR ranges (e.g. 10.0.0.0/8, ::1)";

/** The entries of a TRUSTED_PROXIES value, or the ones that are not an address or a range. */
export function parseTrustedProxies(text: string): { proxies: string[]; invalid: string[] } {
  const proxies: string[] = [];
  const invalid: string[] = [];
  for (const entry of text.split(",").map((e) => e.trim())) {
    if (entry === "") continue;
    const [address = "", prefix, extra] = entry.split("/");
    const family = isIP(address);
    const bits = family === 4 ? 32 : 128;
    const validPrefix =
      prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
    if (family === 0 || !validPrefix || extra !== undefined) invalid.push(entry);
    else proxies.push(entry);
  }
  return { proxies, invalid };
}

/** The IPv4 address inside an IPv4-mapped IPv6 one (`::ffff:1.2.3.4`), or the address as is. */
function unmapped(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/** The eight 16-bit groups of a valid IPv6 address. */
function ipv6Groups(address: string): number[] {
  let text = address.split("%")[0] as string;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
}

/** The key a client address is counted under: IPv4 as is, IPv6 as its /64 network. */
export function addressKey(address: string): string {
  const plain = unmapped(address);
  if (isIP(plain) !== 6) return plain;
  const network = ipv6Groups(plain)
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":");
  return `${network}::/64`;
}

/** One X-Forwarded-For hop as an address: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80` or `::1`. */
function forwardedAddress(hop: string): string | undefined {
  const text = hop.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  const withPort = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(text);
  const address = bracketed?.[1] ?? withPort?.[1] ?? text;
  return isIP(address) ? unmapped(address) : undefined;
}

export type ClientAddress = (request: Request, peer: string | undefined) => string | undefined;

/**
 * How to find a request's client address, given the socket peer's (undefined for a request
 * that came over no socket, such as an in-process call in a test).
 */
export function clientAddressResolver(trustedProxies: readonly string[] = []): ClientAddress {
  if (trustedProxies.length === 0) return (_, peer) => (peer ? addressKey(peer) : undefined);
  const trusted = new BlockList();
  for (const entry of trustedProxies) {
    const [address = "", prefix] = entry.split("/");
    const family = isIP(address) === 4 ? "ipv4" : "ipv6";
    if (prefix === undefined) trusted.addAddress(address, family);
    else trusted.addSubnet(address, Number(prefix), family);
  }
  const isTrusted = (address: string) =>
    trusted.check(address, isIP(address) === 4 ? "ipv4" : "ipv6");
  return (request, peer) => {
    if (!peer) return undefined;
    let client = unmapped(peer);
    if (!isTrusted(client)) return addressKey(client);
    const hops = (request.headers.get("x-forwarded-for") ?? "").split(",").reverse();
    for (const hop of hops) {
      const address = forwardedAddress(hop);
      // A hop that is no address: the nearest trusted proxy is all that is known.
      if (!address) break;
      client = address;
      if (!isTrusted(address)) break;
    }
    return addressKey(client);
  };
}
