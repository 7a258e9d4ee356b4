/** The pets registry's shared-secret API key. */
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * A checker for one expected key. It compares in constant time: hashing both sides first gives
 * equal-length inputs, so neither the content nor the length of the key leaks through timing.
 * The expected key is hashed once, not per request.
 */
export function apiKeyChecker(expected: string): (given: string | null | undefined) => boolean {
  const expectedDigest = digest(expected);
  return (given) => Boolean(given) && timingSafeEqual(digest(given as string), expectedDigest);
}
