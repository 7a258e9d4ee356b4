import { afterEach, describe, expect, test } from "bun:test";
import { TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { checkHttp, localUrl } from "./healthcheck.ts";

describe("localUrl", () => {
  test.each([
    ["0.0.0.0", "http://127.0.0.1:3000"],
    ["::", "http://[::1]:3000"],
    ["127.0.0.2", "http://127.0.0.2:3000"],
    ["::1", "http://[::1]:3000"],
    ["localhost", "http://localhost:3000"],
  ])("HOST=%s is asked at %s", (host, url) => {
    expect(localUrl(host, 3000)).toBe(url);
  });
});

describe("checkHttp", () => {
  let server: ReturnType<typeof Bun.serve> | undefined;
  afterEach(() => server?.stop(true), TEARDOWN_TIMEOUT_MS);

  test("asks the address serve listens on, not 127.0.0.1 whatever HOST is", async () => {
    // Only 127.0.0.2: nothing answers this port on 127.0.0.1.
    server = Bun.serve({
      hostname: "127.0.0.2",
      port: 0,
      fetch: (req) =>
        new Response(null, { status: new URL(req.url).pathname === "/readyz" ? 200 : 404 }),
    });
    const port = server.port as number;
    expect(await checkHttp({ host: "127.0.0.2", port })).toBeUndefined();
    expect(await checkHttp({ host: "0.0.0.0", port })).toStartWith(
      `no answer on port ${port} (http://127.0.0.1:${port}):`,
    );
  });

  test("a server that is up but not ready is unhealthy", async () => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Response(null, { status: 503 }),
    });
    expect(await checkHttp({ host: "0.0.0.0", port: server.port as number })).toBe(
      "readyz answered 503",
    );
  });
});
