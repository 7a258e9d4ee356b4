/** RFC 9457 problem details: the one error shape of the whole HTTP API. */
import { Type } from "@sinclair/typebox";
import { t } from "elysia";
import { AppError, type ErrorCode, type FieldError } from "../errors.ts";

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  bad_request: 400,
  validation: 422,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unavailable: 503,
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
  422: "Unprocessable Content",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export const ProblemSchema = t.Object(
  {
    type: t.String({ examples: ["about:blank"] }),
    title: t.String({ examples: ["Not Found"] }),
    status: Type.Integer({ examples: [404] }),
    detail: t.String({ examples: ["Pet with the matching ID was not found."] }),
    code: t.String({ description: "Stable machine-readable error code.", examples: ["not_found"] }),
    request_id: t.String(),
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
  code: ErrorCode,
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
  503: "A dependency (the database) is unavailable.",
};

/** The OpenAPI `response` entries for the given error statuses, each with its own description. */
export function problemResponses<S extends number>(...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      t.Object(ProblemSchema.properties, {
        description: RESPONSE_DESCRIPTIONS[s] ?? TITLES[s] ?? "Error",
      }),
    ]),
  ) as Record<S, typeof ProblemSchema>;
}

export { AppError };
