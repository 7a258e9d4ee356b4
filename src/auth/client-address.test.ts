import { describe, expect, test } from "bun:test";
import { addressKey, clientAddressResolver, parseTrustedProxies } from "./client-address.ts";

const request = (forwardedFor?: string) =>
  new Request("http://petbooks.test/auth/token", {
    headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor },
  });

describe("parseTrustedProxies", () => {
  test("addresses and CIDR ranges of both families", () => {
    expect(parseTrustedProxies(" 10.0.0.0/8, 127.0.0.1,::1 , fd00::/8,, ")).toEqual({
      proxies: ["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"],
      invalid: [],
    });
  });

  test.each([
    ["a host name", "proxy.internal"],
    ["an IPv4 prefix past 32", "10.0.0.0/33"],
    ["an IPv6 prefix past 128", "::1/129"],
    ["a prefix that is no number", "10.0.0.0/x"],
    ["two prefixes", "10.0.0.0/8/8"],
    ["a port", "10.0.0.1:8080"],
  ])("refuses %s", (_, entry) => {
    expect(parseTrustedProxies(`127.0.0.1, ${entry}`)).toEqual({
      proxies: ["127.0.0.1"],
      invalid: [entry],
    });
  });
});

describe("addressKey", () => {
  test.each([
    ["IPv4 as is", "203.0.113.7", "203.0.113.7"],
    ["IPv4-mapped IPv6 as IPv4", "::ffff:203.0.113.7", "203.0.113.7"],
    ["IPv6 by its /64", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"],
    ["a compressed IPv6 address", "2001:db8::1", "2001:db8:0:0::/64"],
    ["the IPv6 loopback", "::1", "0:0:0:0::/64"],
    ["IPv6 with a zone", "fe80::1%eth0", "fe80:0:0:0::/64"],
    ["IPv6 with an IPv4 tail", "64:ff9b::203.0.113.7", "64:ff9b:0:0::/64"],
  ])("%s", (_, address, key) => {
    expect(addressKey(address)).toBe(key);
  });

  test("one host rotating through its /64 is one client", () => {
    expect(addressKey("2001:db8:1:2::1")).toBe(addressKey("2001:db8:1:2:ffff::9"));
    expect(addressKey("2001:db8:1:2::1")).not.toBe(addressKey("2001:db8:1:3::1"));
  });
});

describe("without TRUSTED_PROXIES", () => {
  const resolve = clientAddressResolver();

  test("the socket peer is the client, whatever X-Forwarded-For says", () => {
    expect(resolve(request("198.51.100.1"), "203.0.113.7")).toBe("203.0.113.7");
    expect(resolve(request(), "::ffff:127.0.0.1")).toBe("127.0.0.1");
  });

  test("a request that came over no socket has no address", () => {
    expect(resolve(request("198.51.100.1"), undefined)).toBeUndefined();
  });
});

describe("with TRUSTED_PROXIES", () => {
  const resolve = clientAddressResolver(["10.0.0.0/8", "::1"]);

  test.each([
    ["the hop our proxy added", "10.0.0.5", "198.51.100.1", "198.51.100.1"],
    // A client can write anything to the left: only what our proxies appended counts.
    ["not what the client wrote", "10.0.0.5", "6.6.6.6, 198.51.100.1", "198.51.100.1"],
    ["through two of our proxies", "10.0.0.5", "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"],
    ["repeated headers, joined", "10.0.0.5", "198.51.100.1 ,10.1.1.1", "198.51.100.1"],
    ["a hop with a port", "10.0.0.5", "198.51.100.1:4711", "198.51.100.1"],
    ["a bracketed IPv6 hop", "::1", "[2001:db8::7]:443", "2001:db8:0:0::/64"],
    ["a mapped peer", "::ffff:10.0.0.5", "198.51.100.1", "198.51.100.1"],
    ["no header: the proxy itself", "10.0.0.5", undefined, "10.0.0.5"],
    ["a hop that is no address: the nearest proxy", "10.0.0.5", "unknown", "10.0.0.5"],
    ["only proxies: the leftmost", "10.0.0.5", "10.0.0.7, 10.0.0.6", "10.0.0.7"],
  ])("%s", (_, peer, forwardedFor, client) => {
    expect(resolve(request(forwardedFor), peer)).toBe(client);
  });

  test("a peer that is not a trusted proxy is the client, header or not", () => {
    expect(resolve(request("198.51.100.1"), "203.0.113.7")).toBe("203.0.113.7");
  });
});
