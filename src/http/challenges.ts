/**
 * RFC 9110 §11.6.1: a 401 carries a challenge naming the scheme the client should use. The
 * domain says which credential was missing or wrong (UnauthorizedError's `credential`); HTTP
 * words it here.
 */
import type { Credential } from "../errors.ts";

/**
 * API keys have no registered scheme, so this one names its own and says where the key goes;
 * browsers show no login dialog for an unknown scheme.
 */
export const API_KEY_CHALLENGE = 'ApiKey realm="petbooks", header="X-API-KEY"';
export const BEARER_CHALLENGE = 'Bearer realm="petbooks"';
export const METRICS_CHALLENGE = 'Bearer realm="petbooks-metrics"';

const CHALLENGES: Record<Credential, string> = {
  "api-key": API_KEY_CHALLENGE,
  bearer: BEARER_CHALLENGE,
  // RFC 6750 §3.1: a token was sent, and it is not one this server accepts.
  "invalid-bearer": `${BEARER_CHALLENGE}, error="invalid_token"`,
  "metrics-token": METRICS_CHALLENGE,
};

export function challengeFor(credential: Credential): string {
  return CHALLENGES[credential];
}
