import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { silentLogger } from "../logger.ts";
import { startTestGrpcServer, type TestGrpcServer } from "../testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";
import { until } from "../testing/until.ts";
import { dualProtocolListener } from "./listener.ts";
import { GRPC_NEEDS_HTTP2 } from "./server.ts";

let server: TestGrpcServer;
beforeAll(async () => {
  server = await startTestGrpcServer();
}, SETUP_TIMEOUT_MS);
afterAll(() => server?.close(1000), TEARDOWN_TIMEOUT_MS);

describe("one port for HTTP/2 and HTTP/1.1", () => {
  test.each([
    ["HTTP/2 (gRPC)", () => createGrpcTransport({ baseUrl: server.url })],
    [
      "HTTP/1.1 (Connect)",
      () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ],
    ["HTTP/2 (Connect)", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
  ])("answers over %s", async (_, transport) => {
    const answer = await createClient(Health, transport()).check({});
    expect(answer.status).toBe(1); // SERVING
  });

  test("gRPC itself over HTTP/1.1 is refused with 505, not answered without its status", async () => {
    const { statusCode, body } = await new Promise<{ statusCode?: number; body: string }>(
      (resolve, reject) => {
        const req = http.request(
          `${server.url}/grpc.health.v1.Health/Check`,
          { method: "POST", headers: { "content-type": "application/grpc", te: "trailers" } },
          (res) => {
            let body = "";
            res.on("data", (chunk) => {
              body += chunk;
            });
            res.on("end", () => resolve({ statusCode: res.statusCode, body }));
          },
        );
        req.on("error", reject);
        req.end(new Uint8Array(5));
      },
    );
    expect(statusCode).toBe(505);
    expect(body).toBe(GRPC_NEEDS_HTTP2);
  });

  test("a connection that never says which it speaks does not hold up shutdown", async () => {
    const other = await startTestGrpcServer();
    const silent = net.connect(other.port, "127.0.0.1");
    await new Promise<void>((resolve) => silent.once("connect", () => resolve()));
    const closed = new Promise<void>((resolve) => silent.once("close", () => resolve()));
    // Resolves only once every connection is gone; the test's timeout bounds it.
    await other.close(1000);
    await closed;
  });

  test("an HTTP/1.1 connection that stops mid-request is closed; a quiet call in flight is not", async () => {
    const h1 = http.createServer((req, res) => {
      // A stream that says nothing after its headers, as a health Watch between two changes.
      res.writeHead(200);
      res.write("start\n");
      req.resume();
    });
    const listener = dualProtocolListener(http2.createServer(), h1, silentLogger, {
      http1IdleTimeoutMs: 500,
    });
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", () => resolve()));
    const { port } = listener.address() as net.AddressInfo;
    const open = (request: string) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.on("error", () => {});
      let received = 0;
      socket.on("data", (chunk) => {
        received += chunk.length;
      });
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      socket.write(request);
      return { socket, closed, received: () => received };
    };
    try {
      // Slowloris: part of a request, then nothing. Bun's node:http has no headers timeout here.
      const streaming = open("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await until("the condition", () => streaming.received() > 0);
      const stalled = open("POST /petbooks.v1.BookService/GetBook HTTP/1.1\r\nHost: x\r\n");
      await stalled.closed;
      // Opened before the stalled one, quiet ever since, and still open once that one is gone.
      await Bun.sleep(100);
      expect(streaming.socket.destroyed).toBe(false);
      streaming.socket.destroy();
    } finally {
      h1.closeAllConnections();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    }
  });
});
