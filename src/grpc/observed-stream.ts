/** A streamed response that reports its end: the interceptors that log, count and trace calls. */
import {
  Code,
  ConnectError,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

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
export async function whenCallEnds<R extends UnaryResponse | StreamResponse>(
  response: Promise<R>,
  onEnd: (err: unknown) => void,
): Promise<R> {
  let res: R;
  try {
    res = await response;
  } catch (err) {
    onEnd(err);
    throw err;
  }
  if (!res.stream) {
    onEnd(undefined);
    return res;
  }
  return { ...res, message: observed(res.message, onEnd) };
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
