/** Registration, the OAuth2 token endpoint, and the current user. */
import { Elysia, t } from "elysia";
import { consumes } from "../http/openapi-tidy.ts";
import { jsonBody } from "../http/parsers.ts";
import { problemResponses } from "../http/problem-responses.ts";
import {
  RegisterSchema,
  TokenErrorSchema,
  TokenRequestSchema,
  TokenSchema,
  UserSchema,
} from "./auth.schemas.ts";
import type { AuthService } from "./auth.service.ts";
import { currentUser } from "./bearer.guard.ts";
import { type ClientAddress, clientAddressResolver } from "./client-address.ts";
import { type PasswordGrant, TokenRequestError, tokenRequestBody } from "./token-request.ts";

const ABUSE_LIMITS =
  "past a limit the answer is 429 with `Retry-After` (seconds), and 503 with `Retry-After` while the server has too many passwords to check. The limits and how the client address is found are in the README (Abuse protection).";

/** Either way of presenting a token, so Swagger UI offers both (log in, or paste a token). */
export const BEARER_SECURITY: Record<string, string[]>[] = [
  { OAuth2Password: [] },
  { BearerToken: [] },
];

/** The socket's peer, as Bun reports it; none for a request that came over no socket. */
type Server = { requestIP(request: Request): { address: string } | null } | null;

export interface AuthRoutesOptions {
  /** How to find a request's client address (TRUSTED_PROXIES); by default the socket's peer. */
  clientAddress?: ClientAddress;
}

export function authRoutes(auth: AuthService, options: AuthRoutesOptions = {}) {
  const clientAddress = options.clientAddress ?? clientAddressResolver();
  const client = (request: Request, server: Server) => ({
    address: clientAddress(request, server?.requestIP(request)?.address),
  });
  return new Elysia({ name: "auth", prefix: "/auth" })
    .post(
      "/register",
      async ({ body, set, request, server }) => {
        const user = await auth.register(body, client(request, server));
        set.status = 201;
        return user;
      },
      {
        parse: jsonBody,
        body: RegisterSchema,
        response: {
          201: UserSchema,
          ...problemResponses(
            { conflict: "username", parser: "json", body: RegisterSchema, hashes: "register" },
            400,
            409,
            413,
            415,
            422,
            429,
            503,
          ),
        },
        detail: {
          tags: ["auth"],
          summary: "Create a user",
          description: `Limited per client address before the password is hashed: ${ABUSE_LIMITS}`,
          ...consumes("application/json"),
        },
      },
    )
    .post(
      "/token",
      async ({ body, set, request, server }) => {
        // RFC 6749 §5.1: token answers, and the errors of §5.2 too, are never cached.
        set.headers["cache-control"] = "no-store";
        set.headers.pragma = "no-cache";
        const grant = body as PasswordGrant | TokenRequestError;
        if (grant instanceof TokenRequestError) {
          set.status = 400;
          return grant.toJSON();
        }
        const { token, expiresIn } = await auth.login(
          grant.username,
          grant.password,
          client(request, server),
        );
        return { access_token: token, token_type: "bearer" as const, expires_in: expiresIn };
      },
      {
        // No `body` schema: token-request.ts checks the request, so that what it refuses gets
        // OAuth2's error answer (400 below) instead of a 422 problem document.
        parse: tokenRequestBody,
        response: {
          200: TokenSchema,
          400: TokenErrorSchema,
          ...problemResponses(
            { auth: "password", parser: "token-request", hashes: "login" },
            401,
            413,
            415,
            429,
            503,
          ),
        },
        detail: {
          tags: ["auth"],
          summary: "Get an access token (OAuth2 password grant)",
          description:
            "Form-encoded as OAuth2 specifies; JSON is accepted too. Unknown parameters are ignored (RFC 6749 §3.2). A refused request is answered as OAuth2 specifies (400, `error` and `error_description`); wrong credentials are a 401 problem document. " +
            `Limited per client address and per username before the password is checked: ${ABUSE_LIMITS}`,
          requestBody: {
            required: true,
            content: { "application/x-www-form-urlencoded": { schema: TokenRequestSchema } },
          },
          ...consumes("application/x-www-form-urlencoded", "application/json"),
        },
      },
    )
    .get("/me", ({ request }) => currentUser(request), {
      response: { 200: UserSchema, ...problemResponses({ auth: "bearer" }, 401, 503) },
      detail: { tags: ["auth"], summary: "The current user", security: BEARER_SECURITY },
    })
    .delete(
      "/me",
      async ({ request, set }) => {
        await auth.deleteUser(currentUser(request).id);
        set.status = 204;
      },
      {
        response: {
          204: t.Void({ description: "Deleted." }),
          ...problemResponses({ auth: "bearer" }, 401, 503),
        },
        detail: {
          tags: ["auth"],
          summary: "Delete the current user",
          description: "Its tokens stop working.",
          security: BEARER_SECURITY,
        },
      },
    );
}
