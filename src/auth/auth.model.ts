/** Users and tokens: request/response schemas. */
import { type Static, t } from "elysia";

export const USERNAME_PATTERN = "^[A-Za-z0-9_.-]{3,50}$";

export const RegisterSchema = t.Object(
  {
    username: t.String({
      pattern: USERNAME_PATTERN,
      description: "3 to 50 of `A-Z a-z 0-9 _ . -`; unique regardless of case.",
      examples: ["ada"],
      error: "username must be 3 to 50 characters of A-Z, a-z, 0-9, _, . or -",
    }),
    password: t.String({
      minLength: 8,
      maxLength: 128,
      examples: ["correct horse battery staple"],
      error: "password must be 8 to 128 characters",
    }),
  },
  { additionalProperties: false },
);
export type Registration = Static<typeof RegisterSchema>;

export const UserSchema = t.Object(
  {
    id: t.String({ format: "uuid" }),
    username: t.String(),
    created_at: t.String({ description: "UTC, RFC 3339.", examples: ["2026-11-23T21:58:42Z"] }),
  },
  { description: "A user (never the password or its hash)." },
);
export type User = Static<typeof UserSchema>;

/** OAuth2 password grant, as OAuth2 clients and Swagger UI send it (form or JSON). */
export const TokenRequestSchema = t.Object({
  grant_type: t.Optional(t.UnionEnum(["password"], { error: "grant_type must be password" })),
  username: t.String({ maxLength: 200, error: "username is required" }),
  password: t.String({ maxLength: 1000, error: "password is required" }),
  scope: t.Optional(t.String()),
  client_id: t.Optional(t.String()),
  client_secret: t.Optional(t.String()),
});

export const TokenSchema = t.Object(
  {
    access_token: t.String(),
    token_type: t.UnionEnum(["bearer"]),
    expires_in: t.Integer({ description: "Seconds until the token expires." }),
  },
  { description: "An access token for the `Authorization: Bearer` header." },
);
