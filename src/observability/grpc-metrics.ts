/**
 * The gRPC server metrics under the names of go-grpc-prometheus / grpc-ecosystem, which existing
 * dashboards and alerts use: started, handled by code, handling time. One Connect interceptor, so
 * gRPC, gRPC-Web and Connect calls are all counted. It runs outermost: it sees the code the
 * caller really gets, after the application errors were translated.
 */
import { Code, type Interceptor } from "@connectrpc/connect";
import { endCode, whenCallEnds } from "../grpc/observed-stream.ts";
import type { Metrics } from "./metrics.ts";

type GrpcType = "unary" | "client_stream" | "server_stream" | "bidi_stream";

const GRPC_TYPES: Record<string, GrpcType> = {
  unary: "unary",
  client_streaming: "client_stream",
  server_streaming: "server_stream",
  bidi_streaming: "bidi_stream",
};

/** `OK`, `NotFound`, `InvalidArgument`…: the spelling of Go's codes.Code, as dashboards expect. */
export function grpcCodeLabel(code: Code | undefined): string {
  return code === undefined ? "OK" : Code[code];
}

export function grpcMetricsInterceptor(metrics: Metrics): Interceptor {
  const { started, handled, handling } = metrics.grpc;
  return (next) => (req) => {
    const type = GRPC_TYPES[req.method.methodKind] ?? "unary";
    const service = req.service.typeName;
    const method = req.method.name;
    const labels = [type, service, method];
    started.inc(labels);
    const startedAt = performance.now();
    const end = (err: unknown) => {
      handled.inc([type, service, method, grpcCodeLabel(endCode(req, err))]);
      handling.observe(labels, (performance.now() - startedAt) / 1000);
    };
    return whenCallEnds(next(req), end);
  };
}

/**
 * A unary call that Connect ended before any interceptor ran (a message it could not read whole
 * or decode, a client gone mid-request: grpc/decode-errors.ts), counted as the interceptor counts
 * the others, so that grpc_server_handled_total holds every call.
 */
export function countCallBeforeInterceptors(
  metrics: Metrics,
  call: { service: string; method: string; code: Code | undefined; seconds: number },
): void {
  const { started, handled, handling } = metrics.grpc;
  const labels = ["unary", call.service, call.method] as const;
  started.inc([...labels]);
  handled.inc([...labels, grpcCodeLabel(call.code)]);
  handling.observe([...labels], call.seconds);
}
