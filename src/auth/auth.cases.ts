/**
 * Test cases of the auth routes, iterated by the unit tests beside the code and by the contract
 * tests of the compiled binary alike: bodies for register and the token endpoint, and forged or
 * odd bearer tokens (each refused, whoever signed it).
 */
import { createHmac } from "node:crypto";

const b64url = (value: unknown) => b64urlText(JSON.stringify(value));
const b64urlText = (json: string) => Buffer.from(json).toString("base64url");
const HS256_HEADER = { alg: "HS256", typ: "JWT" };

/** A JWS signed with HMAC over exactly the header and claims given (no library checks them). */
export function signedToken(
  secret: string,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = HS256_HEADER,
  algorithm: "sha256" | "sha512" = "sha256",
): string {
  return signedJson(secret, JSON.stringify(claims), JSON.stringify(header), algorithm);
}

/** The same over JSON texts as written, for what an object cannot hold (a key given twice). */
function signedJson(
  secret: string,
  claims: string,
  header = JSON.stringify(HS256_HEADER),
  algorithm: "sha256" | "sha512" = "sha256",
): string {
  const input = `${b64urlText(header)}.${b64urlText(claims)}`;
  return `${input}.${createHmac(algorithm, secret).update(input).digest("base64url")}`;
}

export interface TokenCaseContext {
  /** The secret the server signs with. */
  secret: string;
  /** A user that exists, so only the token itself can be the reason for a refusal. */
  userId: string;
  /** The server's time, in seconds. */
  now: number;
}

const YEAR = 365 * 86400;

export const FORGED_TOKENS: Record<string, (c: TokenCaseContext) => string> = {
  "sub not a UUID": (c) => signedToken(c.secret, { sub: "admin", iat: c.now, exp: c.now + 60 }),
  "sub with a NUL": (c) =>
    signedToken(c.secret, { sub: `${c.userId.slice(0, -1)}\u0000`, iat: c.now, exp: c.now + 60 }),
  "sub a number": (c) => signedToken(c.secret, { sub: 42, iat: c.now, exp: c.now + 60 }),
  "iat a year in the future": (c) =>
    signedToken(c.secret, { sub: c.userId, iat: c.now + YEAR, exp: c.now + YEAR + 60 }),
  "exp 1e300": (c) => signedToken(c.secret, { sub: c.userId, iat: c.now, exp: 1e300 }),
  "exp a year after iat": (c) =>
    signedToken(c.secret, { sub: c.userId, iat: c.now, exp: c.now + YEAR }),
  "exp a fraction": (c) => signedToken(c.secret, { sub: c.userId, iat: c.now, exp: c.now + 60.5 }),
  "iat a string": (c) =>
    signedToken(c.secret, { sub: c.userId, iat: String(c.now), exp: c.now + 60 }),
  "no iat": (c) => signedToken(c.secret, { sub: c.userId, exp: c.now + 60 }),
  "no exp": (c) => signedToken(c.secret, { sub: c.userId, iat: c.now }),
  expired: (c) => signedToken(c.secret, { sub: c.userId, iat: c.now - 120, exp: c.now - 60 }),
  "an extra claim": (c) =>
    signedToken(c.secret, { sub: c.userId, iat: c.now, exp: c.now + 60, admin: true }),
  "alg none": (c) =>
    `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ sub: c.userId, iat: c.now, exp: c.now + 60 })}.`,
  "alg none with a real signature": (c) => {
    const [, claims, signature] = signedToken(c.secret, {
      sub: c.userId,
      iat: c.now,
      exp: c.now + 60,
    }).split(".");
    return `${b64url({ alg: "none", typ: "JWT" })}.${claims}.${signature}`;
  },
  "HS512 with the same secret": (c) =>
    signedToken(
      c.secret,
      { sub: c.userId, iat: c.now, exp: c.now + 60 },
      { alg: "HS512", typ: "JWT" },
      "sha512",
    ),
  // The same bytes in another base64url spelling: the 43rd character of an HS256 signature
  // carries 4 bits of it and 2 spare ones, which a lenient decoder ignores.
  "the signature spelled another way (its spare bits set)": (c) => {
    const token = signedToken(c.secret, { sub: c.userId, iat: c.now, exp: c.now + 60 });
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(token.slice(-1));
    return `${token.slice(0, -1)}${alphabet[last ^ 0b11]}`;
  },
  "a padded signature": (c) =>
    `${signedToken(c.secret, { sub: c.userId, iat: c.now, exp: c.now + 60 })}=`,
  "a wrong signature": (c) =>
    signedToken(`${c.secret}-not`, { sub: c.userId, iat: c.now, exp: c.now + 60 }),
  "a tampered payload": (c) => {
    const [header, , signature] = signedToken(c.secret, {
      sub: c.userId,
      iat: c.now,
      exp: c.now + 60,
    }).split(".");
    return `${header}.${b64url({ sub: c.userId, iat: c.now, exp: c.now + 3000 })}.${signature}`;
  },
  "another typ": (c) =>
    signedToken(
      c.secret,
      { sub: c.userId, iat: c.now, exp: c.now + 60 },
      { alg: "HS256", typ: "secevent+jwt" },
    ),
  "not a JWT": () => "not.a.jwt",
  "sub given twice": (c) =>
    signedJson(
      c.secret,
      `{"sub":"${c.userId}","sub":"${c.userId}","iat":${c.now},"exp":${c.now + 60}}`,
    ),
  "alg given twice in the header": (c) =>
    signedJson(
      c.secret,
      JSON.stringify({ sub: c.userId, iat: c.now, exp: c.now + 60 }),
      '{"alg":"HS256","alg":"HS256","typ":"JWT"}',
    ),
  "two parts": (c) =>
    signedToken(c.secret, { sub: c.userId, iat: c.now, exp: c.now + 60 })
      .split(".")
      .slice(0, 2)
      .join("."),
};

