import { describe, expect, test } from "bun:test";
import { UnsupportedMediaTypeError } from "../errors.ts";
import {
  passwordGrant,
  TOKEN_PASSWORD_MAX_LENGTH,
  type TokenErrorCode,
  TokenRequestError,
  tokenRequestBody,
} from "./token-request.ts";

const params = (entries: Record<string, unknown>) => new Map(Object.entries(entries));
const grant = { grant_type: "password", username: "ada", password: "correct horse" };

describe("passwordGrant", () => {
  test("takes the password grant and ignores what it does not know", () => {
    expect(passwordGrant(params({ ...grant, scope: "", client_id: "x", other: 1 }))).toEqual({
      username: "ada",
      password: "correct horse",
    });
  });

  test("counts characters, not UTF-16 code units", () => {
    const password = "😀".repeat(TOKEN_PASSWORD_MAX_LENGTH);
    expect(passwordGrant(params({ ...grant, password }))).toEqual({ username: "ada", password });
    expect(passwordGrant(params({ ...grant, password: `${password}x` }))).toBeInstanceOf(
      TokenRequestError,
    );
  });

  test.each([
    ["no grant_type", { username: "ada", password: "x" }, "invalid_request", /grant_type/],
    ["grant_type null", { ...grant, grant_type: null }, "invalid_request", /grant_type/],
    [
      "grant_type implicit",
      { ...grant, grant_type: "implicit" },
      "unsupported_grant_type",
      /password/,
    ],
    ["no username", { grant_type: "password", password: "x" }, "invalid_request", /username/],
    [
      "a NUL in the username",
      { ...grant, username: "a\u0000" },
      "invalid_request",
      /username.*NUL/,
    ],
    [
      "a NUL in the password",
      { ...grant, password: "a\u0000" },
      "invalid_request",
      /password.*NUL/,
    ],
    ["an unpaired surrogate", { ...grant, password: "\ud800" }, "invalid_request", /password/],
    ["a client_id that is a number", { ...grant, client_id: 7 }, "invalid_request", /client_id/],
  ])("%s", (_, given, error, description) => {
    const refused = passwordGrant(params(given));
    expect(refused).toBeInstanceOf(TokenRequestError);
    const { error: code, error_description } = (refused as TokenRequestError).toJSON();
    expect(code).toBe(error as TokenErrorCode);
    expect(error_description).toMatch(description);
  });
});

describe("tokenRequestBody", () => {
  const request = (type: string | undefined, body: string) =>
    new Request("http://x/auth/token", {
      method: "POST",
      headers: type ? { "content-type": type } : {},
      body: new TextEncoder().encode(body),
    });

  test("reads forms and JSON alike", async () => {
    const form = "grant_type=password&username=ada&password=correct+horse%21%C3%A9";
    expect(
      await tokenRequestBody({ request: request("application/x-www-form-urlencoded", form) }),
    ).toEqual({ username: "ada", password: "correct horse!é" });
    expect(
      await tokenRequestBody({ request: request("application/json", JSON.stringify(grant)) }),
    ).toEqual({ username: "ada", password: "correct horse" });
  });

  test.each([
    [
      "a repeated form field",
      "application/x-www-form-urlencoded",
      "grant_type=password&grant_type=password&username=a&password=b",
    ],
    [
      "a repeated JSON key",
      "application/json",
      '{"grant_type":"password","username":"a","username":"b","password":"c"}',
    ],
    [
      "a percent escape that is not hex",
      "application/x-www-form-urlencoded",
      "grant_type=password&username=ada&password=100%zz",
    ],
    [
      "a percent escape that is not UTF-8",
      "application/x-www-form-urlencoded",
      "grant_type=password&username=ada&password=caf%E9",
    ],
    ["malformed JSON", "application/json", '{"grant_type":'],
    ["a JSON array", "application/json", "[]"],
  ])("%s is invalid_request", async (_, type, body) => {
    const refused = await tokenRequestBody({ request: request(type, body) });
    expect(refused).toBeInstanceOf(TokenRequestError);
    expect((refused as TokenRequestError).error).toBe("invalid_request");
  });

  test("another content type is a 415 AppError, as on every route", async () => {
    await expect(tokenRequestBody({ request: request("text/plain", "x") })).rejects.toBeInstanceOf(
      UnsupportedMediaTypeError,
    );
  });
});
