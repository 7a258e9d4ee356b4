/**
 * The OAuth2 token endpoint's request (RFC 6749 §4.3.2: the password grant) and its own error
 * answer (§5.2), which OAuth2 clients parse instead of this API's problem documents.
 */
import { UnsupportedMediaTypeError } from "../errors.ts";
import { badJsonKey, readBody } from "../http/parsers.ts";
import { type TextBounds, textProblem } from "../text.ts";

/** Generous: a longer username or password can only be a wrong one, and then it costs nothing. */
export const TOKEN_USERNAME_MAX_LENGTH = 200;
export const TOKEN_PASSWORD_MAX_LENGTH = 1000;
export const TOKEN_BODY_REQUIRED =
  "Send the token request as application/x-www-form-urlencoded (or application/json).";

export interface PasswordGrant {
  username: string;
  password: string;
}

export type TokenErrorCode = "invalid_request" | "unsupported_grant_type";

/**
 * A token request this endpoint refuses, as RFC 6749 §5.2 words it. It is an answer, not an
 * AppError: the endpoint returns it, so it never becomes a problem document.
 */
export class TokenRequestError {
  constructor(
    readonly error: TokenErrorCode,
    readonly description: string,
  ) {}

  toJSON() {
    return { error: this.error, error_description: this.description };
  }
}

const FORM_TYPE = /^application\/x-www-form-urlencoded\b/i;
const JSON_TYPE = /^application\/([\w.+-]+\+)?json\b/i;
const utf8 = new TextDecoder("utf-8", { fatal: true });

const invalid = (description: string) => new TokenRequestError("invalid_request", description);

type Params = Map<string, unknown>;

/**
 * Whether every `%` escape of a form body is two hex digits and the escapes decode as UTF-8.
 * URLSearchParams would keep `%zz` as written and turn `%ff` into U+FFFD, so a mangled password
 * would quietly become another one.
 */
function wellEncoded(text: string): boolean {
  if (!text.includes("%")) return true;
  try {
    for (const part of text.split(/[&=]/)) decodeURIComponent(part);
    return true;
  } catch {
    return false;
  }
}

function formParams(text: string): Params | TokenRequestError {
  if (!wellEncoded(text)) return invalid("The form body has a malformed percent-encoding.");
  const params: Params = new Map();
  for (const [name, value] of new URLSearchParams(text)) {
    // §3.2: "Request and response parameters MUST NOT be included more than once."
    if (params.has(name)) return invalid(`${name} is given more than once.`);
    params.set(name, value);
  }
  return params;
}

function jsonParams(text: string): Params | TokenRequestError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid("The body is not valid JSON.");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return invalid("The body must be a JSON object of the token request's parameters.");
  }
  // JSON.parse keeps the last of a repeated key; a request that repeats one is malformed.
  const bad = badJsonKey(text);
  if (bad) return invalid(`${bad.path.slice(1) || "a key"}: ${bad.message}.`);
  return new Map(Object.entries(value));
}

function stringParam(
  params: Params,
  name: string,
  bounds: TextBounds = {},
): string | TokenRequestError | undefined {
  const value = params.get(name);
  if (value === undefined) return undefined;
  if (typeof value !== "string") return invalid(`${name} must be a string.`);
  // NUL, an unpaired surrogate, a length out of bounds (in characters): never a valid credential.
  const problem = textProblem(value, bounds);
  return problem ? invalid(`${name} ${problem}.`) : value;
}

/** The password grant the parameters ask for, or why they are not a valid one. */
export function passwordGrant(params: Params): PasswordGrant | TokenRequestError {
  const grantType = stringParam(params, "grant_type");
  if (grantType instanceof TokenRequestError) return grantType;
  if (grantType === undefined || grantType === "") {
    return invalid("grant_type is required: this endpoint takes grant_type=password.");
  }
  if (grantType !== "password") {
    return new TokenRequestError(
      "unsupported_grant_type",
      "Only the password grant is supported (grant_type=password).",
    );
  }
  const username = stringParam(params, "username", {
    minLength: 1,
    maxLength: TOKEN_USERNAME_MAX_LENGTH,
  });
  if (username instanceof TokenRequestError) return username;
  if (username === undefined) return invalid("username is required.");
  const password = stringParam(params, "password", {
    minLength: 1,
    maxLength: TOKEN_PASSWORD_MAX_LENGTH,
  });
  if (password instanceof TokenRequestError) return password;
  if (password === undefined) return invalid("password is required.");
  // Accepted and ignored, as Swagger UI and other OAuth2 clients send them; only their type counts.
  for (const name of ["scope", "client_id", "client_secret"]) {
    const value = stringParam(params, name);
    if (value instanceof TokenRequestError) return value;
  }
  // §3.2: any other parameter is ignored.
  return { username, password };
}

/**
 * The endpoint's body parser (an Elysia `parse` hook). A body of another type is 415 and one over
 * the size limit 413, as on every route; anything else wrong is a TokenRequestError to answer.
 */
export async function tokenRequestBody({
  request,
}: {
  request: Request;
}): Promise<PasswordGrant | TokenRequestError> {
  const type = request.headers.get("content-type") ?? "";
  const form = FORM_TYPE.test(type);
  if (!form && !JSON_TYPE.test(type)) throw new UnsupportedMediaTypeError(TOKEN_BODY_REQUIRED);
  const bytes = await readBody(request);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return invalid("The body is not valid UTF-8.");
  }
  const params = form ? formParams(text) : jsonParams(text);
  return params instanceof TokenRequestError ? params : passwordGrant(params);
}
