/**
 * Bad (and barely good) input for every pets route, as data: pets.http.test.ts runs these cases
 * in-process and test/contract/http-input.contract.test.ts against the compiled binary.
 * Runners send them with the API key unless a case is `anonymous`, and replace `{pet}` with the
 * id of a fresh pet.
 */
import { IMAGE_HEADS, pngBytes } from "../testing/factories.ts";
import {
  bytes,
  type CaseBody,
  emoji,
  type HttpCase,
  json,
  jsonOfSize,
  MiB,
  multipart,
  multipartBytes,
  pngOfSize,
  streamed,
  wrongMethod,
} from "../testing/http-cases.ts";
import { AGE_MAX, DELETE_ID_MAX_LENGTH, DELETE_IDS_MAX, NAME_MAX_LENGTH } from "./pets.model.ts";

/** The MAX_PHOTO_BYTES both runners configure, so photo limits are cheap to cross. */
export const CASES_MAX_PHOTO_BYTES = 64 * 1024;

const JSON_TYPE = { "content-type": "application/json" };
const pet = (fields: Record<string, unknown>) => ({ name: "Rex", age: 3, type: "dog", ...fields });
const postPet = (body: { headers?: Record<string, string>; body: () => CaseBody }) => ({
  method: "POST",
  path: "/pets",
  ...body,
});
const created = (name: string, fields: Record<string, unknown>): HttpCase => ({
  name,
  request: postPet(json(pet(fields))),
  expectedStatus: 201,
});
const invalid = (name: string, body: unknown, errorPath?: string): HttpCase => ({
  name,
  request: postPet(json(body)),
  expectedStatus: 422,
  ...(errorPath && { errorPath }),
});

/** A JSON body of exactly the JSON limit, and one byte over it. */
const atJsonLimit = jsonOfSize(MiB, { age: 1, type: "dog" }, "name");
const overJsonLimit = jsonOfSize(MiB + 1, { age: 1, type: "dog" }, "name");
/** Well-formed JSON far over the limit: read whole, it would be a 422, not a 413. */
const hugeJson = (size: number) => jsonOfSize(size, { age: 1, type: "dog" }, "name");

