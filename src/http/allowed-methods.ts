/**
 * The methods a path answers, read off the app's routes: a request whose path has routes but
 * none for its method gets 405 with them in `Allow` (RFC 9110, 15.5.6), not a 404 that says the
 * resource is not there.
 */

export interface RouteEntry {
  method: string;
  /** Elysia's template: `/books/:id`, an optional `:id?`, a trailing `*`. */
  path: string;
}

/** Methods in the order `Allow` lists them; others after these, by name. */
const ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
const rank = (method: string) => {
  const index = ORDER.indexOf(method);
  return index === -1 ? ORDER.length : index;
};

const segmentsOf = (path: string) => {
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  return trimmed.split("/").slice(1);
};

/** Whether `path` (no query) fits the route template's segments. */
function fits(template: string[], path: string[]): boolean {
  let at = 0;
  for (const part of template) {
    if (part === "*") return true;
    if (part.startsWith(":") && part.endsWith("?")) {
      if (at < path.length && path[at] !== "") at++;
      continue;
    }
    const segment = path[at++];
    if (segment === undefined) return false;
    if (part.startsWith(":") ? segment === "" : segment !== part) return false;
  }
  return at === path.length;
}

/**
 * From the routes as they are when first asked (every module registered by then), the methods
 * that answer `path`, in `ORDER`: HEAD wherever GET is (Bun answers it from the GET route), any
 * other method the routes use after those. None: no route has that path.
 */
export function allowedMethods(routes: () => readonly RouteEntry[]) {
  let templates: { method: string; segments: string[] }[] | undefined;
  return (path: string): string[] => {
    templates ??= routes().map((r) => ({
      method: r.method.toUpperCase(),
      segments: segmentsOf(r.path),
    }));
    const segments = segmentsOf(path);
    const methods = new Set<string>();
    for (const template of templates) {
      if (fits(template.segments, segments)) methods.add(template.method);
    }
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  };
}
