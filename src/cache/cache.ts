/**
 * A read-through cache with versioned namespaces, so a write can invalidate "this book" or
 * "every list page" at once, and a reader that raced with a write can never store stale data:
 * `write` only lands if the namespace is still at the version `read` saw.
 */
export interface CacheRead {
  value: string | undefined;
  /** Opaque: hand it back to `write`. */
  version: string;
}

export interface Cache {
  readonly kind: "redis" | "memory" | "off";
  read(namespace: string, key: string): Promise<CacheRead>;
  write(namespace: string, key: string, version: string, value: string): Promise<void>;
  /** Moves each namespace to a new version; resolves once no reader can see the old entries. */
  invalidate(namespaces: string[]): Promise<void>;
  close(): Promise<void>;
}

/** A read that must not be written back (the cache was unavailable). */
export const UNAVAILABLE = "unavailable";

/** In-process cache for a single instance (the embedded defaults): same contract, bounded size. */
export function createMemoryCache(ttlSeconds: number, maxEntries = 10_000): Cache {
  const entries = new Map<string, { value: string; expiresAt: number }>();
  const versions = new Map<string, number>();
  let sequence = 0;
  const versionOf = (namespace: string) => String(versions.get(namespace) ?? 0);
  const entryKey = (namespace: string, version: string, key: string) =>
    `${namespace}\u0000${version}\u0000${key}`;

  return {
    kind: "memory",
    async read(namespace, key) {
      const version = versionOf(namespace);
      const entry = entries.get(entryKey(namespace, version, key));
      if (entry && entry.expiresAt > Date.now()) return { value: entry.value, version };
      return { value: undefined, version };
    },
    async write(namespace, key, version, value) {
      if (version !== versionOf(namespace)) return;
      if (entries.size >= maxEntries) {
        // Maps iterate in insertion order: drop the oldest entry.
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) entries.delete(oldest);
      }
      entries.set(entryKey(namespace, version, key), {
        value,
        expiresAt: Date.now() + ttlSeconds * 1000,
      });
    },
    async invalidate(namespaces) {
      for (const namespace of namespaces) {
        sequence += 1;
        const old = versionOf(namespace);
        versions.set(namespace, sequence);
        const prefix = `${namespace}\u0000${old}\u0000`;
        for (const key of entries.keys()) if (key.startsWith(prefix)) entries.delete(key);
      }
    },
    async close() {
      entries.clear();
    },
  };
}

/** No caching at all (CACHE_TTL=0): every read goes to the database. */
export function createNoCache(): Cache {
  return {
    kind: "off",
    read: async () => ({ value: undefined, version: UNAVAILABLE }),
    write: async () => {},
    invalidate: async () => {},
    close: async () => {},
  };
}
