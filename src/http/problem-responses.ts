/**
 * The documented error responses of each route, with examples made of the texts the code really
 * answers with. Only route files import this: it knows every feature's texts.
 */
import type { TObject } from "@sinclair/typebox";
import { BEARER_TOKEN_REQUIRED, USERNAME_TAKEN, WRONG_CREDENTIALS } from "../auth/auth.service.ts";
import { HASHING_BUSY } from "../auth/hash-queue.ts";
import { ADDRESS_LIMITED, USERNAME_LIMITED } from "../auth/rate-limit.ts";
import { TOKEN_BODY_REQUIRED } from "../auth/token-request.ts";
import { BOOK_NOT_FOUND } from "../books/books.model.ts";
import { DEFAULT_MAX_PHOTO_BYTES } from "../config.ts";
import { API_KEY_REQUIRED, type FieldError } from "../errors.ts";
import { PET_NOT_FOUND } from "../pets/pets.model.ts";
import { PHOTO_TYPE_UNSUPPORTED, photoTooLarge } from "../pets/pets.service.ts";
import { STORAGE_FULL } from "../storage/storage-errors.ts";
import { API_KEY_CHALLENGE, BEARER_CHALLENGE } from "./challenges.ts";
import { MAX_JSON_BODY_BYTES } from "./limits.ts";
import { bodyTooLarge, INVALID_JSON, INVALID_MULTIPART, JSON_REQUIRED } from "./parsers.ts";
import {
  DATABASE_RETRY_AFTER_SECONDS,
  DATABASE_UNAVAILABLE,
  type DocumentedProblem,
  invalidInput,
  type ProblemCode,
  type ProblemSchema,
  problemResponseSchema,
} from "./problem.ts";
import { unknownParameter } from "./query.ts";

/**
 * What a route's errors are made of. Give what its statuses need: 401 `auth`, 404 `resource`,
 * 409 `conflict`, 400/413/415 `parser`, 422 `body` or `query`.
 */
export interface ProblemRoute {
  /** The credentials it checks: a guard's, or the password login's. */
  auth?: "api-key" | "bearer" | "password";
  /** What it looks up by id. */
  resource?: "pet" | "book";
  /** What may already exist. */
  conflict?: "username";
  /**
   * How it reads its body: `jsonBody` (parsers.ts), `photoUploadBody` (storage/photo-upload.ts)
   * or `tokenRequestBody` (token-request.ts).
   */
  parser?: "json" | "photo" | "token-request";
  /** Its validated body; the 422 example shows its first field with a message of its own. */
  body?: TObject;
  /** Its validated query, likewise. */
  query?: TObject;
  /**
   * It hashes a password: limited per address (and a login per username too), 429; too many
   * passwords to check at once, 503. Both with Retry-After.
   */
  hashes?: "register" | "login";
}

/** 503 is the database's (or, for `hashes`, the hashing queue's); 507 needs `parser: "photo"`. */
export type ProblemStatus = 400 | 401 | 404 | 409 | 413 | 415 | 422 | 429 | 503 | 507;

const UNAUTHORIZED = {
  "api-key": { detail: API_KEY_REQUIRED, challenge: API_KEY_CHALLENGE },
  bearer: { detail: BEARER_TOKEN_REQUIRED, challenge: BEARER_CHALLENGE },
  password: { detail: WRONG_CREDENTIALS, challenge: BEARER_CHALLENGE },
} satisfies Record<NonNullable<ProblemRoute["auth"]>, { detail: string; challenge?: string }>;
/** What each parser answers with 400, 413 and 415. */
const PARSERS = {
  json: {
    400: INVALID_JSON,
    413: bodyTooLarge(MAX_JSON_BODY_BYTES),
    415: JSON_REQUIRED,
  },
  photo: {
    400: INVALID_MULTIPART,
    // The photo limit is configurable (MAX_PHOTO_BYTES): its example shows the default.
    413: photoTooLarge(DEFAULT_MAX_PHOTO_BYTES),
    415: PHOTO_TYPE_UNSUPPORTED,
  },
  // Its 400 is OAuth2's own answer, which the route documents itself.
  "token-request": {
    400: undefined,
    413: bodyTooLarge(MAX_JSON_BODY_BYTES),
    415: TOKEN_BODY_REQUIRED,
  },
} satisfies Record<
  NonNullable<ProblemRoute["parser"]>,
  Record<400 | 413 | 415, string | undefined>
