import { expect, test } from "bun:test";
import { createTokenIssuer } from "./tokens.ts";

const SECRET = "tokens-test-secret-0123456789-0123456789";

test("a remembered token still expires on time", async () => {
  // exp is in whole seconds (iat + TTL, iat rounded down): a 2 s TTL leaves at least 1 s.
  const issuer = createTokenIssuer(SECRET, 2);
  const { token } = await issuer.issue("user-1");
  expect(await issuer.verify(token)).toBe("user-1");
  expect(await issuer.verify(token)).toBe("user-1"); // from the verified cache
  const [, payload] = token.split(".");
  const { exp } = JSON.parse(Buffer.from(payload as string, "base64url").toString());
  await Bun.sleep(Math.max(0, exp * 1000 - Date.now()) + 50);
  expect(await issuer.verify(token)).toBeUndefined();
});

test("only verified tokens are remembered", async () => {
  const issuer = createTokenIssuer(SECRET, 60);
  const forged = (await createTokenIssuer(`${SECRET}-other`, 60).issue("user-2")).token;
  expect(await issuer.verify(forged)).toBeUndefined();
  expect(await issuer.verify(forged)).toBeUndefined();
});
