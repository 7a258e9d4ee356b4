/** A client span per cache call, child of the request's span. Installed only with tracing on. */
import { SpanKind } from "@opentelemetry/api";
import type { Cache } from "../cache/cache.ts";
import { cacheName } from "./cache-metrics.ts";
import type { Tracing } from "./tracing.ts";

export function traceCache(cache: Cache, tracing: Tracing | undefined): Cache {
  if (!tracing || cache.kind === "off") return cache;
  const system = cache.kind === "redis" ? "redis" : "memory";
  return {
    kind: cache.kind,
    read: (namespace, key) =>
      tracing.inSpan("cache read", SpanKind.CLIENT, async (span) => {
        span.setAttributes({ "db.system.name": system, "petbooks.cache": cacheName(namespace) });
        const read = await cache.read(namespace, key);
        span.setAttribute("petbooks.cache.hit", read.value !== undefined);
        return read;
      }),
    write: (namespace, key, version, value) =>
      tracing.inSpan("cache write", SpanKind.CLIENT, async (span) => {
        span.setAttributes({ "db.system.name": system, "petbooks.cache": cacheName(namespace) });
        await cache.write(namespace, key, version, value);
      }),
    invalidate: (namespaces) =>
      tracing.inSpan("cache invalidate", SpanKind.CLIENT, async (span) => {
        span.setAttributes({
          "db.system.name": system,
          "petbooks.cache.namespaces": namespaces.length,
        });
        await cache.invalidate(namespaces);
      }),
    close: () => cache.close(),
  };
}
