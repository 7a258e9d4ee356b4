/**
 * Corrects what @elysiajs/swagger cannot know about our routes, and what it renders wrongly:
 * - it lists every body and response as JSON, multipart and text, because our parsers are
 *   functions. Routes state what they accept with `consumes(...)` in their `detail`; responses
 *   are JSON unless their schema says otherwise with `mediaType(...)` (problem documents);
 * - it moves a response schema's options (`examples`…) onto the response, where they are no
 *   OpenAPI field, and a parameter's `examples` list where OpenAPI wants a map;
 * - Elysia's query types (`t.Integer`, `t.Numeric`) are a string-or-number union that decodes the
 *   string: the API takes a number, so the document says number;
 * - schemas carry our validation message in `error` (see request-context.ts), which is no
 *   JSON Schema keyword, and Elysia adds defaults that are none (`t.File`'s "File", the first
 *   member of a `t.UnionEnum` in a response).
 */

const CONSUMES = "x-petbooks-consumes";
const RESPONSE_HEADERS = "x-petbooks-response-headers";
const MEDIA_TYPE = "x-petbooks-media-type";

/** For a route's `detail`: the request content types the route's parser accepts. */
export function consumes(...types: string[]) {
  return { [CONSUMES]: types };
}

/** For a response schema's options: its content type, when not `application/json`. */
export function mediaType(type: string) {
  return { [MEDIA_TYPE]: type };
}

/** For a response schema's options: a header the response carries, with its value as example. */
export function responseHeader(name: string, example: string) {
  return { [RESPONSE_HEADERS]: { [name]: example } };
}

// biome-ignore lint/suspicious/noExplicitAny: JSON Schema is walked dynamically here
type Schema = Record<string, any>;
type Content = Record<string, { schema?: Schema }>;
interface Response {
  description?: string;
  content?: Content;
  headers?: Record<string, unknown>;
}
interface Operation {
  [CONSUMES]?: string[];
  parameters?: { schema?: Schema; examples?: unknown }[];
  requestBody?: { content?: Content };
  responses?: Record<string, Response>;
}

function only(content: Content | undefined, types: string[]): Content | undefined {
  const schema = content ? Object.values(content)[0]?.schema : undefined;
  if (schema === undefined) return content;
  return Object.fromEntries(types.map((type) => [type, { schema }]));
}

const SUBSCHEMA = ["items", "additionalProperties", "not", "if", "then", "else", "contains"];
const SUBSCHEMA_LISTS = ["anyOf", "allOf", "oneOf", "prefixItems"];
const SUBSCHEMA_MAPS = ["properties", "patternProperties", "$defs", "dependentSchemas"];

const isObject = (value: unknown): value is Schema =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The number branch of Elysia's `t.Integer`/`t.Numeric`: `anyOf: [string with format, number]`. */
function decodedNumber(schema: Schema): Schema | undefined {
  const members = schema.anyOf;
  if (!Array.isArray(members) || members.length !== 2) return undefined;
  const text = members.find((m) => isObject(m) && m.type === "string");
  const number = members.find((m) => isObject(m) && (m.type === "integer" || m.type === "number"));
  if (!text || !number || !["integer", "numeric"].includes(text.format)) return undefined;
  return number;
}

/** A corrected copy of a schema; `response`: it describes what the API sends, not what it takes. */
function tidySchema(schema: unknown, response: boolean): unknown {
  if (!isObject(schema)) return schema;
  const out: Schema = { ...schema };
  const number = decodedNumber(schema);
  if (number) {
    delete out.anyOf;
    Object.assign(out, number);
  }
  delete out.error;
  if (out.format === "binary" && out.default === "File") delete out.default;
  if (response) delete out.default;
  for (const key of SUBSCHEMA) if (key in out) out[key] = tidySchema(out[key], response);
  for (const key of SUBSCHEMA_LISTS) {
    if (Array.isArray(out[key])) out[key] = out[key].map((s: unknown) => tidySchema(s, response));
  }
  for (const key of SUBSCHEMA_MAPS) {
    if (isObject(out[key])) {
      out[key] = Object.fromEntries(
        Object.entries(out[key]).map(([name, s]) => [name, tidySchema(s, response)]),
      );
    }
  }
  return out;
}

/** The fields of an OpenAPI Response Object; anything else the plugin put there is schema. */
const RESPONSE_FIELDS = new Set(["description", "headers", "content", "links"]);

/**
 * The plugin moves an object schema's options (`examples`, `title`…) out of the schema onto the
 * response, where they mean nothing: they go back into the schema.
 */
function tidyResponse(response: Response) {
  const moved: Schema = {};
  let headers: Record<string, string> | undefined;
  let type = "application/json";
  for (const key of Object.keys(response)) {
    if (RESPONSE_FIELDS.has(key)) continue;
    const value = (response as Schema)[key];
    if (key === RESPONSE_HEADERS) headers = value;
    else if (key === MEDIA_TYPE) type = value;
    else if (!key.startsWith("x-")) moved[key] = value;
    else continue;
    delete (response as Schema)[key];
  }
  if (headers) {
    response.headers = Object.fromEntries(
      Object.entries(headers).map(([name, example]) => [
        name,
        { schema: { type: "string" }, example },
      ]),
    );
  }
  if (!response.content) return;
  response.content = only(response.content, [type]);
  for (const media of Object.values(response.content ?? {})) {
    media.schema = tidySchema({ ...moved, ...media.schema }, true) as Schema;
  }
}

export function tidyOpenApi<
  T extends {
    paths?: Record<string, Record<string, Operation>>;
    components?: { schemas?: Schema };
  },
>(generated: T): T {
  // The plugin keeps and reuses its objects between requests: never change them in place.
  const doc = structuredClone(generated);
  for (const item of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(item)) {
      const accepted = op[CONSUMES];
      delete op[CONSUMES];
      for (const parameter of op.parameters ?? []) {
        // The plugin lifts a schema's `examples` (a list) onto the parameter, where OpenAPI wants
        // a map of Example Objects: back into the schema with it.
        const { examples } = parameter;
        if (Array.isArray(examples)) {
          delete parameter.examples;
          parameter.schema = { ...parameter.schema, examples };
        }
        parameter.schema = tidySchema(parameter.schema, false) as Schema;
      }
      if (op.requestBody) {
        op.requestBody.content = only(op.requestBody.content, accepted ?? ["application/json"]);
        for (const media of Object.values(op.requestBody.content ?? {})) {
          media.schema = tidySchema(media.schema, false) as Schema;
        }
      }
      for (const response of Object.values(op.responses ?? {})) tidyResponse(response);
    }
  }
  const schemas = doc.components?.schemas;
  if (schemas) {
    for (const [name, schema] of Object.entries(schemas)) {
      schemas[name] = tidySchema(schema, false);
    }
  }
  return doc;
}
