/**
 * A server span per HTTP request, child of the caller's W3C `traceparent` when it sends one. The
 * whole handling runs inside the span's context (Elysia's `wrap`), so spans and log lines made
 * while answering belong to it. Installed only when tracing is on.
 */
import { context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
} from "@opentelemetry/semantic-conventions";
import { Elysia } from "elysia";
import { pathOf } from "../http/request-context.ts";
import { type FetchHandler, whenAnswered } from "../http/when-answered.ts";
import { exceptionOf } from "../redact.ts";
import type { Tracing } from "./tracing.ts";

export function httpTracing(tracing: Tracing | undefined) {
  const plugin = new Elysia({ name: "http-tracing" });
  if (!tracing) return plugin;
  const spans = new WeakMap<Request, Span>();
  const finish = (span: Span, response: Response | undefined, err?: unknown) => {
    const status = response?.status ?? 500;
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    if (err) span.recordException(exceptionOf(err));
    if (status >= 500 || err) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  };
  const traced = (handle: FetchHandler) => (request: Request) => {
    const span = tracing.tracer.startSpan(
      request.method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: request.method,
          [ATTR_URL_PATH]: pathOf(request.url),
        },
      },
      tracing.extract(request.headers),
    );
    spans.set(request, span);
    return whenAnswered(
      () => context.with(trace.setSpan(context.active(), span), () => handle(request)),
      (response, err) => finish(span, response, err),
    );
  };
  // Elysia calls this around its whole fetch handler: routing, hooks, handler and errors.
  plugin.wrap(traced as never);
  // Once routed: the span is named after the route template, as the conventions ask.
  plugin.onTransform({ as: "global" }, ({ request, route }) => {
    const span = spans.get(request);
    if (!span || !route) return;
    span.updateName(`${request.method} ${route}`);
    span.setAttribute(ATTR_HTTP_ROUTE, route);
  });
  return plugin;
}
