/**
 * Bad input to the compiled binary never gets a 500, nor a bare error: every pets and books route,
 * each field at and past its bounds, wrong types, absent, null, duplicated, unknown, malformed
 * bodies, wrong content types, body limits declared and streamed, and auth before all of it.
 * The case tables are the ones the in-process route tests run (pets.cases.ts, books.cases.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { connect } from "node:net";
import { BOOKS_CASES } from "../../src/books/books.cases.ts";
import { CASES_MAX_PHOTO_BYTES, PETS_CASES } from "../../src/pets/pets.cases.ts";
import { pngBytes } from "../../src/storage/png.ts";
import { type RunningServer, startServer, tempDataDir } from "../../src/testing/binary.ts";
import {
  caseInit,
  type HttpCase,
  jsonOfSize,
  MiB,
  streamed,
} from "../../src/testing/http-cases.ts";
import { SETUP_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
import {
  CONTRACT_API_KEY,
  CONTRACT_JWT_SECRET,
  expectProblem,
  useContractServer,
} from "./harness.ts";

const server = useContractServer({ MAX_PHOTO_BYTES: String(CASES_MAX_PHOTO_BYTES) });
const API_KEY = { "x-api-key": CONTRACT_API_KEY };
let bearer: Record<string, string>;

beforeAll(async () => {
  bearer = { authorization: `Bearer ${await server.bearer()}` };
}, SETUP_TIMEOUT_MS);

async function created(path: string, headers: Record<string, string>, body: unknown) {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

const newPet = () => created("/pets", API_KEY, { name: "Case", age: 2, type: "cat" });
/** What fills each `{resource}` of a case's path: a fresh one, made through the API. */
const makers: Record<string, () => Promise<string>> = {
  pet: newPet,
  book: () =>
    created("/books", bearer, { title: "Case", author: "Someone", published_on: "2000-01-01" }),
};

/** Sends a case the way pets.http.test.ts and books.http.test.ts do, and checks the answer. */
async function run(c: HttpCase, credentials: Record<string, string>) {
  const ids: Record<string, string> = {};
  for (const [, name] of c.request.path.matchAll(/\{(\w+)\}/g)) {
    const make = makers[name as string];
    if (make) ids[name as string] = await make();
  }
  const { path, init } = caseInit(c.request, ids, credentials);
  const res = await fetch(`${server.url}${path}`, init);
  if (c.expectedStatus < 400) {
    if (res.status !== c.expectedStatus) {
      throw new Error(`expected ${c.expectedStatus}, got ${res.status}: ${await res.text()}`);
    }
    await res.arrayBuffer();
    return;
  }
  const requestId = res.headers.get("x-request-id");
  const problem = await expectProblem(res, c.expectedStatus);
  expect(problem.request_id).toBe(requestId as string);
  expect(problem.type).toBe("about:blank");
  if (c.errorPath) expect((problem.errors ?? []).map((e) => e.path)).toContain(c.errorPath);
  if (c.allow) expect(res.headers.get("allow")).toBe(c.allow);
}

const table = (cases: HttpCase[]) => cases.map((c): [string, HttpCase] => [c.name, c]);

describe.each(Object.entries(PETS_CASES))("pets, %s", (_, cases) => {
  test.each(table(cases))("%s", (_, c) => run(c, API_KEY));
});

describe.each(Object.entries(BOOKS_CASES))("books, %s", (_, cases) => {
  test.each(table(cases))("%s", (_, c) => run(c, bearer));
});

interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * Sends a request head (and no body, whatever it declares) over a plain socket and reads the
 * answer: fetch cannot declare a Content-Length it does not send.
 */
function rawRequest(url: string, head: string[]): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      socket.write(`${head.join("\r\n")}\r\n\r\n`);
    });
    const parse = (): RawResponse | undefined => {
      const end = data.indexOf("\r\n\r\n");
      if (end === -1) return undefined;
      const [statusLine = "", ...lines] = data.subarray(0, end).toString("latin1").split("\r\n");
      const headers = new Headers();
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      const length = Number(headers.get("content-length") ?? Number.NaN);
      const body = data.subarray(end + 4);
      if (!(body.length >= length)) return undefined;
      const status = Number(statusLine.split(" ")[1]);
      return { status, headers, body: body.subarray(0, length).toString("utf8") };
    };
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const response = parse();
      if (response) {
        socket.destroy();
        resolve(response);
      }
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`connection closed after: ${data.toString()}`)));
  });
}

const asResponse = (raw: RawResponse) =>
  new Response(raw.body, { status: raw.status, headers: raw.headers });