// ---------------------------------------------------------------------------------------------
// Request bodies

const JSON_TYPE = "application/json";
const FORM_TYPE = "application/x-www-form-urlencoded";
/** Over the 1 MiB limit of a JSON or form body. */
const OVERSIZED = 1024 * 1024 + 1;

export interface BodyCase {
  name: string;
  /** Omitted: no Content-Type header at all. */
  contentType?: string;
  body: string | Uint8Array;
}

const json = (name: string, value: unknown): BodyCase => ({
  name,
  contentType: JSON_TYPE,
  body: JSON.stringify(value),
});

const emoji = (n: number) => "😀".repeat(n);

export interface RegisterCase extends BodyCase {
  status: 400 | 413 | 415 | 422;
  /** For a 422: the field the problem names. */
  field?: string;
}

const user = { username: "valid_name", password: "long enough" };

/** Registrations that are refused; `name` says why. */
export const REGISTER_REFUSED: RegisterCase[] = [
  ...(
    [
      ["username absent", { password: user.password }],
      ["username null", { ...user, username: null }],
      ["username a number", { ...user, username: 12345 }],
      ["username an array", { ...user, username: ["valid_name"] }],
      ["username empty", { ...user, username: "" }],
      ["username of 2 characters", { ...user, username: "ab" }],
      ["username of 51 characters", { ...user, username: "a".repeat(51) }],
      ["username with a NUL", { ...user, username: "valid\u0000name" }],
      ["username with a space", { ...user, username: "ada lovelace" }],
      ["username with a slash", { ...user, username: "ada/x" }],
      ["username beyond ASCII", { ...user, username: "adé_lovelace" }],
      ["password absent", { username: user.username }],
      ["password null", { ...user, password: null }],
      ["password a number", { ...user, password: 12345678 }],
      ["password an object", { ...user, password: { value: "long enough" } }],
      ["password empty", { ...user, password: "" }],
      ["password of 7 characters", { ...user, password: "p".repeat(7) }],
      ["password of 129 characters", { ...user, password: "p".repeat(129) }],
      // 14 UTF-16 code units, but 7 characters.
      ["password of 7 emoji", { ...user, password: emoji(7) }],
      ["password of 129 emoji", { ...user, password: emoji(129) }],
      ["password with a NUL", { ...user, password: "long\u0000enough" }],
      ["password of 8 spaces", { ...user, password: " ".repeat(8) }],
      [
        "password of only tabs, newlines and Unicode spaces",
        { ...user, password: "\t\n\u00a0\u2003\u3000\t\n\u00a0" },
      ],
      ["password with an unpaired surrogate", { ...user, password: "long enough\ud800" }],
    ] as const
  ).map(([name, body]) => ({
    ...json(name, body),
    status: 422 as const,
    field: name.startsWith("username") ? "/username" : "/password",
  })),
  { ...json("an unknown field", { ...user, admin: true }), status: 422, field: "/admin" },
  { ...json("a JSON null body", null), status: 422 },
  { ...json("a JSON array body", [user]), status: 422 },
  { ...json("a JSON string body", "valid_name"), status: 422 },
  {
    name: "a repeated key",
    contentType: JSON_TYPE,
    body: '{"username":"valid_name","username":"other_name","password":"long enough"}',
    status: 422,
  },
  {
    name: "a __proto__ key",
    contentType: JSON_TYPE,
    body: '{"username":"valid_name","password":"long enough","__proto__":{"admin":true}}',
    status: 422,
  },
  { name: "malformed JSON", contentType: JSON_TYPE, body: '{"username":', status: 400 },
  { name: "an empty body", contentType: JSON_TYPE, body: "", status: 400 },
  {
    name: "bytes that are not UTF-8",
    contentType: JSON_TYPE,
    body: Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d),
    status: 400,
  },
  { name: "text/plain", contentType: "text/plain", body: JSON.stringify(user), status: 415 },
  { name: "no Content-Type", body: JSON.stringify(user), status: 415 },
  {
    name: "a form",
    contentType: FORM_TYPE,
    body: new URLSearchParams(user).toString(),
    status: 415,
  },
  {
    name: "a body over 1 MiB",
    contentType: JSON_TYPE,
    body: JSON.stringify({ ...user, password: "p".repeat(OVERSIZED) }),
    status: 413,
  },
];

