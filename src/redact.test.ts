import { describe, expect, test } from "bun:test";
import { DrizzleQueryError } from "drizzle-orm/errors";
import { createLogger } from "./logger.ts";
import { loggableError, redactUrl, stackFrames } from "./redact.ts";

describe("redactUrl", () => {
  test("masks the password of the user-info", () => {
    expect(redactUrl("postgres://app:s3cret@db:5432/petbooks")).toBe(
      "postgres://app:***@db:5432/petbooks",
    );
  });

  test("masks a password given as a query parameter, libpq's way", () => {
    const redacted = redactUrl("postgres://app@db:5432/petbooks?password=HUNTER2&sslmode=require");
    expect(redacted).not.toContain("HUNTER2");
    expect(redacted).toContain("sslmode=require");
    expect(redactUrl("redis://db?sslpassword=HUNTER2")).not.toContain("HUNTER2");
  });

  test("an unparseable URL is not quoted at all", () => {
    expect(redactUrl("postgres://app:s3cret@[bad")).toBe("(unparseable URL)");
  });
});

describe("loggableError", () => {
  const hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
  const failed = () =>
    new DrizzleQueryError(
      'insert into "users" ("id", "username", "password_hash") values ($1, $2, $3)',
      ["0193c1e4-0000-7000-8000-000000000000", "ada", hash],
      Object.assign(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), {
        code: "CONNECTION_CLOSED",
      }),
    );

  test("a failed query keeps its statement and its cause, never its parameters", () => {
    const err = failed();
    expect(err.message).toContain(hash);
    expect(loggableError(err)).toEqual({
      name: "DrizzleQueryError",
      message:
        'Failed query: insert into "users" ("id", "username", "password_hash") values ($1, $2, $3)',
      cause: { name: "Error", message: "write CONNECTION_CLOSED 127.0.0.1:5432" },
    });
  });

  test("a log line with such an error carries none of the parameters", () => {
    const lines: string[] = [];
    createLogger("warn", (line) => lines.push(line)).warn("database unavailable", {
      err: failed(),
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("CONNECTION_CLOSED");
    expect(lines[0]).not.toContain("argon2");
    expect(lines[0]).not.toContain('"ada"');
    expect(lines[0]).not.toContain("params");
  });

  test("a cycle of causes ends after a few", () => {
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    a.cause = b;
    const depth = (e: { cause?: unknown } | undefined): number =>
      e ? 1 + depth(e.cause as never) : 0;
    expect(depth(loggableError(a))).toBe(4);
  });
});

test("a stack keeps its frames, never the message before them", () => {
  const err = new DrizzleQueryError(
    "insert into users values ($1, $2)",
    ["ada", "$argon2id$v=19$x"],
    undefined as never,
  );
  const frames = stackFrames(err) ?? "";
  expect(err.stack).toContain("argon2");
  expect(frames).toContain("redact.test.ts");
  expect(frames).not.toContain("argon2");
  expect(frames).not.toContain("params");
  expect(stackFrames("not an error")).toBeUndefined();
});
