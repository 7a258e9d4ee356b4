/**
 * The harness that starts the compiled binary (src/testing/binary.ts): a port found free can be
 * taken by another process before the binary binds it, and that must not fail a test file.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { freePort, PortTakenError, startServer, tempDataDir } from "../src/testing/binary.ts";
import { CONTRACT_API_KEY, CONTRACT_JWT_SECRET } from "./contract/harness.ts";

// Each start runs the compiled binary on a new embedded database: real work, no speed assumed.
setDefaultTimeout(180_000);

const env = () => ({
  API_KEY: CONTRACT_API_KEY,
  JWT_SECRET: CONTRACT_JWT_SECRET,
  DATA_DIR: tempDataDir(),
  LOG_LEVEL: "info",
});

/** A port held by another listener for the length of `use`. */
async function withTakenPort<T>(use: (port: number) => Promise<T>): Promise<T> {
  const holder = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("holder") });
  try {
    return await use(holder.port as number);
  } finally {
    await holder.stop(true);
  }
}

/** A PortPicker that hands out `first` ports before free ones, and records what it handed out. */
function picker(first: number[]) {
  const picked: number[] = [];
  const pick = async () => {
    const port = first[picked.length] ?? (await freePort());
    picked.push(port);
    return port;
  };
  return { pick, picked };
}

describe("starting the binary on a free port", () => {
  test("a port taken before the binary binds it is replaced by another", async () => {
    await withTakenPort(async (taken) => {
      const { pick, picked } = picker([taken]);
      const server = await startServer(env(), pick);
      try {
        expect(picked).toHaveLength(2);
        expect(picked[0]).toBe(taken);
        expect(server.url).toBe(`http://127.0.0.1:${picked[1]}`);
        expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
        // The other listener kept its port: nothing shared it.
        expect(await (await fetch(`http://127.0.0.1:${taken}/`)).text()).toBe("holder");
      } finally {
        await server.stop();
      }
    });
  });

  test("a port that stays taken fails the start after three attempts, with the reason", async () => {
    await withTakenPort(async (taken) => {
      const { pick, picked } = picker([taken, taken, taken]);
      const start = startServer(env(), pick);
      await expect(start).rejects.toBeInstanceOf(PortTakenError);
      await expect(start).rejects.toThrow(`PORT=${taken}`);
      expect(picked).toEqual([taken, taken, taken]);
    });
  });

  test("a start that fails for another reason is not tried again", async () => {
    const { pick, picked } = picker([]);
    const start = startServer({ DATA_DIR: tempDataDir() }, pick);
    await expect(start).rejects.toThrow("API_KEY is required");
    expect(picked).toHaveLength(1);
  });
});
