import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { silentLogger } from "../logger.ts";
import { drain } from "./drain.ts";
import { InFlight } from "./in-flight.ts";
import { requestContext } from "./request-context.ts";

/** An app whose /slow route finishes only when the test says so. */
function slowApp() {
  const inFlight = new InFlight();
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let entered = () => {};
  const handlerStarted = new Promise<void>((resolve) => {
    entered = resolve;
  });
  const finished: string[] = [];
  const app = new Elysia()
    .use(requestContext({ logger: silentLogger, maxBodyBytes: () => 1024, inFlight }))
    .get("/slow", async () => {
      entered();
      await released;
      finished.push("slow");
      return "done";
    })
    .get("/fast", () => "ok")
    .get("/boom", () => {
      throw new Error("boom");
    })
    .listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${app.server?.port}`;
  return { app, url, inFlight, release, handlerStarted, finished };
}

describe("in-flight requests", () => {
  test("are counted until their response is done, errors and unknown routes included", async () => {
    const { app, url, inFlight } = slowApp();
    try {
      for (const path of ["/fast", "/boom", "/nowhere"]) await (await fetch(url + path)).text();
      // The count drops after the response is sent, so it may lag the client: wait for it.
      const deadline = Date.now() + 30_000;
      while (inFlight.count !== 0 && Date.now() < deadline) await Bun.sleep(10);
      expect(inFlight.count).toBe(0);
    } finally {
      await app.stop(true);
    }
  });

  test("shutdown waits for a handler whose client has gone", async () => {
    const { app, url, inFlight, release, handlerStarted, finished } = slowApp();
    const server = app.server as Bun.Server<unknown>;
    const client = new AbortController();
    const request = fetch(`${url}/slow`, { signal: client.signal }).catch(() => "aborted");
    await handlerStarted;
    client.abort();
    expect(await request).toBe("aborted");
    expect(inFlight.count).toBe(1);

    let drained = false;
    const stopping = drain(server, inFlight, 5_000, silentLogger).then(() => {
      drained = true;
    });
    await Bun.sleep(100);
    expect(drained).toBe(false);
    release();
    await stopping;
    expect(finished).toEqual(["slow"]);
    expect(inFlight.count).toBe(0);
  });
});
