/** The auth routes' schemas, built from the domain's shapes (auth.model.ts). */
import { type Static, t } from "elysia";
import type { SameShape } from "../http/schema-shape.ts";
import { type Registration, USERNAME_PATTERN, type User } from "./auth.model.ts";
import { PasswordField } from "./password-policy.ts";
import { TOKEN_PASSWORD_MAX_LENGTH, TOKEN_USERNAME_MAX_LENGTH } from "./token-request.ts";

export const RegisterSchema = t.Object(
  {
    username: t.String({
      pattern: USERNAME_PATTERN,
      description: "3 to 50 of `A-Z a-z 0-9 _ . -`; unique regardless of case.",
      examples: ["ada"],
      error: "username must be 3 to 50 characters of A-Z, a-z, 0-9, _, . or -",
    }),
    password: PasswordField({ examples: ["correct horse battery staple"] }),
  },
  { additionalProperties: false },
);

export const UserSchema = t.Object(
  {
    id: t.String({ format: "uuid" }),
    username: t.String(),
    created_at: t.String({ description: "UTC, RFC 3339.", examples: ["2026-11-23T21:58:42Z"] }),
  },
  { description: "A user (never the password or its hash)." },
);

/**
 * OAuth2 password grant, as OAuth2 clients and Swagger UI send it (form or JSON). For the
 * OpenAPI document only: token-request.ts checks the request, so that what it refuses gets
 * OAuth2's own error answer (TokenErrorSchema) rather than a problem document.
 */
export const TokenRequestSchema = t.Object({
  grant_type: t.Literal("password"),
  username: t.String({ minLength: 1, maxLength: TOKEN_USERNAME_MAX_LENGTH }),
  password: t.String({ minLength: 1, maxLength: TOKEN_PASSWORD_MAX_LENGTH }),
  scope: t.Optional(t.String({ description: "Accepted and ignored." })),
  client_id: t.Optional(t.String({ description: "Accepted and ignored." })),
  client_secret: t.Optional(t.String({ description: "Accepted and ignored." })),
});

/** RFC 6749 §5.2: how the token endpoint refuses a request it cannot take. */
export const TokenErrorSchema = t.Object(
  {
    error: t.UnionEnum(["invalid_request", "unsupported_grant_type"]),
    error_description: t.String(),
  },
  {
    description:
      "OAuth2's error answer (RFC 6749 §5.2), `application/json`: a missing, repeated or malformed parameter is `invalid_request`, a grant type other than `password` `unsupported_grant_type`.",
    examples: [
      {
        error: "unsupported_grant_type",
        error_description: "Only the password grant is supported (grant_type=password).",
      },
    ],
  },
);

export const TokenSchema = t.Object(
  {
    access_token: t.String(),
    token_type: t.UnionEnum(["bearer"]),
    expires_in: t.Integer({ description: "Seconds until the token expires." }),
  },
  { description: "An access token for the `Authorization: Bearer` header." },
);

// What the routes validate and document is what the domain declares.
true satisfies SameShape<Static<typeof RegisterSchema>, Registration>;
true satisfies SameShape<Static<typeof UserSchema>, User>;
