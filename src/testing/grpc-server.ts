/**
 * For tests: the real gRPC server on a free loopback port, and independent clients for it
 * (Connect's gRPC transport, @grpc/grpc-js with the .proto files, and `buf curl`). By default
 * BookService requires a bearer token, checked by a real AuthService over users held in memory,
 * and the server's `client` sends a valid one.
 */

import http2 from "node:http2";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type Client, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { type CommandResult, runCommand } from "../../scripts/run-command.ts";
import { type AuthService, createAuthService } from "../auth/auth.service.ts";
import { createTokenIssuer } from "../auth/tokens.ts";
import { type BooksModuleDeps, createBooksRpc } from "../books/books.module.ts";
import type { BookRpcDeps } from "../books/books.rpc.ts";
import type { GrpcAuth } from "../grpc/auth.ts";
import { type GrpcServer, type GrpcServerOptions, startGrpcServer } from "../grpc/server.ts";
import { capturingLogger } from "./logger.ts";
import { type MemoryUsers, memoryUsers } from "./memory-users.ts";

const root = join(import.meta.dir, "..", "..");
export const PROTO_DIR = join(root, "proto");
const BUF = join(root, "node_modules", ".bin", "buf");

export interface TestGrpcServer extends GrpcServer {
  /** `127.0.0.1:port`, the target grpc-js wants. */
  address: string;
  /** Every structured log line the server wrote, parsed. */
  logs: Record<string, unknown>[];
  /** `{authorization: "Bearer …"}` with a valid token of the test user, for any client. */
  bearer: Record<"authorization", string>;
  /**
   * A Connect client speaking gRPC over HTTP/2 to this server, sending the test user's token,
   * another `authorization` value, or (null) none.
   */
  client<T extends DescService>(service: T, authorization?: string | null): Client<T>;
}

const unavailable = () => Promise.reject(new Error("this test has no database"));

export const TEST_GRPC_JWT_SECRET = "grpc-test-jwt-secret-0123456789-0123456789";

/** An AuthService over memoryUsers(), with one user and a valid token of theirs. */
export async function testAuth(): Promise<{
  service: AuthService;
  users: MemoryUsers;
  userId: string;
  token: string;
}> {
  const users = memoryUsers();
  const tokens = createTokenIssuer(TEST_GRPC_JWT_SECRET, 3600);
  const { id } = users.add("grpc_tester");
  const service = createAuthService({ users, tokens });
  return { service, users, userId: id, token: (await tokens.issue(id)).token };
}

const withAuthorization =
  (value: string | null): Interceptor =>
  (next) =>
  (req) => {
    if (value !== null) req.header.set("authorization", value);
    return next(req);
  };

/**
 * Options of the server, and of its BookService (`books`, `pageTokenSecret`, `watch`): a books
 * service whose calls fail unless given, page tokens signed with the test secret, no WatchBooks.
 */
export type TestGrpcServerOptions = Partial<Omit<GrpcServerOptions, "host" | "port" | "logger">> &
  Partial<Pick<BooksModuleDeps, "pageTokenSecret" | "watch">> & {
    books?: Partial<BookRpcDeps["books"]>;
  };

export async function startTestGrpcServer(
  options: TestGrpcServerOptions = {},
): Promise<TestGrpcServer> {
  const { books, pageTokenSecret, watch, ...serverOptions } = options;
  const { lines: logs, logger } = capturingLogger();
  const auth = await testAuth();
  const bearerAuth: GrpcAuth = {
    mode: "bearer",
    authenticate: (authorization) => auth.service.authenticate(authorization),
  };
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    services: [
      createBooksRpc(
        { get: unavailable, pageAfter: unavailable, ...books },
        // An explicit `pageTokenSecret: undefined` is a server without one.
        {
          pageTokenSecret: "pageTokenSecret" in options ? pageTokenSecret : TEST_GRPC_JWT_SECRET,
          watch,
        },
      ),
    ],
    ping: async () => {},
    logger,
    auth: bearerAuth,
    ...serverOptions,
  });
  const bearer = { authorization: `Bearer ${auth.token}` };
  return {
    ...server,
    address: `127.0.0.1:${server.port}`,
    logs,
    bearer,
    client: (service, authorization = bearer.authorization) =>
      createClient(
        service,
        createGrpcTransport({
          baseUrl: server.url,
          interceptors: [withAuthorization(authorization)],
        }),
      ),
  };
}

/** A grpc-js client of a service defined in proto/, e.g. ("petbooks/v1/books.proto", "petbooks.v1.BookService"). */
/** The error a call that must fail fails with, as Connect sees it. */
export async function failureOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
}

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

/**
 * Calls a unary method of a grpc-js client, with `headers` as metadata, and settles with the
 * answer or the error.
 */
export function grpcJsCall(
  client: grpc.Client,
  method: string,
  request: object,
  headers: Record<string, string> = {},
) {
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
  return new Promise<GrpcJsResult>((resolve) => {
    const call = (client as unknown as Record<string, UnaryCallWithMetadata>)[method];
    if (!call) throw new Error(`the client has no method ${method}`);
    call.call(client, request, metadata, (error, value) => resolve(error ? { error } : { value }));
  });
}

type UnaryCallWithMetadata = (
  request: object,
  metadata: grpc.Metadata,
  done: (error: grpc.ServiceError | null, value?: unknown) => void,
) => void;

/**
 * `buf curl` over gRPC with HTTP/2 prior knowledge; with `schema`, from the .proto files,
 * otherwise by asking the server's reflection service; with `authorization`, sending it as the
 * README shows (`-H "Authorization: Bearer $TOKEN"`).
 */
export async function bufCurl(
  url: string,
  args: string[],
  options: { schema?: boolean; authorization?: string } = {},
): Promise<CommandResult> {
  return runCommand([
    BUF,
    "curl",
    "--protocol",
    "grpc",
    "--http2-prior-knowledge",
    ...(options.schema ? ["--schema", PROTO_DIR] : []),
    ...(options.authorization ? ["-H", `Authorization: ${options.authorization}`] : []),
    ...args,
    url,
  ]);
}

/**
 * The gRPC status a streaming call ends with, as the server sends it in its trailers: a client
 * library enforces a deadline itself and reports DEADLINE_EXCEEDED whatever the server said.
 * Sends one request message, `message` (protobuf bytes; empty by default), with `headers` (such
 * as `grpc-timeout`).
 */
export function serverSentStatus(
  baseUrl: string,
  path: string,
  headers: Record<string, string>,
  message: Uint8Array = new Uint8Array(),
): Promise<string | undefined> {
  const session = http2.connect(baseUrl);
  return new Promise<string | undefined>((resolve, reject) => {
    session.once("error", reject);
    const stream = session.request({
      ...headers,
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    let status: string | undefined;
    const statusOf = (fields: http2.IncomingHttpHeaders) => {
      const value = fields["grpc-status"];
      if (typeof value === "string") status = value;
    };
    stream.on("response", statusOf);
    stream.on("trailers", statusOf);
    stream.on("data", () => {});
    stream.on("end", () => resolve(status));
    stream.on("error", reject);
    const envelope = new Uint8Array(5 + message.byteLength);
    new DataView(envelope.buffer).setUint32(1, message.byteLength);
    envelope.set(message, 5);
    stream.end(envelope);
  }).finally(() => session.close());
}
