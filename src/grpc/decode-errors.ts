/**
 * Unary requests that cannot be decoded (bytes that are no protobuf message, invalid UTF-8 in a
 * string field, malformed JSON, a message flagged compressed without an encoding) are the
 * caller's fault: INVALID_ARGUMENT, with a message of ours and never the parser's.
 *
 * Connect raises these as INTERNAL with the parser's text, and for a unary call it does so before
 * any interceptor runs: it decodes the one request first and writes the error itself. (A streaming
 * call meets them inside the interceptors, where serveCalls translates them.) So each unary handler
 * is wrapped, and the error of a call that never reached the interceptors is rewritten on its way
 * out, in its protocol's framing: the gRPC trailer, the gRPC-Web trailer envelope, or Connect's
 * JSON error body and HTTP status.
 *
 * A caller that needs a token and has no valid one (auth.ts) is answered UNAUTHENTICATED instead,
 * whatever its message: authentication comes before anything the message could say.
 *
 * A request its client cut off (reset its stream, closed its connection) before it was whole is
 * no decode error either: Connect answers it INTERNAL ("internal error", the transport's error
 * only in its cause), so the request body is watched for the transport's own error, and the call
 * is CANCELED, in the log line and in the answer nobody is left to read.
 */
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import {
  codeFromString,
  codeToHttpStatus,
  codeToString,
} from "@connectrpc/connect/protocol-connect";
import type { Logger } from "../logger.ts";
import { authCheck, type GrpcAuth } from "./auth.ts";
import {
  CALL_STARTED,
  codeName,
  decodeErrorAnswer,
  knownErrorAnswer,
  protocolOf,
  requestIdFrom,
} from "./interceptors.ts";
import { cutShort, hangUpCode } from "./observed-stream.ts";

type Fix = (code: Code, message: string) => ConnectError | undefined;

/** Reads the gRPC status in `fields` (a trailer) and rewrites it in place when `fix` says so. */
function fixGrpcStatus(fields: Headers, fix: Fix): { code: Code; message: string } | undefined {
  const status = Number(fields.get("grpc-status") ?? "0");
  if (status === 0) return undefined;
  let message = fields.get("grpc-message") ?? "";
  try {
    message = decodeURIComponent(message);
  } catch {
    // Kept as sent.
  }
  const answer = fix(status, message);
  if (answer) {
    fields.set("grpc-status", String(answer.code));
    fields.set("grpc-message", encodeURIComponent(answer.rawMessage));
    fields.delete("grpc-status-details-bin");
  }
  return { code: status, message };
}

const TRAILER_FLAG = 0b1000_0000;
const COMPRESSED_FLAG = 0b0000_0001;

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(5 + data.byteLength);
  bytes[0] = flags;
  new DataView(bytes.buffer).setUint32(1, data.byteLength);
  bytes.set(data, 5);
  return bytes;
}

/** A gRPC-Web trailer envelope ("name: value\r\n" lines), rewritten when `fix` says so. */
function fixGrpcWebChunk(chunk: Uint8Array, fix: Fix, seen: Fix): Uint8Array {
  // The handler writes each envelope as one chunk.
  const flags = chunk[0] ?? 0;
  if (chunk.byteLength < 5 || !(flags & TRAILER_FLAG)) return chunk;
  const trailer = new Headers();
  if (flags & COMPRESSED_FLAG) {
    // Only a trailer over 1 KiB is compressed: the parser's text quoting the request. Replace it.
    trailer.set("grpc-status", String(Code.Internal));
  } else {
    for (const line of new TextDecoder().decode(chunk.subarray(5)).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) trailer.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
  }
  const status = fixGrpcStatus(trailer, fix);
  if (!status) return chunk;
  seen(status.code, status.message);
  if (!fix(status.code, status.message)) return chunk;
  const lines: string[] = [];
  trailer.forEach((value, name) => {
    lines.push(`${name}: ${value}\r\n`);
  });
  return envelope(TRAILER_FLAG, new TextEncoder().encode(lines.join("")));
}

/** A Connect unary error body `{code, message}`, as far as it can be read. */
async function connectError(
  res: { header?: Headers | undefined; status: number },
  body: AsyncIterable<Uint8Array>,
): Promise<{ bytes: Uint8Array; code?: Code; message: string }> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  if (res.header?.has("content-encoding")) {
    // Only an error over 1 KiB is compressed: the parser's text quoting the request.
    return { bytes, code: res.status === 400 ? Code.InvalidArgument : Code.Internal, message: "" };
  }
  try {
    const error = JSON.parse(new TextDecoder().decode(bytes)) as {
      code?: unknown;
      message?: unknown;
    };
    const code = typeof error.code === "string" ? codeFromString(error.code) : undefined;
    return { bytes, code, message: typeof error.message === "string" ? error.message : "" };
  } catch {
    return { bytes, message: "" };
  }
}

const once = (bytes: Uint8Array) =>
  (async function* () {
    yield bytes;
  })();

