/**
 * Corrects what @elysiajs/swagger cannot know about our routes: it lists every body as JSON,
 * multipart and text, because our parsers are functions. Routes state what they accept with
 * `consumes(...)` in their `detail`; responses are JSON, errors problem+json.
 */

const CONSUMES = "x-petbooks-consumes";

/** For a route's `detail`: the request content types the route's parser accepts. */
export function consumes(...types: string[]) {
  return { [CONSUMES]: types };
}

type Content = Record<string, { schema?: unknown }>;
interface Operation {
  [CONSUMES]?: string[];
  requestBody?: { content?: Content };
  responses?: Record<string, { content?: Content }>;
}

function only(content: Content | undefined, types: string[]): Content | undefined {
  const schema = content ? Object.values(content)[0]?.schema : undefined;
  if (schema === undefined) return content;
  return Object.fromEntries(types.map((type) => [type, { schema }]));
}

export function tidyOpenApi<T extends { paths?: Record<string, Record<string, Operation>> }>(
  generated: T,
): T {
  // The plugin keeps and reuses its objects between requests: never change them in place.
  const doc = structuredClone(generated);
  for (const item of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(item)) {
      const accepted = op[CONSUMES];
      delete op[CONSUMES];
      if (op.requestBody)
        op.requestBody.content = only(op.requestBody.content, accepted ?? ["application/json"]);
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        const type = Number(status) >= 400 ? "application/problem+json" : "application/json";
        if (response.content) response.content = only(response.content, [type]);
      }
    }
  }
  return doc;
}