>;
const NOT_FOUND = { pet: PET_NOT_FOUND, book: BOOK_NOT_FOUND } satisfies Record<
  NonNullable<ProblemRoute["resource"]>,
  string
>;
const CONFLICT = { username: USERNAME_TAKEN } satisfies Record<
  NonNullable<ProblemRoute["conflict"]>,
  string
>;

/** The first field of a request schema with its own message (`error`, see request-context.ts). */
function firstFieldError(schema: TObject): FieldError | undefined {
  for (const [name, field] of Object.entries(schema.properties)) {
    const message = (field as { error?: unknown }).error;
    if (typeof message === "string") return { path: `/${name}`, message };
  }
  return undefined;
}

function validationProblem(route: ProblemRoute): DocumentedProblem | undefined {
  const { body, query } = route;
  const [part, schema] = body ? ["body", body] : query ? ["query", query] : [];
  // A query whose fields have no message of their own: a parameter the route does not take.
  const unknown = { path: "/unknown", message: unknownParameter("unknown") };
  const field = schema && (firstFieldError(schema) ?? (part === "query" ? unknown : undefined));
  if (!part || !field) return undefined;
  return { code: "validation", detail: invalidInput(part), errors: [field] };
}

/** What this route answers with this status, or undefined when `route` does not say. */
function documentedProblem(
  status: ProblemStatus,
  route: ProblemRoute,
): DocumentedProblem | undefined {
  const parser = route.parser && PARSERS[route.parser];
  const of = (code: ProblemCode, detail: string | undefined): DocumentedProblem | undefined =>
    detail === undefined ? undefined : { code, detail };
  switch (status) {
    case 400:
      return of("bad_request", parser?.[400]);
    case 401:
      return route.auth && { code: "unauthorized", ...UNAUTHORIZED[route.auth] };
    case 404:
      return of("not_found", route.resource && NOT_FOUND[route.resource]);
    case 409:
      return of("conflict", route.conflict && CONFLICT[route.conflict]);
    case 413:
      return of("payload_too_large", parser?.[413]);
    case 415:
      return of("unsupported_media_type", parser?.[415]);
    case 422:
      return validationProblem(route);
    case 429:
      return (
        route.hashes && {
          code: "too_many_requests",
          detail: route.hashes === "login" ? USERNAME_LIMITED : ADDRESS_LIMITED,
          retryAfter: "60",
        }
      );
    case 503:
      return route.hashes
        ? { code: "unavailable", detail: HASHING_BUSY, retryAfter: "5" }
        : {
            code: "unavailable",
            detail: DATABASE_UNAVAILABLE,
            retryAfter: String(DATABASE_RETRY_AFTER_SECONDS),
          };
    case 507:
      return of("insufficient_storage", route.parser === "photo" ? STORAGE_FULL : undefined);
  }
}

/**
 * The OpenAPI `response` entries for the given error statuses: each with its own description and
 * an example of what this route answers (401s also with their `WWW-Authenticate` challenge, 429s
 * and 503s with their `Retry-After`).
 */
export function problemResponses<S extends ProblemStatus>(route: ProblemRoute, ...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((status) => {
      const documented = documentedProblem(status, route);
      if (!documented) {
        // Fails when the app is built, so in every test.
        throw new Error(`problemResponses: ${status} needs more than ${Object.keys(route)}`);
      }
      return [status, problemResponseSchema(documented)];
    }),
  ) as Record<S, typeof ProblemSchema>;
}
