/**
 * Cross-cutting gRPC concerns, applied to every call: a request id, one structured log line per
 * call, the token check, and the translation of application errors (and of requests that cannot
 * be decoded) into Connect codes.
 */
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { isDatabaseOutage, logDatabaseOutage } from "../db/errors.ts";
import { AppError, type ErrorCode } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { stackFrames } from "../redact.ts";
import { authCheck, type GrpcAuth } from "./auth.ts";
import { cutShort, endCode, hangUpCode, observed } from "./observed-stream.ts";

/** The id of the current call: the caller's `x-request-id` when it is sane, a fresh UUID otherwise. */
export const REQUEST_ID = createContextKey("", { description: "request id" });

/** Set as a call enters the interceptors; decode-errors.ts translates errors of the others. */
export const CALL_STARTED = createContextKey(false, {
  description: "the call reached the interceptors",
});

const INCOMING_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `x-request-id` when it is sane, a fresh UUID otherwise. */
export function requestIdFrom(header: Headers): string {
  const incoming = header.get("x-request-id");
  return incoming && INCOMING_ID.test(incoming) ? incoming : crypto.randomUUID();
}

const CODE_BY_APP_ERROR: Record<ErrorCode, Code> = {
  bad_request: Code.InvalidArgument,
  validation: Code.InvalidArgument,
  unauthorized: Code.Unauthenticated,
  not_found: Code.NotFound,
  conflict: Code.AlreadyExists,
  payload_too_large: Code.ResourceExhausted,
  unsupported_media_type: Code.InvalidArgument,
  too_many_requests: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/** `NOT_FOUND`, `OK`…: the names gRPC documents, for logs. */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "OK";
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

type CallRequest = Parameters<Parameters<Interceptor>[0]>[0];

function requestIdOf(req: CallRequest): string {
  let id = req.contextValues.get(REQUEST_ID);
  if (id === "") {
    id = requestIdFrom(req.header);
    req.contextValues.set(REQUEST_ID, id);
  }
  return id;
}

export function protocolOf(contentType: string | null): "grpc" | "grpc-web" | "connect" {
  if (contentType?.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/**
 * A streamed response with its errors translated. A handler that stops when its signal aborts
 * (WatchBooks, health Watch) returns as if it were done: the call then ends with the reason, as a
 * unary one does (untilAborted), so that logs, metrics and spans all record it (CANCELED when the
 * client went away).
 */
async function* translated<T>(
  source: AsyncIterable<T>,
  translate: (err: unknown) => ConnectError,
  signal: AbortSignal,
): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    throw translate(err);
  }
  if (signal.aborted) throw cutShort(signal);
}

export const COMPRESSED_WITHOUT_ENCODING =
  "The request message is flagged as compressed, but the request names no encoding (grpc-encoding).";

/**
 * The largest request message a call may send, as received and once decompressed: larger ones
 * are RESOURCE_EXHAUSTED. BookService's largest real request, a WatchBooks filter of 1,000 ids,
 * is about 40 KB.
 */
export const GRPC_READ_MAX_BYTES = 1_048_576;

export const MESSAGE_TOO_LARGE = `The request message is larger than ${GRPC_READ_MAX_BYTES} bytes, the most a call may send (a compressed one counts at its full size).`;

export const undecodable = (inputType: string) =>
  `The request is not a valid ${inputType} message.`;

/**
 * What to answer instead of an error Connect raised while reading a request of type `inputType`
 * (it raises a malformed message as INTERNAL, with the parser's text), or undefined to keep it. A
 * message over the read limit stays RESOURCE_EXHAUSTED, said in our words (Connect's name its
 * option and the decompression); its other errors (UNIMPLEMENTED for an unknown encoding, its own
 * "protocol error: …" diagnostics) say nothing of the parser and are right.
 */
export function decodeErrorAnswer(
  code: Code,
  message: string,
  inputType: string,
): ConnectError | undefined {
  if (code === Code.ResourceExhausted && message.includes("readMaxBytes")) {
    return new ConnectError(MESSAGE_TOO_LARGE, Code.ResourceExhausted);
  }
  if (code === Code.InvalidArgument && message.startsWith("protocol error")) return undefined;
  if (code !== Code.Internal && code !== Code.Unknown && code !== Code.InvalidArgument) {
    return undefined;
  }
  const text = /compressed/i.test(message) ? COMPRESSED_WITHOUT_ENCODING : undecodable(inputType);
  return new ConnectError(text, Code.InvalidArgument);
}

/**
 * The request stream of a streaming call, with Connect's decoding errors translated, and a
 * request its client cut off (reset, connection closed) told apart from a malformed one.
 */
async function* decodedRequests<T>(
  requests: AsyncIterable<T>,
  inputType: string,
  signal: AbortSignal,
) {
  try {
    yield* requests;
  } catch (err) {
    // The transport's error, as the runtime raised it: the client went away, it sent nothing wrong.
    if (hangUpCode(err) !== undefined) throw cutShort(signal);
    // The others are Connect's own, from reading and decoding the stream.
    const { code, rawMessage } = ConnectError.from(err);
    throw decodeErrorAnswer(code, rawMessage, inputType) ?? err;
  }
}

/** What a call that cannot reach the database answers: clients retry UNAVAILABLE. */
export const DATABASE_UNAVAILABLE = "The database is not reachable; try again shortly.";

/**
 * The answer to an error this server expects: Connect's own, an application error (its code and
 * message), or an unreachable database (UNAVAILABLE). Undefined for anything else: a bug.
 */
export function knownErrorAnswer(err: unknown): ConnectError | undefined {
  if (err instanceof ConnectError) return err;
  if (err instanceof AppError && err.code !== "internal") {
    const details = err.fieldErrors.map((e) => `${e.path}: ${e.message}`).join("; ");
    return new ConnectError(
      details ? `${err.message} (${details})` : err.message,
      CODE_BY_APP_ERROR[err.code],
    );
  }
  if (isDatabaseOutage(err)) return new ConnectError(DATABASE_UNAVAILABLE, Code.Unavailable);
  return undefined;
}

/**
 * A unary call's answer, or its end as soon as its signal aborts (deadline passed, caller gone, or
 * the server cutting calls that outlast its shutdown grace), with the reason as its status
 * (CANCELED for a caller gone, however it reset its stream), instead of waiting for an
 * implementation that may never return. Streams watch their signal themselves.
 */
function untilAborted<T>(call: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const stop = () => reject(cutShort(signal));
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop);
    call.then(
      (res) => {
        signal.removeEventListener("abort", stop);
        resolve(res);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", stop);
        reject(err);
      },
    );
  });
}

