/**
 * Cross-cutting HTTP concerns, registered before every route: request ids, access logs, each
 * request's body-size limit, and the translation of every error into a problem response.
 */
import { Elysia } from "elysia";
import { AppError, type FieldError, RetryLaterError, UnauthorizedError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { InFlight } from "./in-flight.ts";
import { setBodyLimit } from "./parsers.ts";
import {
  invalidInput,
  type Problem,
  problem,
  problemFromAppError,
  problemResponse,
} from "./problem.ts";
import { VALUE_MESSAGE } from "./text-field.ts";

interface RequestState {
  id: string;
  startedAt: number;
  status?: number;
}

const INCOMING_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The path of a request URL without parsing the whole URL. */
export function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  const query = url.indexOf("?", start);
  return query === -1 ? url.slice(start) : url.slice(start, query);
}

export interface RequestContextOptions {
  logger: Logger;
  /**
   * Largest accepted body, by path. The body parsers enforce it (see parsers.ts), so it applies
   * after the auth guards and to the bytes that arrive, declared or chunked.
   */
  maxBodyBytes: (path: string) => number;
  inFlight: InFlight;
}

export function requestContext({ logger, maxBodyBytes, inFlight }: RequestContextOptions) {
  const states = new WeakMap<Request, RequestState>();
  const stateOf = (request: Request): RequestState => {
    let state = states.get(request);
    if (!state) {
      state = { id: crypto.randomUUID(), startedAt: performance.now() };
      states.set(request, state);
    }
    return state;
  };

  return new Elysia({ name: "request-context" })
    .onRequest(({ request, set }) => {
      inFlight.started();
      const incoming = request.headers.get("x-request-id");
      const state: RequestState = {
        id: incoming && INCOMING_ID.test(incoming) ? incoming : crypto.randomUUID(),
        startedAt: performance.now(),
      };
      states.set(request, state);
      set.headers["x-request-id"] = state.id;
      // Only noted here: checked now, a 413 would come before the auth guards' 401.
      setBodyLimit(request, maxBodyBytes(pathOf(request.url)));
    })
    .onError({ as: "global" }, ({ code, error, request }) => {
      const state = stateOf(request);
      // Elysia wraps whatever a body parser throws in its ParseError: ours carry an AppError.
      const appError =
        error instanceof AppError
          ? error
          : code === "PARSE" && error.cause instanceof AppError
            ? error.cause
            : undefined;
      let body: Problem;
      if (appError) {
        body = problemFromAppError(appError, state.id);
      } else if (code === "VALIDATION") {
        const fieldErrors = uniqueFieldErrors(
          error.all.map((e) => ({
            path: e.path || "/",
            message:
              customMessage(e.schema, e.value) ??
              ("summary" in e && e.summary ? e.summary : e.message),
          })),
        );
        body = problem("validation", invalidInput(error.type), state.id, fieldErrors);
      } else if (code === "PARSE") {
        body = problem("bad_request", "The request body could not be parsed.", state.id);
      } else if (code === "NOT_FOUND") {
        body = problem("not_found", "No such resource.", state.id);
      } else {
        logger.error("unhandled error", {
          request_id: state.id,
          err: error,
          stack: error instanceof Error ? error.stack : undefined,
        });
        body = problem("internal", `Internal error; quote request id ${state.id}.`, state.id);
      }
      state.status = body.status;
      const headers: Record<string, string> = { "x-request-id": state.id };
      if (appError instanceof UnauthorizedError && appError.challenge) {
        headers["www-authenticate"] = appError.challenge;
      }
      if (appError instanceof RetryLaterError) {
        headers["retry-after"] = String(appError.retryAfterSeconds);
      }
      return problemResponse(body, headers);
    })
    .onAfterResponse({ as: "global" }, ({ request, set }) => {
      inFlight.finished();
      const state = stateOf(request);
      logger.info("request", {
        request_id: state.id,
        method: request.method,
        path: pathOf(request.url),
        status: state.status ?? (typeof set.status === "number" ? set.status : 200),
        duration_ms: Math.round((performance.now() - state.startedAt) * 100) / 100,
      });
    });
}

/** Schemas may carry a readable `error` text (see pets.model.ts), or a function of the value. */
function customMessage(schema: unknown, value: unknown): string | undefined {
  const s = schema as { error?: unknown; [VALUE_MESSAGE]?: unknown } | undefined;
  const fromValue = s?.[VALUE_MESSAGE];
  if (typeof fromValue === "function") {
    const text = fromValue(value);
    if (typeof text === "string") return text;
  }
  return typeof s?.error === "string" ? s.error : undefined;
}

/**
 * TypeBox reports a missing field twice (required, then wrong type), which with a field's own
 * message reads as the same line twice: each (path, message) once.
 */
function uniqueFieldErrors(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.path}\u0000${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
