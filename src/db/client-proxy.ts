/**
 * `client` with `methods` in place of its own of the same names; everything else is the client's
 * own, its functions called on the client itself (PGlite and postgres.js keep state in private
 * fields, which a stand-in `this` would not have).
 */
export function overriding<T extends object>(
  client: T,
  methods: Record<string, (...args: never[]) => unknown>,
): T {
  return new Proxy(client, {
    get(target, key) {
      if (typeof key === "string" && Object.hasOwn(methods, key)) return methods[key];
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
