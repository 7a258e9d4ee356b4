// Files imported `with { type: "file" }` resolve to a path (embedded in the compiled binary).
declare module "@electric-sql/pglite/*.wasm" {
  const path: string;
  export default path;
}
declare module "@electric-sql/pglite/pglite.data" {
  const path: string;
  export default path;
}
declare module "swagger-ui-dist/*" {
  const path: string;
  export default path;
}