/** The `rpc` log line of a call that ended (with `err`, or undefined when it succeeded). */
function logCall(
  logger: Logger,
  req: CallRequest,
  requestId: string,
  startedAt: number,
  err: unknown,
): void {
  logger.info("rpc", {
    request_id: requestId,
    method: `/${req.service.typeName}/${req.method.name}`,
    protocol: protocolOf(req.header.get("content-type")),
    code: codeName(endCode(req, err)),
    duration_ms: Math.round((performance.now() - startedAt) * 100) / 100,
  });
}

/**
 * Application errors become their Connect code with their own message, errors Connect raised
 * itself pass unchanged, and a database that cannot be reached is UNAVAILABLE, with a message of
 * ours (the driver's names hosts and ports). Anything else is a bug: it is logged in full and the
 * caller gets an opaque INTERNAL error that quotes the request id, never a message that could
 * carry SQL.
 */
function translateError(
  logger: Logger,
  req: CallRequest,
  requestId: string,
  err: unknown,
): ConnectError {
  const known = knownErrorAnswer(err);
  const method = `/${req.service.typeName}/${req.method.name}`;
  if (known) {
    if (isDatabaseOutage(err)) logDatabaseOutage(logger, err, { request_id: requestId, method });
    return known;
  }
  logger.error("unhandled error", {
    request_id: requestId,
    method,
    err,
    stack: stackFrames(err),
  });
  return new ConnectError(`Internal error; quote request id ${requestId}.`, Code.Internal);
}

/**
 * What every call goes through, in one interceptor, so that a unary call takes one async step
 * here: as four interceptors, these concerns cost each call four async layers, a Promise.race and
 * a dozen closures, a measurable share of the server's CPU per call.
 *
 * - A request id, and one `rpc` log line when the call ends: method, protocol, gRPC code and
 *   duration. It sees the translated error: the code the caller actually got.
 * - The token check (auth.ts), before the implementation runs.
 * - Errors translated (translateError); for a streaming call, those of decoding its requests too
 *   (decodedRequests: a request its client cut off is CANCELED, not undecodable), and a stream
 *   that ends once its client went away is CANCELED (translated).
 * - A unary call ends as soon as its signal aborts (untilAborted).
 */
export function serveCalls(logger: Logger, auth: GrpcAuth): Interceptor {
  const logsCalls = logger.enabled("info");
  return (next) => async (req) => {
    req.contextValues.set(CALL_STARTED, true);
    const requestId = requestIdOf(req);
    const startedAt = performance.now();
    let res: Awaited<ReturnType<typeof next>>;
    try {
      const failure = await authCheck(auth, req.service.typeName, req.header, req.contextValues);
      if (failure) throw failure;
      if (req.stream) {
        const message = decodedRequests(req.message, req.method.input.typeName, req.signal);
        res = await next({ ...req, message });
      } else {
        res = await untilAborted(next(req), req.signal);
      }
    } catch (err) {
      const answer = translateError(logger, req, requestId, err);
      if (logsCalls) logCall(logger, req, requestId, startedAt, answer);
      answer.metadata.set("x-request-id", requestId);
      throw answer;
    }
    res.header.set("x-request-id", requestId);
    if (!res.stream) {
      if (logsCalls) logCall(logger, req, requestId, startedAt, undefined);
      return res;
    }
    const translate = (err: unknown) => translateError(logger, req, requestId, err);
    const log = (err: unknown) => {
      if (logsCalls) logCall(logger, req, requestId, startedAt, err);
    };
    return { ...res, message: observed(translated(res.message, translate, req.signal), log) };
  };
}
