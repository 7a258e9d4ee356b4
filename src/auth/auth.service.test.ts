import { describe, expect, test } from "bun:test";
import { RetryLaterError, TooManyRequestsError, ValidationError } from "../errors.ts";
import { memoryUsers } from "../testing/memory-users.ts";
import { createAuthService, WRONG_CREDENTIALS } from "./auth.service.ts";
import { createHashQueue, type HashQueue, type PasswordHasher } from "./hash-queue.ts";
import {
  ADDRESS_LIMITED,
  createAuthLimits,
  createMemoryCounterStore,
  USERNAME_LIMITED,
} from "./rate-limit.ts";
import { createTokenIssuer } from "./tokens.ts";

const SECRET = "auth-service-test-secret-0123456789-0123456789";
const PASSWORD = "correct horse battery staple";

/** A hasher that records every call; `gate`, when set, holds verifications until released. */
function spyHasher() {
  const calls: { op: "hash" | "verify"; password: string; hash?: string }[] = [];
  let gate: Promise<void> | undefined;
  let release = () => {};
  const hasher: PasswordHasher = {
    async hash(password) {
      calls.push({ op: "hash", password });
      return `spy$${password}`;
    },
    async verify(password, hash) {
      calls.push({ op: "verify", password, hash });
      await gate;
      return hash === `spy$${password}`;
    },
  };
  return {
    hasher,
    calls,
    verifications: () => calls.filter((c) => c.op === "verify"),
    hold() {
      gate = new Promise((resolve) => {
        release = resolve;
      });
    },
    release: () => release(),
  };
}

/** A clock moved by hand: no test here waits for a window to pass. */
function fakeClock(start = 1_767_225_600_000) {
  const clock = { ms: start, now: () => clock.ms };
  return clock;
}

function setup(limits = { failures: 3, attempts: 100 }, hashQueue?: HashQueue) {
  const users = memoryUsers();
  const spy = spyHasher();
  const clock = fakeClock();
  const lookups: string[] = [];
  const counted = {
    ...users,
    findCredentials: (username: string) => {
      lookups.push(username);
      return users.findCredentials(username);
    },
  };
  const service = createAuthService({
    users: counted,
    tokens: createTokenIssuer(SECRET, 3600, { now: clock.now }),
    passwords: spy.hasher,
    hashQueue,
    limits: createAuthLimits(
      createMemoryCounterStore(),
      {
        usernameFailures: { limit: limits.failures, windowSeconds: 900 },
        addressAttempts: { limit: limits.attempts, windowSeconds: 60 },
      },
      clock.now,
    ),
    now: clock.now,
  });
  return { service, spy, clock, lookups };
}

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("it was not refused");
}

describe("an unknown user costs the same one verification as a wrong password", () => {
  test("against a dummy hash, with the same refusal", async () => {
    const { service, spy } = setup();
    await service.register({ username: "ada", password: PASSWORD });
    const wrong = await refusal(service.login("ada", "wrong password"));
    const unknown = await refusal(service.login("nobody_here", "wrong password"));
    expect(unknown).toEqual(wrong);
    expect((unknown as Error).message).toBe(WRONG_CREDENTIALS);
    const [forUser, forNobody] = spy.verifications();
    expect(spy.verifications()).toHaveLength(2);
    expect(forUser?.hash).toBe(`spy$${PASSWORD}`);
    // A hash made by the same hasher, of no password anyone chose.
    expect(forNobody?.hash).toStartWith("spy$");
    expect(forNobody?.hash).not.toBe(forUser?.hash);
  });

  test("the dummy hash is made once, and again only if making it failed", async () => {
    const { service, spy } = setup({ failures: 100, attempts: 100 });
    await refusal(service.login("nobody_1", "x"));
    await refusal(service.login("nobody_2", "x"));
    expect(spy.calls.filter((c) => c.op === "hash")).toHaveLength(1);
  });
});

test("a name registration refuses is never looked up: no other spelling of a user logs in", async () => {
  const { service, spy, lookups } = setup();
  await service.register({ username: "iiiuser", password: PASSWORD });
  // PostgreSQL's lower() makes "İ" (U+0130) an "i": looked up, it would find iiiuser, under a
  // per-username limit of its own.
  const err = await refusal(service.login("\u0130iiuser", PASSWORD));
  expect((err as Error).message).toBe(WRONG_CREDENTIALS);
  expect(lookups).toEqual([]);
  // The same one password check as any unknown user: its timing tells nothing either.
  expect(spy.verifications()).toHaveLength(1);
});

