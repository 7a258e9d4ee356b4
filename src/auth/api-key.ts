/** The pets registry's shared-secret API key. */
import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Compares in constant time. Hashing both sides first gives equal-length inputs, so neither the
 * content nor the length of the expected key leaks through timing.
 */
export function apiKeyMatches(given: string | null | undefined, expected: string): boolean {
  if (!given) return false;
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
