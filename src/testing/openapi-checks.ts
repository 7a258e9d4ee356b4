/**
 * Checks of the served OpenAPI document, shared by the in-process test (http/docs.test.ts) and the
 * contract test of the compiled binary (test/contract/openapi.contract.test.ts).
 */
import Ajv2020 from "ajv/dist/2020";

// biome-ignore lint/suspicious/noExplicitAny: an OpenAPI document is walked dynamically
type Json = any;

/** The code request-context.ts gives each error status (see problem.ts). */
export const CODE_BY_STATUS: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  404: "not_found",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  422: "validation",
  429: "too_many_requests",
  503: "unavailable",
  507: "insufficient_storage",
};

/** JSON Schema 2020-12 keywords, and the ones OpenAPI 3.1 adds; `example` is deprecated there. */
const SCHEMA_KEYWORDS = new Set([
  ...["$schema", "$id", "$ref", "$defs", "$comment", "$anchor", "$dynamicRef", "$dynamicAnchor"],
  ...["type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum"],
  ...["exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems"],
  ...["uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required"],
  ...["dependentRequired", "properties", "patternProperties", "additionalProperties"],
  ...["propertyNames", "items", "prefixItems", "contains", "unevaluatedItems"],
  ...["unevaluatedProperties", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"],
  ...["dependentSchemas", "format", "title", "description", "default", "deprecated", "readOnly"],
  ...["writeOnly", "examples", "contentMediaType", "contentEncoding", "contentSchema"],
  ...["discriminator", "xml", "externalDocs"],
]);
const SUBSCHEMA = ["items", "additionalProperties", "not", "if", "then", "else", "contains"];
const SUBSCHEMA_LISTS = ["anyOf", "allOf", "oneOf", "prefixItems"];
const SUBSCHEMA_MAPS = ["properties", "patternProperties", "$defs", "dependentSchemas"];

export interface SchemaAt {
  /** Where: `GET /pets 422`, `GET /pets query limit`… */
  at: string;
  schema: Json;
  /** In a response (what the API sends), not a request. */
  response: boolean;
}

/** Every top-level schema of the document, with where it is. */
export function documentSchemas(doc: Json): SchemaAt[] {
  const found: SchemaAt[] = [];
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const [method, op] of Object.entries<Json>(item)) {
      const where = `${method.toUpperCase()} ${path}`;
      for (const p of op.parameters ?? []) {
        found.push({ at: `${where} ${p.in} ${p.name}`, schema: p.schema, response: false });
      }
      for (const [type, media] of Object.entries<Json>(op.requestBody?.content ?? {})) {
        found.push({ at: `${where} body ${type}`, schema: media.schema, response: false });
      }
      for (const [status, res] of Object.entries<Json>(op.responses ?? {})) {
        for (const [type, media] of Object.entries<Json>(res.content ?? {})) {
          found.push({ at: `${where} ${status} ${type}`, schema: media.schema, response: true });
        }
        for (const [name, header] of Object.entries<Json>(res.headers ?? {})) {
          found.push({ at: `${where} ${status} ${name}`, schema: header.schema, response: true });
        }
      }
    }
  }
  for (const [name, schema] of Object.entries<Json>(doc.components?.schemas ?? {})) {
    found.push({ at: `components ${name}`, schema, response: false });
  }
  return found;
}

/** A schema and all its subschemas (never a property *named* like a keyword). */
export function* subschemas(schema: Json): Generator<Json> {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return;
  yield schema;
  for (const key of SUBSCHEMA) if (key in schema) yield* subschemas(schema[key]);
  for (const key of SUBSCHEMA_LISTS) for (const s of schema[key] ?? []) yield* subschemas(s);
  for (const key of SUBSCHEMA_MAPS) {
    for (const s of Object.values(schema[key] ?? {})) yield* subschemas(s);
  }
}

/** `at: keyword` for every keyword that is neither JSON Schema, OpenAPI, nor an `x-` extension. */
export function nonStandardKeywords(doc: Json): string[] {
  const found: string[] = [];
  for (const { at, schema } of documentSchemas(doc)) {
    for (const s of subschemas(schema)) {
      for (const key of Object.keys(s)) {
        if (!SCHEMA_KEYWORDS.has(key) && !key.startsWith("x-")) found.push(`${at}: ${key}`);
      }
    }
  }
  return found;
}

/** Every keyword `name` in a schema of the document, as `at: value`. */
export function keywordUses(doc: Json, name: string): string[] {
  const found: string[] = [];
  for (const { at, schema } of documentSchemas(doc)) {
    for (const s of subschemas(schema)) {
      if (name in s) found.push(`${at}: ${JSON.stringify(s[name])}`);
    }
  }
  return found;
}

function validator() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat("uuid", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  ajv.addFormat("binary", true);
  return ajv;
}

/** `at: problem` for every example (schema `examples`, media type `example`) its schema refuses. */
export function invalidExamples(doc: Json): string[] {
  const ajv = validator();
  const found: string[] = [];
  const check = (at: string, schema: Json, example: unknown) => {
    const validate = ajv.compile(schema);
    if (!validate(example)) {
      found.push(`${at}: ${JSON.stringify(example)} ${ajv.errorsText(validate.errors)}`);
    }
  };
  for (const { at, schema } of documentSchemas(doc)) {
    for (const s of subschemas(schema)) {
      for (const example of s.examples ?? []) check(at, s, example);
    }
  }
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const [method, op] of Object.entries<Json>(item)) {
      const contents = [
        op.requestBody?.content,
        ...Object.values<Json>(op.responses ?? {}).map((r) => r.content),
      ];
      for (const content of contents) {
        for (const [type, media] of Object.entries<Json>(content ?? {})) {
          if ("example" in media) check(`${method} ${path} ${type}`, media.schema, media.example);
        }
      }
    }
  }
  return found;
}

export interface ErrorResponse {
  path: string;
  method: string;
  status: number;
  /** Its content types. */
  types: string[];
  /** The response's problem examples (there should be exactly one). */
  examples: Json[];
  /** Its documented headers, by name, with their examples. */
  headers: Record<string, string | undefined>;
}

/** Every documented error response (4xx, 5xx) of every operation. */
export function errorResponses(doc: Json): ErrorResponse[] {
  const found: ErrorResponse[] = [];
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const [method, op] of Object.entries<Json>(item)) {
      for (const [status, res] of Object.entries<Json>(op.responses ?? {})) {
        if (Number(status) < 400) continue;
        const schema = res.content?.["application/problem+json"]?.schema;
        found.push({
          path,
          method,
          status: Number(status),
          types: Object.keys(res.content ?? {}),
          examples: schema?.examples ?? [],
          headers: Object.fromEntries(
            Object.entries<Json>(res.headers ?? {}).map(([name, h]) => [name, h.example]),
          ),
        });
      }
    }
  }
  return found;
}

/** What a problem says, without the request id (which is every request's own). */
export function problemContent(problem: Json) {
  const { request_id: _, ...rest } = problem;
  return rest;
}

/** The documented example of one error response. */
export function documentedProblem(doc: Json, path: string, method: string, status: number) {
  const response = errorResponses(doc).find(
    (r) => r.path === path && r.method === method && r.status === status,
  );
  if (!response) throw new Error(`${method} ${path} documents no ${status}`);
  return { example: response.examples[0], headers: response.headers };
}
