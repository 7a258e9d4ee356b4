/** A streamed response that reports its end: the interceptors that log, count and trace calls. */

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
