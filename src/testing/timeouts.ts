/**
 * Budgets for test hooks that do real work (create a database, start or stop a process, remove
 * folders): a busy machine slows them down many times over, and Bun's default for a hook is 5 s.
 * These bound a hang; they are not speed assertions.
 */
export const SETUP_TIMEOUT_MS = 180_000;
export const TEARDOWN_TIMEOUT_MS = 60_000;
