/** `petbooks dev`: the whole system in one process, as a newcomer would first run it. */
import { describe, expect, test } from "bun:test";
import { runBinary, startDev } from "../src/testing/binary.ts";
import { bufCurl } from "../src/testing/grpc-server.ts";
import { useBinaryCommand } from "./contract/harness.ts";

const running = useBinaryCommand(
  startDev,
  {
    API_KEY: "dev-e2e-api-key-0123456789",
    JWT_SECRET: "dev-e2e-jwt-secret-0123456789-0123456789",
    // Ignored by `dev`, which always uses the in-process bus.
    KAFKA_BROKERS: "127.0.0.1:1",
  },
  undefined,
  "embedded",
);

const json = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

describe("petbooks dev (compiled binary)", () => {
  test("a book created over REST is read over gRPC and its event is logged", async () => {
    await fetch(
      `${running().httpUrl}/auth/register`,
      json({ username: "newcomer", password: "long password" }),
    );
    const token = await (
      await fetch(
        `${running().httpUrl}/auth/token`,
        json({ grant_type: "password", username: "newcomer", password: "long password" }),
      )
    ).json();
    const authorization = `Bearer ${(token as { access_token: string }).access_token}`;
    const created = await fetch(
      `${running().httpUrl}/books`,
      json(
        { title: "Dune", author: "Frank Herbert", published_on: "1965-08-01" },
        { authorization },
      ),
    );
    expect(created.status).toBe(201);
    const book = (await created.json()) as { id: string };

    // The same bearer token as REST (GRPC_AUTH=bearer, the default).
    const viaGrpc = await bufCurl(
      `${running().grpcUrl}/petbooks.v1.BookService/GetBook`,
      ["-d", JSON.stringify({ id: book.id })],
      { authorization },
    );
    expect(viaGrpc.code).toBe(0);
    expect(JSON.parse(viaGrpc.stdout)).toMatchObject({
      id: book.id,
      title: "Dune",
      publishedOn: "1965-08-01",
    });

    let logged: Record<string, unknown> | undefined;
    // Polled until it shows up; only a generous deadline, no speed assumed.
    const deadline = Date.now() + 60_000;
    while (!logged && Date.now() < deadline) {
      logged = running()
        .logs()
        .split("\n")
        .filter((l) => l.includes('"book event"'))
        .map((l) => JSON.parse(l))
        .find((l) => l.book_id === book.id);
      if (!logged) await Bun.sleep(50);
    }
    expect(logged).toMatchObject({
      event_type: "book.created",
      title: "Dune",
      topic: "in-process",
    });
  });

  test("healthcheck reports both servers ready", async () => {
    const ports = {
      PORT: new URL(running().httpUrl).port,
      GRPC_PORT: new URL(running().grpcUrl).port,
    };
    expect((await runBinary(["healthcheck"], ports)).code).toBe(0);
    expect((await runBinary(["healthcheck", "--grpc"], ports)).code).toBe(0);
  });

  test("SIGTERM stops all three cleanly, and healthcheck then fails", async () => {
    expect(await running().stop("SIGTERM")).toBe(0);
    const ports = {
      PORT: new URL(running().httpUrl).port,
      GRPC_PORT: new URL(running().grpcUrl).port,
    };
    for (const args of [["healthcheck"], ["healthcheck", "--grpc"]]) {
      const result = await runBinary(args, ports);
      expect(result.code).toBe(1);
      expect(result.stderr).toStartWith("petbooks: unhealthy: no answer on port");
    }
    expect(running().logs()).toContain('"msg":"stopped"');
    expect(running().logs()).not.toContain("dev-e2e-api-key-0123456789");
    expect(running().logs()).not.toContain("dev-e2e-jwt-secret");
  });
});
