/** Registration, the OAuth2 token endpoint, and the current user. */
import { Elysia, t } from "elysia";
import { consumes } from "../http/openapi-tidy.ts";
import { jsonBody, jsonOrFormBody } from "../http/parsers.ts";
import { problemResponses } from "../http/problem.ts";
import { RegisterSchema, TokenRequestSchema, TokenSchema, UserSchema } from "./auth.model.ts";
import type { AuthService } from "./auth.service.ts";
import { currentUser } from "./bearer.guard.ts";

/** Either way of presenting a token, so Swagger UI offers both (log in, or paste a token). */
export const BEARER_SECURITY: Record<string, string[]>[] = [
  { OAuth2Password: [] },
  { BearerToken: [] },
];

export function authRoutes(auth: AuthService) {
  return new Elysia({ name: "auth", prefix: "/auth" })
    .post(
      "/register",
      async ({ body, set }) => {
        set.status = 201;
        return auth.register(body);
      },
      {
        parse: jsonBody,
        body: RegisterSchema,
        response: { 201: UserSchema, ...problemResponses(400, 409, 413, 415, 422) },
        detail: { tags: ["auth"], summary: "Create a user", ...consumes("application/json") },
      },
    )
    .post(
      "/token",
      async ({ body, set }) => {
        const { token, expiresIn } = await auth.login(body.username, body.password);
        set.headers["cache-control"] = "no-store";
        return { access_token: token, token_type: "bearer" as const, expires_in: expiresIn };
      },
      {
        parse: jsonOrFormBody,
        body: TokenRequestSchema,
        response: { 200: TokenSchema, ...problemResponses(400, 401, 413, 415, 422) },
        detail: {
          tags: ["auth"],
          summary: "Get an access token (OAuth2 password grant)",
          description: "Form-encoded as OAuth2 specifies; JSON is accepted too.",
          ...consumes("application/x-www-form-urlencoded", "application/json"),
        },
      },
    )
    .get("/me", ({ request }) => currentUser(request), {
      response: { 200: UserSchema, ...problemResponses(401) },
      detail: { tags: ["auth"], summary: "The current user", security: BEARER_SECURITY },
    })
    .delete(
      "/me",
      async ({ request, set }) => {
        await auth.deleteUser(currentUser(request).id);
        set.status = 204;
      },
      {
        response: { 204: t.Void({ description: "Deleted." }), ...problemResponses(401) },
        detail: {
          tags: ["auth"],
          summary: "Delete the current user",
          description: "Its tokens stop working.",
          security: BEARER_SECURITY,
        },
      },
    );
}
