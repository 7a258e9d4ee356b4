/** A `sleep` for code with injected waits (retries, backoff): it returns at once and notes each wait. */
export function recordingSleep() {
  const delays: number[] = [];
  return {
    delays,
    sleep: async (ms: number) => {
      delays.push(ms);
    },
  };
}