/** Registrations at the bounds that succeed; `unique` (8 of [a-z0-9]) keeps usernames apart. */
export const REGISTER_ACCEPTED: {
  name: string;
  body: (unique: string) => { username: string; password: string };
}[] = [
  { name: "username of 3 characters", body: (u) => ({ ...user, username: `u${u.slice(0, 2)}` }) },
  {
    name: "username of 50 characters",
    body: (u) => ({ ...user, username: `${u}${"_".repeat(42)}` }),
  },
  { name: "password of 8 characters", body: (u) => ({ username: u, password: "p".repeat(8) }) },
  {
    name: "password of 128 characters",
    body: (u) => ({ username: u, password: "p".repeat(128) }),
  },
  // 256 UTF-16 code units: the bound counts characters.
  { name: "password of 128 emoji", body: (u) => ({ username: u, password: emoji(128) }) },
  { name: "password of 8 emoji", body: (u) => ({ username: u, password: emoji(8) }) },
  // Whitespace is allowed, and kept: it is part of the password.
  {
    name: "password with spaces around and inside",
    body: (u) => ({ username: u, password: "  a b c d  " }),
  },
];

export type TokenCaseExpectation =
  | { status: 200 }
  | { status: 400; error: "invalid_request" | "unsupported_grant_type" }
  | { status: 401 | 413 | 415 };

export interface TokenRequestCase extends BodyCase {
  expect: TokenCaseExpectation;
}

/**
 * Token requests. In bodies, `{username}` and `{password}` stand for a registered user's
 * credentials (plain ASCII, so they need no escaping).
 */
