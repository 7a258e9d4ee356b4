/**
 * Cross-cutting HTTP concerns, registered before every route: request ids, security headers,
 * CORS (preflights answered here, before the auth guards), access logs, each request's body-size
 * limit, and the translation of every error into a problem response.
 */
import { Elysia } from "elysia";
import { isDatabaseOutage, logDatabaseOutage } from "../db/errors.ts";
import { AppError, type FieldError, RetryLaterError, UnauthorizedError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { RequestObserver } from "../observability/http-metrics.ts";
import { stackFrames } from "../redact.ts";
import {
  STORAGE_FULL,
  STORAGE_UNWRITABLE,
  StorageFullError,
  StorageUnwritableError,
} from "../storage/storage-errors.ts";
import { challengeFor } from "./challenges.ts";
import type { Cors } from "./cors.ts";
import type { InFlight } from "./in-flight.ts";
import { setBodyLimit } from "./parsers.ts";
import {
  DATABASE_RETRY_AFTER_SECONDS,
  DATABASE_UNAVAILABLE,
  invalidInput,
  type Problem,
  problem,
  problemFromAppError,
  problemResponse,
  STORAGE_RETRY_AFTER_SECONDS,
} from "./problem.ts";
import { schemaMessage } from "./schema-message.ts";
import { SECURITY_HEADERS } from "./security-headers.ts";
import { type FetchHandler, whenAnswered } from "./when-answered.ts";

interface RequestState {
  id: string;
  startedAt: number;
  /** The matched route's template, once routed; none: no route matched. */
  route?: string | undefined;
  /** What the handler returned, for the size of the answer (metrics). */
  value?: unknown;
  /** A CORS preflight, answered before routing: no route to label it with, so not measured. */
  preflight?: boolean;
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
  /** CORS_ORIGINS' policy (cors.ts); none: no CORS header at all. */
  cors?: Cors | undefined;
  /** Told of every finished request (metrics); none: nothing is recorded. */
  observe?: RequestObserver | undefined;
  /** The methods a path's routes answer (allowed-methods.ts), for a 405; none: 404s only. */
  allowedMethods?: ((path: string) => string[]) | undefined;
}

export function requestContext({
  logger,
  maxBodyBytes,
  inFlight,
  cors,
  observe,
  allowedMethods,
}: RequestContextOptions) {
  const states = new WeakMap<Request, RequestState>();
  const stateOf = (request: Request): RequestState => {
    let state = states.get(request);
    if (!state) {
      state = { id: crypto.randomUUID(), startedAt: performance.now() };
      states.set(request, state);
    }
    return state;
  };
  const logsRequests = logger.enabled("info");
  /**
   * The request's end: its answer is made, or its handling failed (`response` undefined). The
   * answer goes out whatever the log and the metrics do.
   */
  const finished = (request: Request, response: Response | undefined) => {
    inFlight.finished();
    const state = stateOf(request);
    const status = response?.status ?? 500;
    try {
      if (logsRequests) {
        logger.info("request", {
          request_id: state.id,
          method: request.method,
          path: pathOf(request.url),
          status,
          duration_ms: Math.round((performance.now() - state.startedAt) * 100) / 100,
        });
      }
      if (!state.preflight) {
        observe?.(request, state.route, status, state.startedAt, state.value ?? response);
      }
    } catch {
      // Nothing to tell: the log itself is what failed, or the metrics, which cannot log.
    }
  };

  /**
   * Wrapped around Elysia's whole fetch handler, so every answer ends in `finished`, those made
   * in onRequest included. Not onAfterResponse: Elysia schedules that with setImmediate and an
   * async closure per request, about 4 of the 15 µs of CPU the app spent on a GET /pets
   * (measured in process, the database's answers canned).
   */
  const endsEveryRequest = (handle: FetchHandler) => (request: Request) =>
    whenAnswered(
      () => handle(request),
      (response) => finished(request, response),
    );

  // Elysia starts every request's headers as a copy of SECURITY_HEADERS: errors, 404s and photos
  // carry them too.
  return new Elysia({ name: "request-context" })
    .headers(SECURITY_HEADERS)
    .wrap(endsEveryRequest as never)
    .onRequest(({ request, set }) => {
      inFlight.started();
      const incoming = request.headers.get("x-request-id");
      const state: RequestState = {
        id: incoming && INCOMING_ID.test(incoming) ? incoming : crypto.randomUUID(),
        startedAt: performance.now(),
      };
      states.set(request, state);
      // Set before anything can fail: Elysia adds it to whatever answers, errors included.
      set.headers["x-request-id"] = state.id;
      if (cors) {
        Object.assign(set.headers, cors.headers(request.headers.get("origin")));
        if (cors.isAllowedPreflight(request)) {
          // A preflight carries no credentials, so it is answered before the auth guards.
          Object.assign(set.headers, cors.preflightHeaders());
          state.preflight = true;
          return new Response(null, { status: 204 });
        }
      }
      // Only noted here: checked now, a 413 would come before the auth guards' 401. GET and HEAD
      // bodies are never read.
      if (request.method !== "GET" && request.method !== "HEAD") {
        setBodyLimit(request, maxBodyBytes(pathOf(request.url)));
      }
    })
    .onAfterHandle({ as: "global" }, ({ request, route, responseValue }) => {
      const state = stateOf(request);
      state.route = route;
      state.value = responseValue;
    })
    .onError({ as: "global" }, ({ code, error, request, route }) => {
      const state = stateOf(request);
      state.route = route;
      // The answer is now a problem document, not what a handler may have returned.
      state.value = undefined;
      // Elysia wraps whatever a body parser throws in its ParseError: ours carry an AppError.
      const appError =
        error instanceof AppError
          ? error
          : code === "PARSE" && error.cause instanceof AppError
            ? error.cause
            : undefined;
      let body: Problem;
      let retryAfterSeconds: number | undefined;
      let allow: string[] = [];
      if (appError) {
        body = problemFromAppError(appError, state.id);
      } else if (code === "VALIDATION") {
        const fieldErrors = uniqueFieldErrors(
          error.all.map((e) => ({
            path: e.path || "/",
            message:
              schemaMessage(e.schema, e.value) ??
              ("summary" in e && e.summary ? e.summary : e.message),
          })),
        );
        body = problem("validation", invalidInput(error.type), state.id, fieldErrors);
      } else if (code === "PARSE") {
        body = problem("bad_request", "The request body could not be parsed.", state.id);
      } else if (code === "NOT_FOUND") {
        allow = allowedMethods?.(pathOf(request.url)) ?? [];
        // Routed by Elysia, a method it lists would have been answered: trust the 404 then.
        if (allow.includes(request.method)) allow = [];
        body =
          allow.length > 0
            ? problem(
                "method_not_allowed",
                `${request.method} is not allowed here; this resource allows ${allow.join(", ")}.`,
                state.id,
              )
            : problem("not_found", "No such resource.", state.id);
      } else if (isDatabaseOutage(error)) {
        // Fast (DATABASE_TIMEOUT_MS bounds every wait), and the client is told when to come back.
        logDatabaseOutage(logger, error, { request_id: state.id });
        body = problem("unavailable", DATABASE_UNAVAILABLE, state.id);
        retryAfterSeconds = DATABASE_RETRY_AFTER_SECONDS;
      } else if (error instanceof StorageFullError) {
        logger.error("photo storage is full", { request_id: state.id, err: error });
        body = problem("insufficient_storage", STORAGE_FULL, state.id);
      } else if (error instanceof StorageUnwritableError) {
        logger.error("photo storage cannot be written", { request_id: state.id, err: error });
        body = problem("unavailable", STORAGE_UNWRITABLE, state.id);
        retryAfterSeconds = STORAGE_RETRY_AFTER_SECONDS;
      } else {
        logger.error("unhandled error", {
          request_id: state.id,
          err: error,
          stack: stackFrames(error),
        });
        body = problem("internal", `Internal error; quote request id ${state.id}.`, state.id);
      }
      const headers: Record<string, string> = { "x-request-id": state.id };
      if (appError instanceof UnauthorizedError && appError.credential) {
        headers["www-authenticate"] = challengeFor(appError.credential);
      }
      if (appError instanceof RetryLaterError) retryAfterSeconds = appError.retryAfterSeconds;
      if (retryAfterSeconds !== undefined) headers["retry-after"] = String(retryAfterSeconds);
      if (allow.length > 0) headers.allow = allow.join(", ");
      return problemResponse(body, headers);
    });
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
