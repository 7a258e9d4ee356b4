import { describe, expect, test } from "bun:test";
import { capturingLogger } from "../testing/logger.ts";
import { expectTwoRetries, recordingSleep } from "../testing/sleep.ts";
import { RedisConnection } from "./redis-client.ts";

const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), { code: "ECONNREFUSED" });

/**
 * A stand-in for node-redis's client whose connects fail with `errors` in turn, and whose pings
 * do what `pings` says in turn (answer by default).
 */
function fakeClient(errors: Error[], pings: ("answer" | "never" | "closed")[] = []) {
  const calls: string[] = [];
  const client = {
    isOpen: false,
    async connect() {
      calls.push("connect");
      const error = errors.shift();
      if (error) throw error;
      client.isOpen = true;
    },
    async ping() {
      calls.push("ping");
      const how = pings.shift() ?? "answer";
      if (how === "never") return new Promise(() => {});
      if (how === "closed") {
        client.isOpen = false;
        throw Object.assign(new Error("The client is closed"), { name: "ClientClosedError" });
      }
      return "PONG";
    },
    destroy() {
      calls.push("destroy");
      client.isOpen = false;
    },
  };
  return { client, calls };
}

describe("RedisConnection", () => {
  test("tries again while Redis is out of reach, waiting longer each time", async () => {
    const { client, calls } = fakeClient([refused(), refused()]);
    const { logger, lines } = capturingLogger();
    const { sleep, delays } = recordingSleep();
    await new RedisConnection(client, "cache", logger, 5, sleep).open();
    expect(calls).toEqual(["connect", "connect", "connect", "ping"]);
    expectTwoRetries({ delays, lines }, "connect to Redis (cache)", 200);
  });

  test("a connection whose PING is never answered is dropped and tried again", async () => {
    const { client, calls } = fakeClient([], ["never", "closed"]);
    const { sleep, delays } = recordingSleep();
    await new RedisConnection(client, "cache", capturingLogger().logger, 5, sleep, 20).open();
    expect(calls).toEqual([
      ...["connect", "ping", "destroy"],
      ...["connect", "ping", "destroy"],
      ...["connect", "ping"],
    ]);
    expect(delays).toHaveLength(2);
  });

  test("a Redis that never answers fails the start, instead of hanging it", async () => {
    const { client } = fakeClient([], ["never", "never", "never"]);
    const { sleep } = recordingSleep();
    const connection = new RedisConnection(client, "cache", capturingLogger().logger, 3, sleep, 20);
    await expect(connection.open()).rejects.toThrow("connect and PING: no answer in 20 ms");
  });

  test("an open client is only pinged", async () => {
    const { client, calls } = fakeClient([]);
    client.isOpen = true;
    await new RedisConnection(client, "cache", capturingLogger().logger).open();
    expect(calls).toEqual(["ping"]);
  });

  test("gives up after `attempts`, with the last error", async () => {
    const { client, calls } = fakeClient([refused(), refused(), refused()]);
    const { sleep } = recordingSleep();
    const connection = new RedisConnection(client, "cache", capturingLogger().logger, 2, sleep);
    await expect(connection.open()).rejects.toThrow("ECONNREFUSED");
    expect(calls).toEqual(["connect", "connect"]);
  });

  test("a refusal no retry fixes (a wrong password) fails at once", async () => {
    const wrongPassword = Object.assign(new Error("WRONGPASS invalid username-password pair"), {
      name: "ErrorReply",
    });
    const { client, calls } = fakeClient([wrongPassword]);
    const { sleep, delays } = recordingSleep();
    const connection = new RedisConnection(client, "cache", capturingLogger().logger, 5, sleep);
    await expect(connection.open()).rejects.toThrow("WRONGPASS");
    expect(calls).toEqual(["connect"]);
    expect(delays).toEqual([]);
  });
});