export const CREATE_PET_CASES: HttpCase[] = [
  created("a minimal pet", {}),
  created(`a ${NAME_MAX_LENGTH}-character name`, { name: "n".repeat(NAME_MAX_LENGTH) }),
  created(`${NAME_MAX_LENGTH} emoji (${2 * NAME_MAX_LENGTH} UTF-16 units)`, {
    name: emoji(NAME_MAX_LENGTH),
  }),
  created("50 emoji and one letter", { name: `${emoji(50)}a` }),
  created("a 100-character name padded with spaces", { name: `  ${"n".repeat(100)}  ` }),
  created("a 1-character name", { name: "x" }),
  created("a combining accent (2 characters)", { name: `${"e\u0301".repeat(50)}` }),
  created("age 0", { age: 0 }),
  created(`age ${AGE_MAX}`, { age: AGE_MAX }),
  created("type cat", { type: "cat" }),
  {
    name: "a JSON content type with parameters",
    request: postPet(json(pet({}), { "content-type": "application/json; charset=utf-8" })),
    expectedStatus: 201,
  },

  invalid("no name", { age: 1, type: "dog" }, "/name"),
  invalid("no age", { name: "a", type: "dog" }, "/age"),
  invalid("no type", { name: "a", age: 1 }, "/type"),
  invalid("an empty object", {}, "/name"),
  invalid("name null", pet({ name: null }), "/name"),
  invalid("age null", pet({ age: null }), "/age"),
  invalid("type null", pet({ type: null }), "/type"),
  invalid("an empty name", pet({ name: "" }), "/name"),
  invalid("a blank name", pet({ name: " \t\n " }), "/name"),
  invalid(`a ${NAME_MAX_LENGTH + 1}-character name`, pet({ name: "n".repeat(101) }), "/name"),
  invalid(`${NAME_MAX_LENGTH + 1} emoji`, pet({ name: emoji(101) }), "/name"),
  invalid("100 emoji and one letter", pet({ name: `${emoji(100)}a` }), "/name"),
  invalid("a NUL inside the name", pet({ name: "a\u0000b" }), "/name"),
  invalid("a name that is only NUL", pet({ name: "\u0000" }), "/name"),
  invalid("an unpaired surrogate", '{"name":"a\\ud800b","age":1,"type":"dog"}', "/name"),
  invalid("a numeric name", pet({ name: 5 }), "/name"),
  invalid("a boolean name", pet({ name: true }), "/name"),
  invalid("a list as name", pet({ name: ["a"] }), "/name"),
  invalid("an object as name", pet({ name: { first: "a" } }), "/name"),
  invalid("age -1", pet({ age: -1 }), "/age"),
  invalid(`age ${AGE_MAX + 1}`, pet({ age: AGE_MAX + 1 }), "/age"),
  invalid("a fractional age", pet({ age: 1.5 }), "/age"),
  invalid("age as a string", pet({ age: "1" }), "/age"),
  invalid("age true", pet({ age: true }), "/age"),
  invalid("age 1e308", '{"name":"a","age":1e308,"type":"dog"}', "/age"),
  invalid("age 2147483648", pet({ age: 2147483648 }), "/age"),
  invalid("an unknown type", pet({ type: "parrot" }), "/type"),
  invalid("type in capitals", pet({ type: "DOG" }), "/type"),
  invalid("an empty type", pet({ type: "" }), "/type"),
  invalid("a numeric type", pet({ type: 1 }), "/type"),
  invalid("an unknown field", pet({ owner: "me" }), "/owner"),
  invalid("a field named constructor", pet({ constructor: {} }), "/constructor"),
  invalid(
    "a field named __proto__",
    '{"name":"x","age":1,"type":"dog","__proto__":{"admin":true}}',
    "/__proto__",
  ),
  invalid(
    "__proto__ that would supply the type",
    '{"name":"x","age":1,"__proto__":{"type":"dog"}}',
  ),
  invalid("the name twice", '{"name":"a","age":1,"type":"dog","name":"b"}', "/name"),
  invalid("a list", []),
  invalid("null", "null"),
  invalid("a number", "42"),
  invalid("a string", '"Rex"'),

  ...(
    [
      ["malformed JSON", '{"name": "a",'],
      ["an empty body", ""],
      ["a trailing comma", '{"name":"a","age":1,"type":"dog",}'],
      ["single quotes", "{'name':'a','age':1,'type':'dog'}"],
      ["two JSON documents", '{"name":"a","age":1,"type":"dog"}{}'],
    ] as const
  ).map(([name, text]): HttpCase => ({ name, request: postPet(json(text)), expectedStatus: 400 })),
  {
    name: "bytes that are not UTF-8",
    request: postPet(bytes(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]), JSON_TYPE)),
    expectedStatus: 400,
  },
  {
    name: "text/plain",
    request: postPet(json(pet({}), { "content-type": "text/plain" })),
    expectedStatus: 415,
  },
  {
    name: "a form",
    request: postPet(
      json("name=a&age=1&type=dog", { "content-type": "application/x-www-form-urlencoded" }),
    ),
    expectedStatus: 415,
  },
  {
    name: "no content type",
    request: postPet(bytes(new TextEncoder().encode(JSON.stringify(pet({}))))),
    expectedStatus: 415,
  },
  { name: "multipart", request: postPet(multipart([["name", "a"]])), expectedStatus: 415 },
  {
    name: "compressed (Content-Encoding: gzip), which would be read as the bytes themselves",
    request: postPet(
      bytes(Bun.gzipSync(JSON.stringify(pet({}))), { ...JSON_TYPE, "content-encoding": "gzip" }),
    ),
    expectedStatus: 415,
  },
  {
    name: "JSON in UTF-16 (charset=utf-16)",
    request: postPet(
      bytes(new Uint8Array(Buffer.from(JSON.stringify(pet({})), "utf16le")), {
        "content-type": "application/json; charset=utf-16",
      }),
    ),
    expectedStatus: 415,
  },

  {
    name: "a JSON body of exactly 1 MiB (read, then too long a name)",
    request: postPet(bytes(atJsonLimit, JSON_TYPE)),
    expectedStatus: 422,
    errorPath: "/name",
  },
  {
    name: "a JSON body of exactly 1 MiB, streamed",
    request: postPet(streamed(atJsonLimit, JSON_TYPE)),
    expectedStatus: 422,
    errorPath: "/name",
  },
  {
    name: "a JSON body of 1 MiB + 1 byte with its Content-Length",
    request: postPet(bytes(overJsonLimit, JSON_TYPE)),
    expectedStatus: 413,
  },
  {
    name: "a JSON body of 1 MiB + 1 byte, streamed",
    request: postPet(streamed(overJsonLimit, JSON_TYPE)),
    expectedStatus: 413,
  },
  ...[9, 11.5].map(
    (size): HttpCase => ({
      name: `a ${size} MiB JSON body, streamed`,
      request: postPet(streamed(hugeJson(size * MiB), JSON_TYPE)),
      expectedStatus: 413,
    }),
  ),
  {
    name: "a 2 MiB text/plain body (the type is checked first)",
    request: postPet(bytes(hugeJson(2 * MiB), { "content-type": "text/plain" })),
    expectedStatus: 415,
  },
];

