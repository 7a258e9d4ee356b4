/**
 * For tests: the real gRPC server on a free loopback port, and independent clients for it
 * (Connect's gRPC transport, @grpc/grpc-js with the .proto files, and `buf curl`).
 */
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createLogger } from "../logger.ts";
import { type GrpcServer, type GrpcServerOptions, startGrpcServer } from "./server.ts";

const root = join(import.meta.dir, "..", "..");
export const PROTO_DIR = join(root, "proto");
const BUF = join(root, "node_modules", ".bin", "buf");

export interface TestGrpcServer extends GrpcServer {
  /** `127.0.0.1:port`, the target grpc-js wants. */
  address: string;
  /** Every structured log line the server wrote, parsed. */
  logs: Record<string, unknown>[];
  /** A Connect client speaking gRPC over HTTP/2 to this server. */
  client<T extends DescService>(service: T): Client<T>;
}

const unavailable = () => Promise.reject(new Error("this test has no database"));

export async function startTestGrpcServer(
  options: Partial<Omit<GrpcServerOptions, "host" | "port" | "logger">> = {},
): Promise<TestGrpcServer> {
  const logs: Record<string, unknown>[] = [];
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    books: { get: unavailable },
    repository: { listAfter: unavailable, count: unavailable },
    ping: async () => {},
    logger: createLogger("debug", (line) => logs.push(JSON.parse(line))),
    ...options,
  });
  const transport = createGrpcTransport({ baseUrl: server.url });
  return {
    ...server,
    address: `127.0.0.1:${server.port}`,
    logs,
    client: (service) => createClient(service, transport),
  };
}

/** A grpc-js client of a service defined in proto/, e.g. ("petbooks/v1/books.proto", "petbooks.v1.BookService"). */
export function grpcJsClient(address: string, file: string, service: string): grpc.Client {
  const definition = protoLoader.loadSync(file, {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    defaults: true,
    enums: String,
  });
  let node: unknown = grpc.loadPackageDefinition(definition);
  for (const part of service.split(".")) node = (node as Record<string, unknown>)[part];
  const Ctor = node as typeof grpc.Client;
  return new Ctor(address, grpc.credentials.createInsecure());
}

export interface GrpcJsResult {
  // biome-ignore lint/suspicious/noExplicitAny: tests check the decoded message field by field
  value?: any;
  error?: grpc.ServiceError;
}

/** Calls a unary method of a grpc-js client and settles with the answer or the error. */
type UnaryCall = (
  request: object,
  done: (error: grpc.ServiceError | null, value?: unknown) => void,
) => void;

export function grpcJsCall(client: grpc.Client, method: string, request: object) {
  return new Promise<GrpcJsResult>((resolve) => {
    const call = (client as unknown as Record<string, UnaryCall>)[method];
    if (!call) throw new Error(`the client has no method ${method}`);
    call.call(client, request, (error, value) => resolve(error ? { error } : { value }));
  });
}

export interface BufCurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `buf curl` over gRPC with HTTP/2 prior knowledge; with `schema`, from the .proto files,
 * otherwise by asking the server's reflection service.
 */
export async function bufCurl(
  url: string,
  args: string[],
  options: { schema?: boolean } = {},
): Promise<BufCurlResult> {
  const proc = Bun.spawn(
    [
      BUF,
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      ...(options.schema ? ["--schema", PROTO_DIR] : []),
      ...args,
      url,
    ],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}
