/**
 * For tests: requests BookService must refuse with the right status, and a raw HTTP/2 client that
 * sends each one over gRPC, gRPC-Web and Connect (binary and JSON) exactly as given, malformed
 * bytes included. The unit tests (decode-errors.test.ts) and the contract tests of the compiled
 * binary (test/contract/grpc.contract.test.ts) iterate the same table.
 */
import http2 from "node:http2";
import {
  create,
  type DescMessage,
  type MessageInitShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import { type Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  BookService,
  GetBookRequestSchema,
  ListBooksRequestSchema,
} from "../gen/petbooks/v1/books_pb.ts";
import { codeName, GRPC_READ_MAX_BYTES } from "./interceptors.ts";

export type Method = "GetBook" | "ListBooks";
export type Protocol = "grpc" | "grpc-web" | "connect-proto" | "connect-json";
export const PROTOCOLS: Protocol[] = ["grpc", "grpc-web", "connect-proto", "connect-json"];

/** What a case sends: protobuf bytes (gRPC, gRPC-Web, Connect), JSON text (Connect), or both. */
export interface Payload {
  proto?: Uint8Array;
  json?: string;
  /** Sets the envelope's compressed flag (gRPC and gRPC-Web only), without any encoding. */
  compressed?: boolean;
  /** Sends the message gzipped, flagged and named (`grpc-encoding: gzip`; gRPC and gRPC-Web). */
  gzip?: boolean;
}

export interface CaseContext {
  /** A next_page_token the server issued for ListBooks with this page_size. */
  pageToken(pageSize: number): Promise<string>;
}

export interface GrpcErrorCase {
  name: string;
  method: Method;
  /** Where it applies: JSON text only goes to Connect, the compressed flag only in envelopes. */
  protocols: Protocol[];
  payload: (ctx: CaseContext) => Payload | Promise<Payload>;
  code: "INVALID_ARGUMENT" | "NOT_FOUND" | "RESOURCE_EXHAUSTED";
  /** What the status message says. */
  message: RegExp;
}

/** Anything a parser, a decompressor or a database could have said; never in an answer. */
export const INTERNALS =
  /parse|premature|EOF|utf-?8|cannot decode|JSON Parse|Unexpected|decompress|envelope|select |relation|\bat \/|\.ts:\d/i;

function both<T extends DescMessage>(schema: T, init: MessageInitShape<T>): Payload {
  const message = create(schema, init);
  return { proto: toBinary(schema, message), json: toJsonString(schema, message) };
}

const getBook = (id: string) => both(GetBookRequestSchema, { id });
const listBooks = (init: MessageInitShape<typeof ListBooksRequestSchema>) =>
  both(ListBooksRequestSchema, init);

/** GetBook of `id`, on every protocol. */
const getBookCase = (
  name: string,
  id: string,
  code: GrpcErrorCase["code"],
  message: RegExp,
): GrpcErrorCase => ({
  name,
  protocols: PROTOCOLS,
  method: "GetBook",
  payload: () => getBook(id),
  code,
  message,
});

/** The token with one character in its middle changed (to another valid base64url one). */
export function tampered(token: string): string {
  const at = Math.floor(token.length / 2);
  const swapped = token[at] === "A" ? "B" : "A";
  return `${token.slice(0, at)}${swapped}${token.slice(at + 1)}`;
}

const BINARY: Protocol[] = ["grpc", "grpc-web", "connect-proto"];
const ENVELOPED: Protocol[] = ["grpc", "grpc-web"];
const JSON_ONLY: Protocol[] = ["connect-json"];

const UNDECODABLE = (type: string) => new RegExp(`^The request is not a valid ${type} message\\.$`);
const GET = "petbooks.v1.GetBookRequest";
const LIST = "petbooks.v1.ListBooksRequest";
const PAGE_TOKEN = /^page_token is not valid/;

const OVER_READ_LIMIT = new RegExp(
  `^The request message is larger than ${GRPC_READ_MAX_BYTES} bytes, the most a call may send`,
);
/** An id of `bytes` bytes: a GetBook request of about that size. */
const oversizedId = (bytes: number) => "A".repeat(bytes);

export const GRPC_ERROR_CASES: GrpcErrorCase[] = [
  {
    name: "a message over the 1 MiB read limit",
    protocols: PROTOCOLS,
    method: "GetBook",
    payload: () => getBook(oversizedId(GRPC_READ_MAX_BYTES + 1)),
    code: "RESOURCE_EXHAUSTED",
    message: OVER_READ_LIMIT,
  },
  {
    // 2 KiB on the wire: the limit holds for what it inflates to, not only for what is sent.
    name: "a gzipped message that inflates past the read limit",
    protocols: ENVELOPED,
    method: "GetBook",
    payload: () => ({ ...getBook(oversizedId(4 * GRPC_READ_MAX_BYTES)), gzip: true }),
    code: "RESOURCE_EXHAUSTED",
    message: OVER_READ_LIMIT,
  },
  {
    name: "a malformed protobuf body (ff ff ff ff)",
    protocols: BINARY,
    method: "GetBook",
    payload: () => ({ proto: Uint8Array.of(0xff, 0xff, 0xff, 0xff) }),
    code: "INVALID_ARGUMENT",
    message: UNDECODABLE(GET),
  },
  {
    name: "a malformed protobuf body to ListBooks",
    protocols: BINARY,
    method: "ListBooks",
    payload: () => ({ proto: Uint8Array.of(0xff, 0xff, 0xff, 0xff) }),
    code: "INVALID_ARGUMENT",
    message: UNDECODABLE(LIST),
  },
  {
    name: "a message cut short",
    protocols: BINARY,
    method: "GetBook",
    // Field 1, length 16, then 1 byte.
    payload: () => ({ proto: Uint8Array.of(0x0a, 0x10, 0x61) }),
    code: "INVALID_ARGUMENT",
    message: UNDECODABLE(GET),
  },
  {
    name: "invalid UTF-8 in id",
    protocols: BINARY,
    method: "GetBook",
    payload: () => ({ proto: Uint8Array.of(0x0a, 0x02, 0xc3, 0x28) }),
    code: "INVALID_ARGUMENT",
    message: UNDECODABLE(GET),
  },
  {
    name: "invalid UTF-8 in page_token",
    protocols: BINARY,
    method: "ListBooks",
    payload: () => ({ proto: Uint8Array.of(0x12, 0x02, 0xc3, 0x28) }),
    code: "INVALID_ARGUMENT",
    message: UNDECODABLE(LIST),
  },
  {
    name: "a compressed flag without an encoding",
    protocols: ENVELOPED,
    method: "GetBook",
    payload: () => ({ ...getBook("0199a7c6-0000-7000-8000-000000000000"), compressed: true }),
    code: "INVALID_ARGUMENT",
    message: /compressed, but the request names no encoding/,
  },
  {
    name: "malformed JSON",
    protocols: JSON_ONLY,
    method: "GetBook",
    payload: () => ({ json: '{"id":' }),
    code: "INVALID_ARGUMENT",
    message: UNDECODABLE(GET),
  },
  {
    name: "a JSON id that is a number",
    protocols: JSON_ONLY,
    method: "GetBook",
    payload: () => ({ json: '{"id":5}' }),
    code: "INVALID_ARGUMENT",
    message: UNDECODABLE(GET),
  },
  {
    name: "a JSON page_size that is text",
    protocols: JSON_ONLY,
    method: "ListBooks",
    payload: () => ({ json: '{"pageSize":"ten"}' }),
    code: "INVALID_ARGUMENT",
    message: UNDECODABLE(LIST),
  },
  getBookCase("an id that is not a UUID", "not-a-uuid", "INVALID_ARGUMENT", /^id must be a UUID$/),
  getBookCase(
    "an id with a NUL",
    "0199a7c6-0000-7000-8000-00000000000\u0000",
    "INVALID_ARGUMENT",
    /^id must be a UUID$/,
  ),
  getBookCase("an unknown id", "0199a7c6-0000-7000-8000-000000000000", "NOT_FOUND", /not found/),
  {
    name: "a tampered page token",
    protocols: PROTOCOLS,
    method: "ListBooks",
    payload: async (ctx) => listBooks({ pageSize: 2, pageToken: tampered(await ctx.pageToken(2)) }),
    code: "INVALID_ARGUMENT",
    message: PAGE_TOKEN,
  },
  {
    name: "a page token of another page_size",
    protocols: PROTOCOLS,
    method: "ListBooks",
    payload: async (ctx) => listBooks({ pageSize: 3, pageToken: await ctx.pageToken(2) }),
    code: "INVALID_ARGUMENT",
    message: PAGE_TOKEN,
  },
  {
    name: "a forged page token",
    protocols: PROTOCOLS,
    method: "ListBooks",
    payload: () => listBooks({ pageSize: 2, pageToken: "A".repeat(44) }),
    code: "INVALID_ARGUMENT",
    message: PAGE_TOKEN,
  },
  {
    name: "an unsigned page token (the old format: version 1 and an id)",
    protocols: PROTOCOLS,
    method: "ListBooks",
    payload: () =>
      listBooks({
        pageSize: 2,
        pageToken: Buffer.concat([Buffer.of(1), Buffer.alloc(16, 0x11)]).toString("base64url"),
      }),
    code: "INVALID_ARGUMENT",
    message: PAGE_TOKEN,
  },
  {
    name: "a negative page_size",
    protocols: PROTOCOLS,
    method: "ListBooks",
    payload: () => listBooks({ pageSize: -1 }),
    code: "INVALID_ARGUMENT",
    message: /^page_size must not be negative$/,
  },
];

export interface RawAnswer {
  httpStatus: number;
  /** `OK`, `NOT_FOUND`…, as gRPC names them. */
  code: string;
  message: string;
  /** Everything the server sent, as text, to look for what must not be there. */
  raw: string;
}

const CONTENT_TYPE: Record<Protocol, string> = {
  grpc: "application/grpc",
  "grpc-web": "application/grpc-web+proto",
  "connect-proto": "application/proto",
  "connect-json": "application/json",
};

function envelope(flags: number, data: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(data.byteLength, 1);
  return Buffer.concat([head, data]);
}

function grpcStatus(
  fields: Record<string, unknown>,
): { code: string; message: string } | undefined {
  const status = fields["grpc-status"];
  if (status === undefined) return undefined;
  const message = decodeURIComponent(String(fields["grpc-message"] ?? ""));
  return { code: codeName(Number(status) === 0 ? undefined : (Number(status) as Code)), message };
}

/** A gRPC-Web body's trailer envelope, as header fields. */
function grpcWebTrailer(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let at = 0; at + 5 <= body.length; ) {
    const flags = body[at] as number;
    const length = body.readUInt32BE(at + 1);
    if (flags & 0x80) {
      for (const line of body
        .subarray(at + 5, at + 5 + length)
        .toString()
        .split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0)
          fields[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    at += 5 + length;
  }
  return fields;
}

/**
 * Sends one request over HTTP/2 (h2c), as the protocol frames it, with `headers` (such as
 * `authorization`), and reads the status it got.
 */
export async function callRaw(
  baseUrl: string,
  protocol: Protocol,
  method: Method,
  payload: Payload,
  extraHeaders: Record<string, string> = {},
): Promise<RawAnswer> {
  const data =
    protocol === "connect-json"
      ? Buffer.from(payload.json ?? "")
      : (payload.proto ?? new Uint8Array());
  const enveloped = protocol === "grpc" || protocol === "grpc-web";
  const gzip = enveloped && payload.gzip === true;
  const body = enveloped
    ? gzip
      ? envelope(1, Bun.gzipSync(Uint8Array.from(data)))
      : envelope(payload.compressed ? 1 : 0, data)
    : data;
  const session = http2.connect(baseUrl);
  try {
    const { headers, trailers, bytes } = await new Promise<{
      headers: http2.IncomingHttpHeaders;
      trailers: http2.IncomingHttpHeaders;
      bytes: Buffer;
    }>((resolve, reject) => {
      session.once("error", reject);
      const stream = session.request({
        ...extraHeaders,
        ":method": "POST",
        ":path": `/petbooks.v1.BookService/${method}`,
        "content-type": CONTENT_TYPE[protocol],
        ...(protocol === "grpc" && { te: "trailers" }),
        ...(gzip && { "grpc-encoding": "gzip" }),
      });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        headers = h;
      });
      stream.on("trailers", (t) => {
        trailers = t;
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => resolve({ headers, trailers, bytes: Buffer.concat(chunks) }));
      stream.on("error", reject);
      stream.end(body);
    });
    const httpStatus = Number(headers[":status"]);
    const raw = `${JSON.stringify(headers)}\n${JSON.stringify(trailers)}\n${bytes.toString("latin1")}`;
    let status: { code: string; message: string } | undefined;
    if (protocol === "grpc") status = grpcStatus(trailers) ?? grpcStatus(headers);
    else if (protocol === "grpc-web")
      status = grpcStatus(grpcWebTrailer(bytes)) ?? grpcStatus(headers);
    else if (httpStatus === 200) status = { code: "OK", message: "" };
    else {
      const error = JSON.parse(bytes.toString()) as { code: string; message?: string };
      status = { code: error.code.toUpperCase(), message: error.message ?? "" };
    }
    return { httpStatus, raw, ...(status ?? { code: "NO STATUS", message: "" }) };
  } finally {
    session.close();
  }
}

/**
 * The context the cases need, from a running server that holds at least 3 books, called with
 * `headers` (such as `authorization`).
 */
export function caseContext(baseUrl: string, headers: Record<string, string> = {}): CaseContext {
  const client = createClient(
    BookService,
    createGrpcTransport({
      baseUrl,
      interceptors: [
        (next) => (req) => {
          for (const [name, value] of Object.entries(headers)) req.header.set(name, value);
          return next(req);
        },
      ],
    }),
  );
  return {
    async pageToken(pageSize) {
      const page = await client.listBooks({ pageSize });
      if (!page.nextPageToken) throw new Error(`no second page of ${pageSize}: add more books`);
      return page.nextPageToken;
    },
  };
}

/** The HTTP status Connect answers each case's code with (the Connect protocol's table). */
export const CONNECT_HTTP_STATUS: Record<GrpcErrorCase["code"], number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  RESOURCE_EXHAUSTED: 429,
};
