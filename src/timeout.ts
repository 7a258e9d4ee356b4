/** `operation`'s answer, or the error `timedOut` makes once `timeoutMs` passed without one. */
export function withinTimeout<T>(
  operation: Promise<T>,
  timeoutMs: number,
  timedOut: (message: string) => Error,
): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut(`no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([operation, timeout]).finally(() => clearTimeout(timer));
}
