/**
 * Traces from the compiled binary, black-box: `serve` and `grpc` with OTEL_EXPORTER_OTLP_ENDPOINT
 * pointing at a small OTLP/HTTP receiver of this test export a server span per request and per
 * RPC, in the caller's trace (`traceparent`), and the log lines of a traced request carry its
 * `trace_id` and `span_id`. Without the variable nothing is sent (the other contract files run
 * that way).
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetBookRequestSchema } from "../../src/gen/petbooks/v1/books_pb.ts";
import { callRaw } from "../../src/grpc/error-cases.ts";
import {
  type RunningDev,
  type RunningGrpcServer,
  type RunningServer,
  startDev,
  startGrpcServer,
  startServer,
} from "../../src/testing/binary.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
import { until } from "../../src/testing/until.ts";
import { CONTRACT_API_KEY, useBinaryCommand } from "./harness.ts";

/** `until`, asking the binary at most every 100 ms. */
const poll = <T>(what: string, check: () => T | Promise<T>) => until(what, check, { everyMs: 100 });

// Real processes and an exporter that batches: generous limits, no speed assumed.
setDefaultTimeout(120_000);

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  service: string;
  attributes?: { key: string; value: { stringValue?: string } }[];
}

/** An OTLP/HTTP (JSON) trace receiver: every span it was sent. */
function otlpReceiver() {
  const spans: ExportedSpan[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      if (new URL(request.url).pathname !== "/v1/traces")
        return new Response(null, { status: 404 });
      const body = (await request.json()) as {
        resourceSpans: {
          resource: { attributes: { key: string; value: { stringValue?: string } }[] };
          scopeSpans: { spans: Omit<ExportedSpan, "service">[] }[];
        }[];
      };
      for (const rs of body.resourceSpans) {
        const service =
          rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "";
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service });
      }
      return Response.json({});
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, spans, stop: () => server.stop(true) };
}

const randomHex = (bytes: number) =>
  Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");

