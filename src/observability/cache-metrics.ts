/**
 * Hits and misses of a cache, by cache: a decorator over the Cache interface, so neither the
 * Redis nor the in-memory cache knows about metrics. Failures are counted where they are caught
 * (redis-cache.ts's `onFailure`), by operation.
 */
import { type Cache, UNAVAILABLE } from "../cache/cache.ts";
import type { Metrics } from "./metrics.ts";

const ID_SUFFIX = /:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `book:<uuid>` → `book`, `books:list` → `books:list`: namespaces without their ids. */
export function cacheName(namespace: string): string {
  return namespace.replace(ID_SUFFIX, "");
}

/** `cache` itself without metrics, or with no cache at all (CACHE_TTL=0): nothing to count. */
export function instrumentCache(cache: Cache, metrics: Metrics | undefined): Cache {
  if (!metrics || cache.kind === "off") return cache;
  const { hits, misses } = metrics.cache;
  return {
    kind: cache.kind,
    async read(namespace, key) {
      const read = await cache.read(namespace, key);
      if (read.value !== undefined) hits.inc({ cache: cacheName(namespace) });
      // An unavailable cache is counted as an error by the cache itself, not as a miss.
      else if (read.version !== UNAVAILABLE) misses.inc({ cache: cacheName(namespace) });
      return read;
    },
    write: (namespace, key, version, value) => cache.write(namespace, key, version, value),
    invalidate: (namespaces) => cache.invalidate(namespaces),
    close: () => cache.close(),
  };
}

/** For redis-cache.ts: a failed or timed-out operation (`read`, `write`, `invalidate`, `connection`). */
export function cacheFailureCounter(
  metrics: Metrics | undefined,
): ((operation: string) => void) | undefined {
  return metrics && ((operation) => metrics.cache.errors.inc({ operation }));
}