const query = (name: string, q: string, expectedStatus: number, errorPath?: string): HttpCase => ({
  name: `?${q} (${name})`,
  request: { method: "GET", path: `/pets?${q}` },
  expectedStatus,
  ...(errorPath && { errorPath }),
});

/** Paging bounds, shared by GET /pets and GET /books (see books.cases.ts). */
export const PAGING_QUERIES: [q: string, status: number, errorPath?: string][] = [
  ["limit=1", 200],
  ["limit=100", 200],
  ["offset=0", 200],
  ["offset=2147483647", 200],
  ["limit=1&offset=5", 200],
  ["limit=0", 422, "/limit"],
  ["limit=-1", 422, "/limit"],
  ["limit=101", 422, "/limit"],
  ["limit=1.5", 422, "/limit"],
  ["limit=abc", 422, "/limit"],
  ["limit=", 422, "/limit"],
  ["limit=1e308", 422, "/limit"],
  ["limit=99999999999999999999", 422, "/limit"],
  ["offset=-1", 422, "/offset"],
  ["offset=2147483648", 422, "/offset"],
  ["offset=99999999999999999999", 422, "/offset"],
  ["offset=1e308", 422, "/offset"],
  ["offset=abc", 422, "/offset"],
  ["offset=", 422, "/offset"],
  ["limit=1&limit=2", 422, "/limit"],
  ["offset=0&offset=0", 422, "/offset"],
  ["limit=%00", 422, "/limit"],
  // JavaScript's Number() would take these; the API takes decimal digits only.
  ["limit=0x10", 422, "/limit"],
  ["limit=+5", 422, "/limit"],
  ["limit=1e1", 422, "/limit"],
  ["limit=10%20", 422, "/limit"],
  ["limit=%2010", 422, "/limit"],
  ["offset=%20", 422, "/offset"],
  ["offset=0b1", 422, "/offset"],
  ["offset=1_000", 422, "/offset"],
];

export const LIST_PETS_CASES: HttpCase[] = [
  query("no query", "", 200),
  ...PAGING_QUERIES.map(([q, status, path]) => query("paging", q, status, path)),
  query("with photos", "has_photos=true", 200),
  query("without photos", "has_photos=false", 200),
  ...["yes", "1", "TRUE", "", "null"].map((v) =>
    query("not a boolean", `has_photos=${v}`, 422, "/has_photos"),
  ),
  query("duplicated", "has_photos=true&has_photos=false", 422, "/has_photos"),
  query("unknown parameter", "owner=me", 422, "/owner"),
  // Every problem is listed, not only the first one found.
  query("two problems", "limit=0&has_photos=yes", 422, "/has_photos"),
  query("bracketed name", "limit[]=1", 422),
];

const photoTo = (
  path: string,
  body: { headers?: Record<string, string>; body: () => CaseBody },
) => ({
  method: "POST",
  path,
  ...body,
});
const uploads = (name: string, body: Parameters<typeof photoTo>[1], status: number): HttpCase => ({
  name,
  request: photoTo("/pets/{pet}/photo", body),
  expectedStatus: status,
});
/** Past the multipart envelope (MAX_PHOTO_BYTES + 64 KiB): refused while it is read. */
const overEnvelope = multipartBytes(pngOfSize(CASES_MAX_PHOTO_BYTES + 256 * 1024));
const multipartBody = multipartBytes(pngBytes());

