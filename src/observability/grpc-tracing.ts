/**
 * A server span per RPC (gRPC, gRPC-Web and Connect alike), child of the caller's W3C
 * `traceparent` metadata when it sends one; the call runs inside it. Installed only when tracing
 * is on.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { whenCallEnds } from "../grpc/observed-stream.ts";
import { grpcCodeLabel } from "./grpc-metrics.ts";
import type { Tracing } from "./tracing.ts";

/** Server-side failures, as OpenTelemetry's RPC conventions count them (not the caller's). */
const SERVER_ERRORS = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

export function grpcTracingInterceptor(tracing: Tracing): Interceptor {
  return (next) => async (req) => {
    const span: Span = tracing.tracer.startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "rpc.system": "grpc",
          "rpc.service": req.service.typeName,
          "rpc.method": req.method.name,
        },
      },
      tracing.extract(req.header),
    );
    const end = (err: unknown) => {
      const code = err ? ConnectError.from(err).code : undefined;
      span.setAttribute("rpc.grpc.status_code", code ?? 0);
      span.setAttribute("rpc.grpc.status", grpcCodeLabel(code));
      if (code !== undefined && SERVER_ERRORS.has(code)) {
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    };
    return context.with(trace.setSpan(context.active(), span), () => whenCallEnds(next(req), end));
  };
}