describe("failures per username", () => {
  test("after the limit, 429 with Retry-After before the database or any hashing", async () => {
    const { service, spy, clock, lookups } = setup({ failures: 3, attempts: 100 });
    await service.register({ username: "ada", password: PASSWORD });
    for (let i = 0; i < 3; i++) await refusal(service.login("ada", `guess ${i}`));
    const [verifications, looked] = [spy.verifications().length, lookups.length];
    clock.ms += 100_000;
    const err = await refusal(service.login("ADA", PASSWORD));
    expect(err).toBeInstanceOf(TooManyRequestsError);
    expect((err as TooManyRequestsError).message).toBe(USERNAME_LIMITED);
    // The window began with the first failure: 900 s, 100 of which have passed.
    expect((err as TooManyRequestsError).retryAfterSeconds).toBe(800);
    expect(spy.verifications()).toHaveLength(verifications);
    expect(lookups).toHaveLength(looked);
    // Once the window is over, the right password works again.
    clock.ms += 800_000;
    expect((await service.login("ada", PASSWORD)).token).toBeString();
  });

  test("a success forgets the failures", async () => {
    const { service } = setup({ failures: 3, attempts: 100 });
    await service.register({ username: "ada", password: PASSWORD });
    for (let i = 0; i < 2; i++) await refusal(service.login("ada", "wrong"));
    await service.login("ada", PASSWORD);
    for (let i = 0; i < 3; i++) await refusal(service.login("ada", "wrong"));
    expect(await refusal(service.login("ada", "wrong"))).toBeInstanceOf(TooManyRequestsError);
  });

  test("unknown usernames are limited the same way, so a 429 tells nothing of who exists", async () => {
    const { service } = setup({ failures: 2, attempts: 100 });
    for (let i = 0; i < 2; i++) await refusal(service.login("nobody_here", "wrong"));
    expect(await refusal(service.login("nobody_here", "wrong"))).toBeInstanceOf(
      TooManyRequestsError,
    );
  });

  test("concurrent guesses cannot slip past the limit while their hashes run", async () => {
    const { service, spy } = setup({ failures: 3, attempts: 100 });
    await service.register({ username: "ada", password: PASSWORD });
    spy.hold();
    const guesses = Array.from({ length: 10 }, (_, i) => refusal(service.login("ada", `g${i}`)));
    await Bun.sleep(0);
    spy.release();
    const outcomes = await Promise.all(guesses);
    expect(outcomes.filter((e) => e instanceof TooManyRequestsError)).toHaveLength(7);
    expect(spy.verifications()).toHaveLength(3);
  });

  test("a login the server was too busy to check is no failure", async () => {
    const { service } = setup({ failures: 2, attempts: 100 });
    const busy = createAuthService({
      users: memoryUsers(),
      tokens: createTokenIssuer(SECRET, 3600),
      passwords: {
        hash: async () => "spy$",
        verify: () => Promise.reject(new RetryLaterError("unavailable", "busy", 5)),
      },
      limits: createAuthLimits(createMemoryCounterStore(), {
        usernameFailures: { limit: 2, windowSeconds: 900 },
        addressAttempts: { limit: 100, windowSeconds: 60 },
      }),
    });
    for (let i = 0; i < 5; i++) {
      expect(await refusal(busy.login("ada", "x"))).toBeInstanceOf(RetryLaterError);
    }
    // The same with a hasher that answers: the limit still counts real failures.
    for (let i = 0; i < 2; i++) await refusal(service.login("ada", "x"));
    expect(await refusal(service.login("ada", "x"))).toBeInstanceOf(TooManyRequestsError);
  });
});

describe("the hash queue", () => {
  test("a login with no turn to hash is refused before its user is looked up, and is no failure", async () => {
    const queue = createHashQueue({ concurrency: 1, maxQueued: 0, maxWaitMs: 2_000 });
    const { service, spy, lookups } = setup({ failures: 1, attempts: 100 }, queue);
    await service.register({ username: "ada", password: PASSWORD });
    spy.hold();
    const first = refusal(service.login("grace", "wrong"));
    await Bun.sleep(0);
    expect(queue.load()).toEqual({ running: 1, queued: 0 });
    const refused = await refusal(service.login("ada", "wrong"));
    expect(refused).toBeInstanceOf(RetryLaterError);
    expect((refused as RetryLaterError).retryAfterSeconds).toBe(2);
    expect(lookups).toEqual(["grace"]);
    spy.release();
    await first;
    // The refused attempt did not use up ada's one allowed failure.
    expect((await refusal(service.login("ada", "wrong"))) as Error).not.toBeInstanceOf(
      TooManyRequestsError,
    );
  });
});