export const UPLOAD_PHOTO_CASES: HttpCase[] = [
  uploads("a PNG", multipart([["file", pngBytes()]]), 201),
  uploads("a JPEG named .txt", multipart([["file", IMAGE_HEADS.jpeg, "x.txt"]]), 201),
  uploads(
    "a photo of exactly MAX_PHOTO_BYTES",
    multipart([["file", pngOfSize(CASES_MAX_PHOTO_BYTES)]]),
    201,
  ),
  uploads(
    "a photo one byte over MAX_PHOTO_BYTES",
    multipart([["file", pngOfSize(CASES_MAX_PHOTO_BYTES + 1)]]),
    413,
  ),
  uploads(
    "a body past the multipart envelope with its Content-Length",
    bytes(overEnvelope.data, { "content-type": overEnvelope.contentType }),
    413,
  ),
  uploads(
    "a body past the multipart envelope, streamed",
    streamed(overEnvelope.data, { "content-type": overEnvelope.contentType }),
    413,
  ),
  uploads(
    "a text file named .png",
    multipart([["file", new TextEncoder().encode("hi"), "a.png"]]),
    415,
  ),
  uploads("an empty file", multipart([["file", new Uint8Array()]]), 422),
  uploads(
    "a compressed upload (Content-Encoding: gzip)",
    bytes(Bun.gzipSync(multipartBody.data), {
      "content-type": multipartBody.contentType,
      "content-encoding": "gzip",
    }),
    415,
  ),
  uploads("the photo in another field", multipart([["photo", pngBytes()]]), 422),
  uploads("a text field named file", multipart([["file", "just text"]]), 422),
  uploads("no fields", multipart([]), 422),
  uploads(
    "two files in field file",
    multipart([
      ["file", pngBytes()],
      ["file", pngBytes()],
    ]),
    422,
  ),
  uploads("a JSON body", json({ file: "x" }), 415),
  uploads("a form", json("file=x", { "content-type": "application/x-www-form-urlencoded" }), 415),
  uploads("no content type", bytes(pngBytes()), 415),
  uploads(
    "multipart without a boundary",
    json("garbage", { "content-type": "multipart/form-data" }),
    400,
  ),
  uploads(
    "a multipart body that does not match its boundary",
    json("garbage", { "content-type": "multipart/form-data; boundary=xyz" }),
    400,
  ),
  {
    name: "an unknown pet",
    request: photoTo(
      "/pets/0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10/photo",
      multipart([["file", pngBytes()]]),
    ),
    expectedStatus: 404,
  },
  {
    name: "a malformed pet id",
    request: photoTo("/pets/not-a-uuid/photo", multipart([["file", pngBytes()]])),
    expectedStatus: 404,
  },
];

const deletes = (name: string, body: unknown, status: number, errorPath?: string): HttpCase => ({
  name,
  request: { method: "DELETE", path: "/pets", ...json(body) },
  expectedStatus: status,
  ...(errorPath && { errorPath }),
});

export const DELETE_PETS_CASES: HttpCase[] = [
  deletes("one unknown id", { ids: ["0193a8f2-6d1e-7c3a-9b1e-5f2d8c4a7e10"] }, 200),
  deletes("malformed and empty ids", { ids: ["nope", "", "a\u0000b"] }, 200),
  deletes(
    `${DELETE_IDS_MAX} ids`,
    { ids: Array.from({ length: DELETE_IDS_MAX }, (_, i) => `${i}`) },
    200,
  ),
  // The bound counts characters, as the OpenAPI document's maxLength does: not UTF-16 units.
  deletes(`an id of ${DELETE_ID_MAX_LENGTH} emoji`, { ids: [emoji(DELETE_ID_MAX_LENGTH)] }, 200),
  deletes(
    `an id of ${DELETE_ID_MAX_LENGTH + 1} characters`,
    { ids: ["a", "x".repeat(DELETE_ID_MAX_LENGTH + 1)] },
    422,
    "/ids/1",
  ),
  deletes(
    `an id of ${DELETE_ID_MAX_LENGTH + 1} emoji`,
    { ids: [emoji(DELETE_ID_MAX_LENGTH + 1)] },
    422,
    "/ids/0",
  ),
  deletes("no ids", {}, 422, "/ids"),
  deletes("an empty list", { ids: [] }, 422, "/ids"),
  deletes(
    `${DELETE_IDS_MAX + 1} ids`,
    { ids: Array.from({ length: DELETE_IDS_MAX + 1 }, (_, i) => `${i}`) },
    422,
    "/ids",
  ),
  deletes("ids as a string", { ids: "abc" }, 422, "/ids"),
  deletes("ids null", { ids: null }, 422, "/ids"),
  deletes("numbers", { ids: [1, 2] }, 422),
  deletes("a null id", { ids: [null] }, 422),
  deletes("an extra field", { ids: ["a"], force: true }, 422, "/force"),
  deletes("ids twice", '{"ids":["a"],"ids":["b"]}', 422, "/ids"),
  deletes("__proto__", '{"ids":["a"],"__proto__":{}}', 422, "/__proto__"),
  deletes("a list", ["a"], 422),
  deletes("null", "null", 422),
  deletes("malformed JSON", '{"ids": [', 400),
  {
    name: "text/plain",
    request: {
      method: "DELETE",
      path: "/pets",
      ...json({ ids: ["a"] }, { "content-type": "text/plain" }),
    },
    expectedStatus: 415,
  },
  {
    name: "a 11.5 MiB body, streamed",
    request: { method: "DELETE", path: "/pets", ...streamed(hugeJson(11.5 * MiB), JSON_TYPE) },
    expectedStatus: 413,
  },
];

