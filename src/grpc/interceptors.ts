/**
 * Cross-cutting gRPC concerns, applied to every call: a request id, one structured log line per
 * call, and the translation of application errors into Connect codes.
 */
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { AppError, type ErrorCode } from "../errors.ts";
import type { Logger } from "../logger.ts";

/** The id of the current call: the caller's `x-request-id` when it is sane, a fresh UUID otherwise. */
export const REQUEST_ID = createContextKey("", { description: "request id" });

const INCOMING_ID = /^[A-Za-z0-9._:-]{1,128}$/;

const CODE_BY_APP_ERROR: Record<ErrorCode, Code> = {
  bad_request: Code.InvalidArgument,
  validation: Code.InvalidArgument,
  unauthorized: Code.Unauthenticated,
  not_found: Code.NotFound,
  conflict: Code.AlreadyExists,
  payload_too_large: Code.ResourceExhausted,
  unsupported_media_type: Code.InvalidArgument,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/** `NOT_FOUND`, `OK`…: the names gRPC documents, for logs. */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "OK";
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

function requestIdOf(req: Parameters<Parameters<Interceptor>[0]>[0]): string {
  let id = req.contextValues.get(REQUEST_ID);
  if (id === "") {
    const incoming = req.header.get("x-request-id");
    id = incoming && INCOMING_ID.test(incoming) ? incoming : crypto.randomUUID();
    req.contextValues.set(REQUEST_ID, id);
  }
  return id;
}

function protocolOf(contentType: string | null): string {
  if (contentType?.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** Calls `onEnd` once when the stream is done: finished, failed, or abandoned by the caller. */
async function* observed<T>(
  source: AsyncIterable<T>,
  onEnd: (err: unknown) => void,
): AsyncGenerator<T> {
  let failure: unknown;
  try {
    yield* source;
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    onEnd(failure);
  }
}

async function* translated<T>(
  source: AsyncIterable<T>,
  translate: (err: unknown) => ConnectError,
): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    throw translate(err);
  }
}

/** One `rpc` log line per call, when it ends: method, protocol, gRPC code and duration. */
export function logCalls(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = requestIdOf(req);
    const startedAt = performance.now();
    const log = (err: unknown) => {
      const code = err
        ? ConnectError.from(err).code
        : req.signal.aborted
          ? Code.Canceled
          : undefined;
      logger.info("rpc", {
        request_id: requestId,
        method: `/${req.service.typeName}/${req.method.name}`,
        protocol: protocolOf(req.header.get("content-type")),
        code: codeName(code),
        duration_ms: Math.round((performance.now() - startedAt) * 100) / 100,
      });
    };
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      if (!res.stream) {
        log(undefined);
        return res;
      }
      return { ...res, message: observed(res.message, log) };
    } catch (err) {
      log(err);
      if (err instanceof ConnectError) err.metadata.set("x-request-id", requestId);
      throw err;
    }
  };
}

/**
 * Application errors become their Connect code with their own message; errors Connect raised
 * itself pass unchanged. Anything else is a bug: it is logged in full and the caller gets an
 * opaque INTERNAL error that quotes the request id, never a message that could carry SQL.
 */
export function mapErrors(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const translate = (err: unknown): ConnectError => {
      if (err instanceof ConnectError) return err;
      if (err instanceof AppError && err.code !== "internal") {
        const details = err.fieldErrors.map((e) => `${e.path}: ${e.message}`).join("; ");
        return new ConnectError(
          details ? `${err.message} (${details})` : err.message,
          CODE_BY_APP_ERROR[err.code],
        );
      }
      const requestId = requestIdOf(req);
      logger.error("unhandled error", {
        request_id: requestId,
        method: `/${req.service.typeName}/${req.method.name}`,
        err,
        stack: err instanceof Error ? err.stack : undefined,
      });
      return new ConnectError(`Internal error; quote request id ${requestId}.`, Code.Internal);
    };
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: translated(res.message, translate) } : res;
    } catch (err) {
      throw translate(err);
    }
  };
}

/**
 * A unary call ends as soon as its signal aborts (deadline passed, caller gone, or the server
 * cutting calls that outlast its shutdown grace), with the reason as its status, instead of
 * waiting for an implementation that may never return. Streams watch their signal themselves.
 */
export const endOnAbort: Interceptor = (next) => async (req) => {
  if (req.stream) return next(req);
  const { signal } = req;
  let stop = () => {};
  const aborted = new Promise<never>((_, reject) => {
    stop = () => reject(ConnectError.from(signal.reason, Code.Canceled));
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  });
  try {
    return await Promise.race([next(req), aborted]);
  } finally {
    signal.removeEventListener("abort", stop);
  }
};
