/**
 * Who may call BookService. With GRPC_AUTH=bearer (the default) a call carries the REST API's
 * bearer token in its `authorization` metadata (`Bearer <token>`, the same header in gRPC,
 * gRPC-Web and Connect), checked exactly as the REST bearer guard checks it: signature, claims,
 * and that its user still exists. Otherwise the call is UNAUTHENTICATED. GRPC_AUTH=none serves
 * BookService to anyone, for a trusted private network. Health and reflection are always open:
 * load balancers and tools call them without credentials.
 *
 * The check comes before the request message is looked at: Connect decodes a unary request
 * before any interceptor runs, so decode-errors.ts starts the check as the call arrives and
 * answers an unauthenticated caller UNAUTHENTICATED even when its message cannot be decoded.
 */
import { type ContextValues, createContextKey } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";

export type GrpcAuth =
  | { mode: "none" }
  | {
      mode: "bearer";
      /** Resolves for a valid `Authorization` value; rejects (UnauthorizedError) otherwise. */
      authenticate(authorization: string | null): Promise<unknown>;
    };

/**
 * The services open to anyone: health and reflection, what load balancers and tools ask. Every
 * other service needs a token, so a feature's new service is protected without a word said.
 */
const OPEN = new Set<string>([
  Health.typeName,
  ServerReflection.typeName,
  ServerReflectionV1Alpha.typeName,
]);

/** Why the caller may not make this call (what authenticate threw), or undefined if it may. */
type AuthCheck = Promise<unknown>;

/** The check of the current call, once started, so that it runs once per call. */
const AUTH_CHECK = createContextKey<AuthCheck | undefined>(undefined, {
  description: "the caller's authentication",
});

/**
 * The authentication of a call with these headers, started once: the first caller (decode-errors.ts
 * for a unary call, or serveCalls in interceptors.ts) starts it, the others wait for the same answer.
 */
export function authCheck(
  auth: GrpcAuth,
  serviceTypeName: string,
  header: Headers,
  values: ContextValues,
): AuthCheck {
  if (auth.mode === "none" || OPEN.has(serviceTypeName)) return Promise.resolve(undefined);
  let check = values.get(AUTH_CHECK);
  if (!check) {
    check = auth.authenticate(header.get("authorization")).then(
      () => undefined,
      (err: unknown) => err ?? new Error("authentication failed"),
    );
    values.set(AUTH_CHECK, check);
  }
  return check;
}