const WRONG_KEYS: Record<string, string>[] = [
  {},
  { "x-api-key": "" },
  { "x-api-key": "wrong-key-0123456789" },
];

/** Without the right API key every route is 401, whatever else is wrong with the request. */
export const PETS_AUTH_CASES: HttpCase[] = WRONG_KEYS.flatMap((headers, k) => {
  const who = ["no key", "an empty key", "a wrong key"][k] as string;
  const anonymous = (name: string, request: Omit<HttpCase["request"], "anonymous">): HttpCase => ({
    name: `${who}: ${name}`,
    request: { ...request, anonymous: true, headers: { ...request.headers, ...headers } },
    expectedStatus: 401,
  });
  return [
    anonymous("GET /pets", { method: "GET", path: "/pets" }),
    anonymous("GET /pets?limit=abc", { method: "GET", path: "/pets?limit=abc&limit=0" }),
    anonymous("POST /pets", postPet(json(pet({})))),
    anonymous("POST /pets with malformed JSON", postPet(json("{not json"))),
    anonymous("POST /pets with an invalid pet", postPet(json({ name: "" }))),
    anonymous("POST /pets as text/plain", postPet(json(pet({}), { "content-type": "text/plain" }))),
    anonymous("POST /pets over the limit", postPet(bytes(overJsonLimit, JSON_TYPE))),
    anonymous(
      "POST /pets streamed over the limit",
      postPet(streamed(hugeJson(11.5 * MiB), JSON_TYPE)),
    ),
    anonymous("DELETE /pets", { method: "DELETE", path: "/pets", ...json({ ids: ["x"] }) }),
    anonymous("DELETE /pets with no body", { method: "DELETE", path: "/pets" }),
    anonymous("PUT /pets, a method it does not take", { method: "PUT", path: "/pets" }),
    anonymous(
      "POST /pets/{id}/photo",
      photoTo("/pets/{pet}/photo", multipart([["file", pngBytes()]])),
    ),
    anonymous(
      "POST /pets/{id}/photo of an unknown pet",
      photoTo("/pets/nope/photo", multipart([])),
    ),
    anonymous("POST /pets/{id}/photo as JSON", photoTo("/pets/{pet}/photo", json({}))),
    anonymous(
      "POST /pets/{id}/photo past the envelope",
      photoTo(
        "/pets/{pet}/photo",
        bytes(overEnvelope.data, { "content-type": overEnvelope.contentType }),
      ),
    ),
    anonymous(
      "POST /pets/{id}/photo streamed past the envelope",
      photoTo(
        "/pets/{pet}/photo",
        streamed(overEnvelope.data, { "content-type": overEnvelope.contentType }),
      ),
    ),
  ];
});

/** Paths with routes, methods without: 405 and `Allow`; a path without routes stays 404. */
export const PETS_METHOD_CASES: HttpCase[] = [
  wrongMethod("PUT", "/pets", "GET, HEAD, POST, DELETE"),
  wrongMethod("PATCH", "/pets/", "GET, HEAD, POST, DELETE"),
  wrongMethod("OPTIONS", "/pets?has_photos=true", "GET, HEAD, POST, DELETE"),
  wrongMethod("GET", "/pets/{pet}/photo", "POST"),
  wrongMethod("DELETE", "/pets/{pet}/photo", "POST"),
  { name: "GET /pets/{pet}", request: { method: "GET", path: "/pets/{pet}" }, expectedStatus: 404 },
  { name: "PUT /pets/{pet}", request: { method: "PUT", path: "/pets/{pet}" }, expectedStatus: 404 },
];

export const PETS_CASES: Record<string, HttpCase[]> = {
  "POST /pets": CREATE_PET_CASES,
  "GET /pets": LIST_PETS_CASES,
  "POST /pets/{id}/photo": UPLOAD_PHOTO_CASES,
  "DELETE /pets": DELETE_PETS_CASES,
  "wrong methods": PETS_METHOD_CASES,
  "auth first": PETS_AUTH_CASES,
};