export const TOKEN_REQUESTS: TokenRequestCase[] = [
  ...(
    [
      ["the password grant", "grant_type=password&username={username}&password={password}", 200],
      [
        "unknown parameters, scope and client_id (ignored)",
        "grant_type=password&username={username}&password={password}&scope=&client_id=swagger&x=1",
        200,
      ],
      ["a wrong password", "grant_type=password&username={username}&password=wrong", 401],
      ["an unknown user", "grant_type=password&username=nobody_here&password={password}", 401],
      ["no grant_type", "username={username}&password={password}", "invalid_request"],
      [
        "an empty grant_type",
        "grant_type=&username={username}&password={password}",
        "invalid_request",
      ],
      [
        "grant_type client_credentials",
        "grant_type=client_credentials&username={username}&password={password}",
        "unsupported_grant_type",
      ],
      [
        "grant_type Password",
        "grant_type=Password&username={username}&password={password}",
        "unsupported_grant_type",
      ],
      [
        "grant_type given twice",
        "grant_type=password&grant_type=password&username={username}&password={password}",
        "invalid_request",
      ],
      [
        "username given twice",
        "grant_type=password&username={username}&username=other&password={password}",
        "invalid_request",
      ],
      ["no username", "grant_type=password&password={password}", "invalid_request"],
      ["no password", "grant_type=password&username={username}", "invalid_request"],
      ["an empty username", "grant_type=password&username=&password={password}", "invalid_request"],
      ["an empty password", "grant_type=password&username={username}&password=", "invalid_request"],
      [
        "a NUL in the username",
        "grant_type=password&username={username}%00&password={password}",
        "invalid_request",
      ],
      [
        "a NUL in the password",
        "grant_type=password&username={username}&password={password}%00",
        "invalid_request",
      ],
      [
        "a username of 201 characters",
        `grant_type=password&username=${"u".repeat(201)}&password={password}`,
        "invalid_request",
      ],
      [
        "a password of 1001 characters",
        `grant_type=password&username={username}&password=${"p".repeat(1001)}`,
        "invalid_request",
      ],
      [
        "a password of 1000 emoji (2000 code units, in bounds)",
        `grant_type=password&username={username}&password=${encodeURIComponent(emoji(1000))}`,
        401,
      ],
      ["an empty body", "", "invalid_request"],
    ] as const
  ).map(([name, body, outcome]) => ({
    name: `form: ${name}`,
    contentType: FORM_TYPE,
    body,
    expect:
      typeof outcome === "number"
        ? ({ status: outcome } as TokenCaseExpectation)
        : ({ status: 400, error: outcome } as const),
  })),
  ...(
    [
      [
        "the password grant",
        { grant_type: "password", username: "{username}", password: "{password}" },
        200,
      ],
      [
        "an unknown field (ignored)",
        { grant_type: "password", username: "{username}", password: "{password}", admin: true },
        200,
      ],
      ["no grant_type", { username: "{username}", password: "{password}" }, "invalid_request"],
      [
        "grant_type null",
        { grant_type: null, username: "{username}", password: "{password}" },
        "invalid_request",
      ],
      [
        "grant_type a number",
        { grant_type: 1, username: "{username}", password: "{password}" },
        "invalid_request",
      ],
      [
        "grant_type refresh_token",
        { grant_type: "refresh_token", username: "{username}", password: "{password}" },
        "unsupported_grant_type",
      ],
      [
        "username null",
        { grant_type: "password", username: null, password: "{password}" },
        "invalid_request",
      ],
      [
        "username an array",
        { grant_type: "password", username: ["{username}"], password: "{password}" },
        "invalid_request",
      ],
      [
        "password a number",
        { grant_type: "password", username: "{username}", password: 12345678 },
        "invalid_request",
      ],
      [
        "a NUL in the username",
        { grant_type: "password", username: "{username}\u0000", password: "{password}" },
        "invalid_request",
      ],
      [
        "a NUL in the password",
        { grant_type: "password", username: "{username}", password: "{password}\u0000" },
        "invalid_request",
      ],
      [
        "an unpaired surrogate in the password",
        { grant_type: "password", username: "{username}", password: "{password}\udc00" },
        "invalid_request",
      ],
      [
        "scope a number",
        { grant_type: "password", username: "{username}", password: "{password}", scope: 1 },
        "invalid_request",
      ],
      ["a JSON null body", null, "invalid_request"],
      ["a JSON array body", [], "invalid_request"],
      ["a JSON string body", "grant_type=password", "invalid_request"],
    ] as const
  ).map(([name, value, outcome]) => ({
    ...json(`json: ${name}`, value),
    expect:
      typeof outcome === "number"
        ? ({ status: outcome } as TokenCaseExpectation)
        : ({ status: 400, error: outcome } as const),
  })),
  {
    name: "json: malformed",
    contentType: JSON_TYPE,
    body: '{"grant_type":"password",',
    expect: { status: 400, error: "invalid_request" },
  },
  {
    name: "json: a repeated key",
    contentType: JSON_TYPE,
    body: '{"grant_type":"password","username":"{username}","password":"{password}","password":"x"}',
    expect: { status: 400, error: "invalid_request" },
  },
  {
    name: "form: bytes that are not UTF-8",
    contentType: FORM_TYPE,
    body: Uint8Array.of(...Buffer.from("grant_type=password&username="), 0xff, 0xfe),
    expect: { status: 400, error: "invalid_request" },
  },
  {
    name: "text/plain",
    contentType: "text/plain",
    body: "grant_type=password&username={username}&password={password}",
    expect: { status: 415 },
  },
  {
    name: "no Content-Type",
    body: "grant_type=password&username={username}&password={password}",
    expect: { status: 415 },
  },
  {
    name: "multipart",
    contentType: "multipart/form-data; boundary=x",
    body: '--x\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\npassword\r\n--x--\r\n',
    expect: { status: 415 },
  },
  {
    name: "form: a body over 1 MiB",
    contentType: FORM_TYPE,
    body: `grant_type=password&username={username}&password=${"p".repeat(OVERSIZED)}`,
    expect: { status: 413 },
  },
];

/** The case's request, with a user's credentials in place of the placeholders. */
export function bodyCaseRequest(
  c: BodyCase,
  credentials: { username: string; password: string } = {
    username: "nobody_here",
    password: "no password",
  },
): RequestInit {
  // Bytes, never a string: fetch would add a Content-Type of its own to a string body.
  const body =
    typeof c.body === "string"
      ? new TextEncoder().encode(
          c.body
            .replaceAll("{username}", credentials.username)
            .replaceAll("{password}", credentials.password),
        )
      : c.body;
  return {
    method: "POST",
    headers: c.contentType === undefined ? {} : { "content-type": c.contentType },
    body,
  };
}