/**
 * The request body, calling `onHangUp` with the code if it fails because the client went away.
 * A plain iterator, not an async generator: this wraps every unary call's body.
 */
function watchingHangUp(
  body: AsyncIterable<Uint8Array>,
  onHangUp: (code: string) => void,
): AsyncIterable<Uint8Array> {
  const failed = (err: unknown): never => {
    const code = hangUpCode(err);
    if (code !== undefined) onHangUp(code);
    throw err;
  };
  return {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      return {
        next: () => it.next().then(undefined, failed),
        return: (value?: unknown) =>
          it.return
            ? it.return(value).then(undefined, failed)
            : Promise.resolve({ done: true as const, value: undefined }),
      };
    },
  };
}

const isByteStream = (body: unknown): body is AsyncIterable<Uint8Array> =>
  typeof body === "object" && body !== null && Symbol.asyncIterator in body;

/**
 * The handler, answering a unary request that could not be decoded with INVALID_ARGUMENT and a
 * message of ours (or UNAUTHENTICATED, for a caller without a valid token), and logging every
 * unary call that failed before reaching the interceptors (serveCalls, which logs the others,
 * never saw it). Streaming handlers are returned as they are.
 */
export function answeringUndecodable(
  handler: UniversalHandler,
  logger: Logger,
  auth: GrpcAuth,
  /** Sees each such call once it is answered, for the metrics the interceptors would record. */
  onAnswered?: (call: { service: string; method: string; code: Code; seconds: number }) => void,
): UniversalHandler {
  if (handler.method.methodKind !== "unary") return handler;
  const inputType = handler.method.input.typeName;
  const method = `/${handler.service.typeName}/${handler.method.name}`;

  async function answer(req: UniversalServerRequest) {
    const values = req.contextValues ?? createContextValues();
    const startedAt = performance.now();
    // Started now, while Connect reads the message; serveCalls awaits the same.
    const authFailure = authCheck(auth, handler.service.typeName, req.header, values);
    /** The transport's error code, when the client went away while its request was read. */
    let hungUp: string | undefined;
    const requestBody = isByteStream(req.body)
      ? watchingHangUp(req.body, (code) => {
          hungUp = code;
        })
      : req.body;
    const res = await handler({ ...req, body: requestBody, contextValues: values });
    // A unary call's response comes once its implementation returned, so by now the call either
    // reached the interceptors, which translated and logged it, or never will.
    if (values.get(CALL_STARTED)) return res;
    const refusal = await authFailure;
    const protocol = protocolOf(req.header.get("content-type"));
    const fix: Fix = (code, message) => {
      // Whatever the message or the token, nobody is left to answer.
      if (hungUp !== undefined) return cutShort(req.signal);
      if (refusal !== undefined) {
        return knownErrorAnswer(refusal) ?? new ConnectError("Internal error.", Code.Internal);
      }
      return decodeErrorAnswer(code, message, inputType);
    };
    let logged = false;
    const seen: Fix = (code, message) => {
      if (logged) return undefined;
      logged = true;
      const requestId = requestIdFrom(req.header);
      res.header?.set("x-request-id", requestId);
      const answered = fix(code, message)?.code ?? code;
      const durationMs = performance.now() - startedAt;
      logger.info("rpc", {
        request_id: requestId,
        method,
        protocol,
        code: codeName(answered),
        // What Connect said (or the transport, for a client gone), for the operator only.
        reason: hungUp === undefined ? message : `request cut off by the client (${hungUp})`,
        duration_ms: Math.round(durationMs * 100) / 100,
      });
      onAnswered?.({
        service: handler.service.typeName,
        method: handler.method.name,
        code: answered,
        seconds: durationMs / 1000,
      });
      return undefined;
    };
    const body = res.body;
    if (!body) return res;

    if (protocol === "grpc") {
      const trailer = res.trailer;
      if (!trailer) return res;
      return {
        ...res,
        // The trailer is complete once the body is: fix it before the adapter sends it.
        body: (async function* () {
          yield* body;
          const status = fixGrpcStatus(trailer, fix);
          if (status) seen(status.code, status.message);
        })(),
      };
    }
    if (protocol === "grpc-web") {
      return {
        ...res,
        body: (async function* () {
          for await (const chunk of body) yield fixGrpcWebChunk(chunk, fix, seen);
        })(),
      };
    }
    // Connect unary answers an error with a status other than 200 and a JSON body.
    if (res.status === 200) return res;
    const error = await connectError(res, body);
    if (error.code === undefined) return { ...res, body: once(error.bytes) };
    seen(error.code, error.message);
    const replacement = fix(error.code, error.message);
    if (!replacement) return { ...res, body: once(error.bytes) };
    const json = new TextEncoder().encode(
      JSON.stringify({ code: codeToString(replacement.code), message: replacement.rawMessage }),
    );
    const header = new Headers(res.header);
    header.delete("content-encoding");
    header.set("content-length", String(json.byteLength));
    return { ...res, status: codeToHttpStatus(replacement.code), header, body: once(json) };
  }

  return Object.assign(answer, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}