describe("OTEL_EXPORTER_OTLP_ENDPOINT set", () => {
  const receiver = otlpReceiver();
  const otel = {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    // Export within a fraction of a second instead of the default 5 s.
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
  const runningServe = useBinaryCommand(startServer, otel);
  const runningGrpc = useBinaryCommand(startGrpcServer, {
    ...otel,
    GRPC_AUTH: "none",
    OTEL_SERVICE_NAME: "books-grpc",
  });
  let serve: RunningServer | undefined;
  let grpc: RunningGrpcServer | undefined;

  beforeAll(() => {
    serve = runningServe();
    grpc = runningGrpc();
  }, SETUP_TIMEOUT_MS);
  afterAll(() => receiver.stop(), TEARDOWN_TIMEOUT_MS);

  test("serve: a span per request in the caller's trace, and its ids in the log lines", async () => {
    const traceId = randomHex(16);
    const parentId = randomHex(8);
    const res = await fetch(`${serve?.url}/pets?limit=1`, {
      headers: { "x-api-key": CONTRACT_API_KEY, traceparent: `00-${traceId}-${parentId}-01` },
    });
    expect(res.status).toBe(200);
    // The server span (OTLP kind 2): its database statements' client spans share the trace.
    const span = await poll("the request's span", () =>
      receiver.spans.find((s) => s.traceId === traceId && s.kind === 2),
    );
    expect(span).toMatchObject({ name: "GET /pets", parentSpanId: parentId, kind: 2 });
    expect(span.service).toBe("petbooks-serve");
    const line = await poll("the request's log line", () =>
      serve
        ?.logs()
        .split("\n")
        .find((l) => l.includes('"msg":"request"') && l.includes(traceId)),
    );
    expect(JSON.parse(line)).toMatchObject({ trace_id: traceId, span_id: span.spanId });
  });

  test("grpc: a span per call, in the caller's trace, under OTEL_SERVICE_NAME", async () => {
    const traceId = randomHex(16);
    const parentId = randomHex(8);
    const request = toBinary(
      GetBookRequestSchema,
      create(GetBookRequestSchema, { id: crypto.randomUUID() }),
    );
    await callRaw(
      grpc?.url ?? "",
      "grpc",
      "GetBook",
      { proto: request },
      {
        traceparent: `00-${traceId}-${parentId}-01`,
      },
    );
    const span = await poll("the call's span", () =>
      receiver.spans.find((s) => s.traceId === traceId && s.kind === 2),
    );
    expect(span).toMatchObject({
      name: "petbooks.v1.BookService/GetBook",
      parentSpanId: parentId,
      service: "books-grpc",
    });
  });
});

describe("dev: one trace from POST /books to the consumer", () => {
  const receiver = otlpReceiver();
  const running = useBinaryCommand(startDev, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: "100",
  });
  let dev: RunningDev | undefined;

  beforeAll(() => {
    dev = running();
  }, SETUP_TIMEOUT_MS);
  afterAll(() => receiver.stop(), TEARDOWN_TIMEOUT_MS);

  test("the consumer's span is a child of the request's, and its log line says so", async () => {
    const base = dev?.httpUrl ?? "";
    const credentials = { username: "tracer", password: "correct horse battery staple" };
    await fetch(`${base}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(credentials),
    });
    const token = (await (
      await fetch(`${base}/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", ...credentials }),
      })
    ).json()) as { access_token: string };
    const traceId = randomHex(16);
    const created = await fetch(`${base}/books`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token.access_token}`,
        "content-type": "application/json",
        traceparent: `00-${traceId}-${randomHex(8)}-01`,
      },
      body: JSON.stringify({ title: "Traced", author: "A. Tracer", published_on: "2020-01-01" }),
    });
    expect(created.status).toBe(201);
    const request = await poll("the request's span", () =>
      receiver.spans.find((s) => s.traceId === traceId && s.name === "POST /books"),
    );
    // A statement of the write: a client span (OTLP kind 3) under a span of the same trace.
    const statement = await poll("a database span of the request", () =>
      receiver.spans.find(
        (s) =>
          s.traceId === traceId &&
          s.attributes?.some(
            (a) => a.key === "db.system.name" && a.value.stringValue === "postgresql",
          ),
      ),
    );
    expect(statement.kind).toBe(3);
    expect(
      receiver.spans.some((s) => s.traceId === traceId && s.spanId === statement.parentSpanId),
    ).toBe(true);
    const consumed = await poll("the consumer's span", () =>
      receiver.spans.find((s) => s.traceId === traceId && s.name.startsWith("process ")),
    );
    expect(consumed.parentSpanId).toBe(request.spanId);
    expect(consumed.service).toBe("petbooks-dev");
    const line = await poll("the consumer's log line", () =>
      dev
        ?.logs()
        .split("\n")
        .find((l) => l.includes('"msg":"book event"') && l.includes(traceId)),
    );
    expect(JSON.parse(line)).toMatchObject({ trace_id: traceId, span_id: consumed.spanId });
  });
});

describe("OTEL_EXPORTER_OTLP_ENDPOINT unset", () => {
  const running = useBinaryCommand(startServer);
  let serve: RunningServer | undefined;

  beforeAll(() => {
    serve = running();
  }, SETUP_TIMEOUT_MS);

  test("log lines carry no trace ids, even for a request with a traceparent", async () => {
    const traceId = randomHex(16);
    await fetch(`${serve?.url}/pets?limit=1`, {
      headers: { "x-api-key": CONTRACT_API_KEY, traceparent: `00-${traceId}-${randomHex(8)}-01` },
    });
    const line = await poll("the request's log line", () =>
      serve
        ?.logs()
        .split("\n")
        .findLast((l) => l.includes('"msg":"request"')),
    );
    expect(line).not.toContain("trace_id");
  });
});
