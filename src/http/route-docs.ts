/** What every feature's routes share: their docs `detail`, and the hook of a route with a JSON body. */
import type { TObject, TSchema } from "@sinclair/typebox";
import { consumes } from "./openapi-tidy.ts";
import { jsonBody } from "./parsers.ts";
import { type ProblemRoute, type ProblemStatus, problemResponses } from "./problem-responses.ts";

export interface RouteDocOptions {
  description?: string;
  /** The request content type the route's parser accepts, when it takes a body. */
  consumes?: string;
}

/** A feature's `detail` maker: its docs tag and security on every route, a summary each. */
export function routeDocs(tag: string, security: Record<string, string[]>[]) {
  return (summary: string, options: RouteDocOptions = {}) => ({
    tags: [tag],
    summary,
    ...(options.description && { description: options.description }),
    security,
    ...(options.consumes && consumes(options.consumes)),
  });
}

/**
 * A query's parameters for a route's `detail`, as @elysiajs/swagger lists a route's `query`
 * schema, for routes that read their query themselves (query.ts) and so give Elysia none.
 */
export function queryParameters(schema: TObject) {
  return Object.entries(schema.properties).map(([name, property]) => {
    const { description, examples, ...keywords } = property as TSchema;
    return {
      ...(description !== undefined && { description }),
      ...(examples !== undefined && { examples }),
      schema: keywords,
      in: "query",
      name,
      required: schema.required?.includes(name) ?? false,
    };
  });
}

/**
 * The hook of a route that takes a JSON body: its parser and schema, and its responses, `success`
 * with the problems reading the body answers (400, 413, 415, 422) and the route's own `statuses`.
 */
export function jsonBodyRoute<B extends TObject, R extends object, S extends ProblemStatus>(
  route: Omit<ProblemRoute, "parser" | "body">,
  body: B,
  success: R,
  ...statuses: S[]
) {
  const problems = problemResponses<400 | 413 | 415 | 422 | S>(
    { ...route, parser: "json", body },
    400,
    413,
    415,
    422,
    ...statuses,
  );
  return { parse: jsonBody, body, response: { ...success, ...problems } };
}