describe("attempts per address", () => {
  test("logins and registrations count together; 429 before any hashing", async () => {
    const { service, spy, clock } = setup({ failures: 100, attempts: 3 });
    const client = { address: "203.0.113.7" };
    await service.register({ username: "ada", password: PASSWORD }, client);
    await service.login("ada", PASSWORD, client);
    await refusal(service.login("ada", "wrong", client));
    const calls = spy.calls.length;
    clock.ms += 20_000;
    for (const attempt of [
      service.login("ada", PASSWORD, client),
      service.register({ username: "bob", password: PASSWORD }, client),
    ]) {
      const err = await refusal(attempt);
      expect(err).toBeInstanceOf(TooManyRequestsError);
      expect((err as TooManyRequestsError).message).toBe(ADDRESS_LIMITED);
      expect((err as TooManyRequestsError).retryAfterSeconds).toBe(40);
    }
    expect(spy.calls).toHaveLength(calls);
    // Other addresses, and in-process calls (no address), are not affected.
    expect((await service.login("ada", PASSWORD, { address: "203.0.113.8" })).token).toBeString();
    expect((await service.login("ada", PASSWORD)).token).toBeString();
    clock.ms += 40_000;
    expect((await service.login("ada", PASSWORD, client)).token).toBeString();
  });

  test("a refused address does not count against the username it tried", async () => {
    const { service } = setup({ failures: 2, attempts: 1 });
    await refusal(service.login("ada", "wrong", { address: "203.0.113.9" }));
    for (let i = 0; i < 5; i++)
      await refusal(service.login("ada", "x", { address: "203.0.113.9" }));
    // One failure so far: another address may still try once before the username's limit.
    const err = await refusal(service.login("ada", "wrong", { address: "198.51.100.1" }));
    expect(err).not.toBeInstanceOf(TooManyRequestsError);
  });
});

describe("the password policy, for callers that are not HTTP", () => {
  test.each([
    ["7 characters", "p".repeat(7), /8 to 128/],
    ["only whitespace", " \t".repeat(5), /only whitespace/],
    ["129 characters", "p".repeat(129), /8 to 128/],
  ])("%s is refused before hashing", async (_, password, message) => {
    const { service, spy } = setup();
    const err = await refusal(service.register({ username: "ada", password }));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).fieldErrors[0]?.message).toMatch(message);
    expect(spy.calls).toEqual([]);
  });

  test("users who chose a shorter password under an older rule still log in", async () => {
    const users = memoryUsers();
    const service = createAuthService({
      users,
      tokens: createTokenIssuer(SECRET, 3600),
      passwords: spyHasher().hasher,
    });
    await users.insert({ id: Bun.randomUUIDv7(), username: "old_timer", passwordHash: "spy$abc" });
    expect((await service.login("old_timer", "abc")).token).toBeString();
  });
});

test("a user read while it was being deleted is not remembered: its token stops working at once", async () => {
  const users = memoryUsers();
  let holdReads = false;
  let readStarted = () => {};
  let releaseRead = () => {};
  const held = {
    ...users,
    findById: async (id: string) => {
      const row = await users.findById(id);
      if (holdReads) {
        readStarted();
        await new Promise<void>((resolve) => {
          releaseRead = resolve;
        });
      }
      return row;
    },
  };
  const service = createAuthService({
    users: held,
    tokens: createTokenIssuer(SECRET, 3600),
    passwords: spyHasher().hasher,
  });
  const user = await service.register({ username: "ada", password: PASSWORD });
  const { token } = await service.login("ada", PASSWORD);
  const header = `Bearer ${token}`;
  holdReads = true;
  const reading = new Promise<void>((resolve) => {
    readStarted = resolve;
  });
  // A request that read the user before its deletion, and finishes after it.
  const inFlight = service.authenticate(header);
  await reading;
  holdReads = false;
  await service.deleteUser(user.id);
  releaseRead();
  expect((await inFlight).id).toBe(user.id);
  // The next request, well within the user cache's time, no longer finds the user.
  expect(await refusal(service.authenticate(header))).toMatchObject({
    message: "The token is invalid or expired.",
  });
});
