/** A streamed response that reports its end: the interceptors that log, count and trace calls. */
import {
  Code,
  ConnectError,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

/**
 * Node's error codes for a request its client cut off while the server read it. Seen here (Bun's
 * node:http2 and node:http): an HTTP/2 stream reset, or its connection closed, before the request
 * ended fails the request body with ERR_STREAM_PREMATURE_CLOSE (a reset with an error code also
 * fails the stream itself with ERR_HTTP2_STREAM_ERROR); an HTTP/1.1 connection lost mid-body
 * with ECONNRESET ("aborted"). The others are those connect-node takes for a client that hung up
 * (node-error.ts).
 */
const HUNG_UP = new Set([
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_HTTP2_STREAM_ERROR",
  "ECONNRESET",
  "ERR_STREAM_DESTROYED",
  "ERR_HTTP2_INVALID_STREAM",
]);

/**
 * The Node error code, in `err` or an error it wraps, that says the client went away while the
 * server read its request; undefined for anything else (a malformed message is a ConnectError of
 * Connect's parser, with no such code).
 */
export function hangUpCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let e = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && HUNG_UP.has(code)) return code;
  }
  return undefined;
}

const CLIENT_WENT_AWAY =
  "The client went away (it canceled the call or closed its connection) before the call ended.";

/** A call's signal aborted with one of these when the server ended the call itself. */
const ENDED_BY_SERVER = new Set([Code.DeadlineExceeded, Code.Unavailable]);

/**
 * The status of a call cut short, with its signal `signal`: the server's own reason when it ended
 * the call (its deadline passed, or the shutdown grace was over: UNAVAILABLE), otherwise
 * CANCELED, the client's choice, whatever it reset its stream with (Connect reads the HTTP/2 code:
 * INTERNAL_ERROR would be INTERNAL) or when it closed its connection.
 */
export function cutShort(signal: AbortSignal): ConnectError {
  const reason: unknown = signal.reason;
  if (signal.aborted && reason instanceof ConnectError && ENDED_BY_SERVER.has(reason.code)) {
    return reason;
  }
  return new ConnectError(CLIENT_WENT_AWAY, Code.Canceled);
}

/** The code a call ended with: its error's, Canceled when the client went away, none when OK. */
export function endCode(req: UnaryRequest | StreamRequest, err: unknown): Code | undefined {
  return err ? ConnectError.from(err).code : req.signal.aborted ? Code.Canceled : undefined;
}

/** Calls `onEnd` once when the stream is done: finished, failed, or abandoned by the caller. */
export async function* observed<T>(
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

/**
 * Awaits a call's response and calls `onEnd` once the call is over: on failure, at once for a
 * unary answer, at the end of its stream for a streamed one.
 */
export function whenCallEnds<R extends UnaryResponse | StreamResponse>(
  response: Promise<R>,
  onEnd: (err: unknown) => void,
): Promise<R> {
  return response.then(
    (res) => {
      if (!res.stream) {
        onEnd(undefined);
        return res;
      }
      return { ...res, message: observed(res.message, onEnd) };
    },
    (err: unknown) => {
      onEnd(err);
      throw err;
    },
  );
}

/**
 * Ends a streaming call whose signal aborted, from inside its handler: with DEADLINE_EXCEEDED
 * when its deadline (`grpc-timeout`, `connect-timeout-ms`) passed, so that the caller is told, as
 * a handler that just returned would end the call OK; quietly when the caller went away.
 */
export function throwIfDeadlineExceeded(signal: AbortSignal): void {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) throw reason;
}
