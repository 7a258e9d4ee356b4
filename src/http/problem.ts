/** RFC 9457 problem details: the one error shape of the whole HTTP API. */
import { Type } from "@sinclair/typebox";
import { t } from "elysia";
import { AppError, type ErrorCode, type FieldError } from "../errors.ts";
import { mediaType, responseHeader } from "./openapi-tidy.ts";

/**
 * The `code` of a problem document: an AppError's, or one only HTTP has, as no other transport
 * stores or serves files: a full disk (507), a byte range outside a photo (416).
 */
export type ProblemCode =
  | ErrorCode
  | "insufficient_storage"
  | "method_not_allowed"
  | "range_not_satisfiable";

const STATUS_BY_CODE: Record<ProblemCode, number> = {
  bad_request: 400,
  validation: 422,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  too_many_requests: 429,
  unavailable: 503,
  insufficient_storage: 507,
  internal: 500,
};

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
  507: "Insufficient Storage",
};

/** The detail of a failed validation; `part` is where it failed: Elysia's `body`, `query`… */
export const invalidInput = (part: string) => `Invalid ${part}.`;
/** What the readiness probe answers when the database does not (see health.http.ts). */
export const DATABASE_UNAVAILABLE = "The database is not reachable.";
/** The `Retry-After` of a 503 for an unreachable database: soon, but not in a tight loop. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;
/** The `Retry-After` of a 503 for photo storage that refuses writes: an operator must act. */
export const STORAGE_RETRY_AFTER_SECONDS = 60;

// No examples here: each error response gets a whole example of its own (problemResponses).
export const ProblemSchema = t.Object(
  {
    type: t.String({ description: "Always `about:blank`: the status says what went wrong." }),
    title: t.String({ description: "The status' reason phrase." }),
    status: Type.Integer({ description: "The HTTP status code." }),
    detail: t.String({ description: "What went wrong, for a human." }),
    code: t.String({ description: "Stable machine-readable error code." }),
    request_id: t.String({ description: "Also in the `X-Request-Id` header and the logs." }),
    errors: t.Optional(
      t.Array(t.Object({ path: t.String(), message: t.String() }), {
        description: "Per-field problems, for validation errors.",
      }),
    ),
  },
  { title: "Problem", description: "RFC 9457 problem details." },
);

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  request_id: string;
  errors?: FieldError[];
}

export function problem(
  code: ProblemCode,
  detail: string,
  requestId: string,
  errors?: FieldError[],
): Problem {
  const status = STATUS_BY_CODE[code];
  return {
    type: "about:blank",
    title: TITLES[status] ?? "Error",
    status,
    detail,
    code,
    request_id: requestId,
    ...(errors && errors.length > 0 ? { errors } : {}),
  };
}

export function problemFromAppError(err: AppError, requestId: string): Problem {
  return problem(err.code, err.message, requestId, err.fieldErrors);
}

export function problemResponse(body: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

const RESPONSE_DESCRIPTIONS: Record<number, string> = {
  400: "The body could not be parsed (malformed JSON or multipart).",
  401: "Missing or wrong credentials.",
  404: "No such resource.",
  409: "Conflicts with the current state.",
  413: "The body or the file is too large.",
  415: "Unsupported content type or file type.",
  422: "The request failed validation; `errors` lists each problem.",
  429: "Too many attempts: wait the `Retry-After` seconds before trying again.",
  503: "Unavailable for now (the database, photo storage, or too busy): retry after `Retry-After` seconds.",
  507: "No room left to store the file.",
};

/** An error response as the OpenAPI document shows it: what it means, and one real example. */
export interface DocumentedProblem {
  code: ProblemCode;
  detail: string;
  errors?: FieldError[];
  /** The `WWW-Authenticate` challenge the response carries. */
  challenge?: string | undefined;
  /** An example of the `Retry-After` (seconds) the response carries. */
  retryAfter?: string | undefined;
}

/** Only an example: the real one is the request's own id. */
const EXAMPLE_REQUEST_ID = "0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10";

/**
 * The response schema of one documented error, built as request-context.ts builds the answer.
 * (Routes use problemResponses in problem-responses.ts, which picks the examples.)
 */
export function problemResponseSchema({
  code,
  detail,
  errors,
  challenge,
  retryAfter,
}: DocumentedProblem) {
  const status = STATUS_BY_CODE[code];
  return t.Object(ProblemSchema.properties, {
    description: RESPONSE_DESCRIPTIONS[status] ?? TITLES[status] ?? "Error",
    examples: [problem(code, detail, EXAMPLE_REQUEST_ID, errors)],
    ...mediaType("application/problem+json"),
    ...(challenge && responseHeader("WWW-Authenticate", challenge)),
    ...(retryAfter && responseHeader("Retry-After", retryAfter)),
  });
}

export { AppError };