describe("a declared Content-Length far over every limit (20 MB), body never sent", () => {
  const head = (method: string, path: string, headers: Record<string, string>) => [
    `${method} ${path} HTTP/1.1`,
    `Host: ${new URL(server.url).host}`,
    "Content-Length: 20000000",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  const multipartType = { "Content-Type": "multipart/form-data; boundary=x" };
  const jsonType = { "Content-Type": "application/json" };

  test.each([
    ["POST /pets/{id}/photo without a key", "/pets/{pet}/photo", multipartType, 401],
    [
      "POST /pets/{id}/photo with a key",
      "/pets/{pet}/photo",
      { ...multipartType, ...API_KEY },
      413,
    ],
    ["POST /pets without a key", "/pets", jsonType, 401],
    ["POST /pets as text/plain without a key", "/pets", { "Content-Type": "text/plain" }, 401],
    ["POST /pets with a key", "/pets", { ...jsonType, ...API_KEY }, 413],
    ["POST /books without a token", "/books", jsonType, 401],
    ["POST /auth/register", "/auth/register", jsonType, 413],
    [
      "POST /auth/token: 413",
      "/auth/token",
      { "Content-Type": "application/x-www-form-urlencoded" },
      413,
    ],
  ])("%s problem", async (_, path, headers, status) => {
    const pet = path.includes("{pet}") ? await newPet() : "";
    const raw = await rawRequest(server.url, head("POST", path.replace("{pet}", pet), headers));
    await expectProblem(asResponse(raw), status);
  });

  test("POST /books with a token: 413 problem", async () => {
    const raw = await rawRequest(server.url, head("POST", "/books", { ...jsonType, ...bearer }));
    await expectProblem(asResponse(raw), 413);
  });
});

describe("auth bodies share the parsers and their limits", () => {
  const post = (path: string, init: RequestInit & { duplex?: "half" }) =>
    fetch(`${server.url}${path}`, { method: "POST", ...init });

  test.each([9, 11.5])("a %p MiB registration, streamed, is 413", async (size) => {
    const { headers, body } = streamed(
      jsonOfSize(size * MiB, { username: "streamed" }, "password"),
      { "content-type": "application/json" },
    );
    await expectProblem(
      await post("/auth/register", { headers, body: body(), duplex: "half" }),
      413,
    );
  });

  test("a 2 MiB token form, streamed, is 413", async () => {
    const form = new TextEncoder().encode(
      `grant_type=password&username=u&password=${"p".repeat(2 * MiB)}`,
    );
    const { headers, body } = streamed(form, {
      "content-type": "application/x-www-form-urlencoded",
    });
    await expectProblem(await post("/auth/token", { headers, body: body(), duplex: "half" }), 413);
  });

  test("__proto__ in a registration is an unknown field", async () => {
    const body = `{"username":"protouser","password":"correct horse","__proto__":{"admin":true}}`;
    const res = await post("/auth/register", {
      headers: { "content-type": "application/json" },
      body,
    });
    const problem = await expectProblem(res, 422);
    expect(problem.errors).toEqual([
      { path: "/__proto__", message: "Property '__proto__' should not be provided" },
    ]);
  });

  test("a username given twice in a token form is refused, not guessed at", async () => {
    // The token endpoint answers in OAuth2's own error format (RFC 6749), not a problem document.
    const res = await post("/auth/token", {
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=password&username=a&username=b&password=x",
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("username");
  });
});

describe("after all of that", () => {
  test("the server is healthy and logged no unhandled error", async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const errors = server
      .logs()
      .split("\n")
      .filter((line) => line.includes('"level":"error"'));
    expect(errors).toEqual([]);
    expect(server.logs()).not.toContain('"status":500');
  });
});

describe("PORT=0 without PUBLIC_URL", () => {
  const dataDir = tempDataDir();
  let zero: RunningServer | undefined;
  /** Where the binary says it listens: the port it really bound. */
  let bound: URL;

  beforeAll(async () => {
    // Its own embedded database: this is about the port, not the data.
    zero = await startServer({
      API_KEY: CONTRACT_API_KEY,
      JWT_SECRET: CONTRACT_JWT_SECRET,
      DATA_DIR: dataDir,
      PORT: "0",
      PUBLIC_URL: "",
    });
    const line = zero
      .logs()
      .split("\n")
      .find((l) => l.includes('"msg":"listening"'));
    const logged = JSON.parse(line as string) as { url: string; docs: string };
    bound = new URL(logged.url);
    expect(Number(bound.port)).toBeGreaterThan(0);
    expect(logged.docs).toBe(`http://localhost:${bound.port}/docs`);
  }, 180_000);

  afterAll(async () => {
    if (zero && zero.proc.exitCode === null) await zero.stop("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  test("photo URLs name the bound port, and serve the photo", async () => {
    const base = `http://127.0.0.1:${bound.port}`;
    const pet = await fetch(`${base}/pets`, {
      method: "POST",
      headers: { ...API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ name: "Zero", age: 1, type: "dog" }),
    });
    expect(pet.status).toBe(201);
    const { id } = (await pet.json()) as { id: string };
    const form = new FormData();
    form.append("file", new File([pngBytes()], "p.png"));
    const upload = await fetch(`${base}/pets/${id}/photo`, {
      method: "POST",
      headers: API_KEY,
      body: form,
    });
    expect(upload.status).toBe(201);
    const { url } = (await upload.json()) as { url: string };
    expect(url).toStartWith(`http://localhost:${bound.port}/photos/`);
    const served = await fetch(`${base}${new URL(url).pathname}`);
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(Buffer.from(pngBytes()))).toBe(true);
  });
});
