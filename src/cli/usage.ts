export const MAIN_USAGE = `petbooks: a pets registry and books catalogue

Usage: petbooks <command> [options]

Commands:
  serve                   Run the HTTP API (pets, books) until SIGTERM/SIGINT
  grpc                    Run the gRPC API (books, health, reflection) and the event consumer
  dev                     serve + grpc + consumer in one process, for local use
  export-pets             Write every pet as JSON to stdout
  migrate                 Apply pending database migrations and exit
  seed                    Add demo data (a demo user, pets with photos, books), idempotently
  healthcheck             Exit 0 if the local serve (or, with --grpc, grpc) is ready

Options:
  -h, --help              Show help (also: petbooks <command> --help)
  -v, --version           Show the version

Configuration comes from the environment (and a .env file): see the README.`;

export const SERVE_USAGE = `Usage: petbooks serve

Runs the HTTP API on HOST:PORT (default 0.0.0.0:3000). Applies pending migrations first.
Requires API_KEY. Uses PostgreSQL when DATABASE_URL is set, otherwise the embedded
database in DATA_DIR (default ./data). Stops gracefully on SIGTERM/SIGINT.`;

export const GRPC_USAGE = `Usage: petbooks grpc

Serves petbooks.v1.BookService (GetBook, ListBooks), grpc.health.v1.Health and server reflection
on HOST:GRPC_PORT (default 0.0.0.0:50051) over cleartext HTTP/2, to gRPC, gRPC-Web and Connect
clients. Applies pending migrations first. Uses PostgreSQL when DATABASE_URL is set, otherwise
the embedded database in DATA_DIR (default ./data), which only one process can open: give
\`serve\` and \`grpc\` a PostgreSQL to share. Stops gracefully on SIGTERM/SIGINT.
BookService calls need \`authorization: Bearer <token>\` (a token from serve's /auth/token),
so JWT_SECRET is required; GRPC_AUTH=none serves BookService without tokens, for a trusted
private network. Health and reflection need no token.`;

export const DEV_USAGE = `Usage: petbooks dev

Runs everything in one process for local use: the HTTP API on PORT, the gRPC server on
GRPC_PORT and the book event consumer, connected by the in-process bus (KAFKA_BROKERS is
ignored). Needs API_KEY and JWT_SECRET; uses the embedded defaults unless DATABASE_URL or
REDIS_URL say otherwise. A book created over REST is then readable over gRPC, and its event is
logged by the consumer.`;

export const EXPORT_PETS_USAGE = `Usage: petbooks export-pets [--has-photos | --has-photos=true | --has-photos=false]

Writes {"pets":[...]} to stdout, newest first; photos are listed as URLs.
  --has-photos, --has-photos=true   only pets with at least one photo
  --has-photos=false                only pets without photos`;

export const MIGRATE_USAGE = `Usage: petbooks migrate

Applies pending database migrations and exits. Safe to run while other instances start.`;

export const HEALTHCHECK_USAGE = `Usage: petbooks healthcheck [--grpc]

Exits 0 when the petbooks on this machine is ready, 1 otherwise (for container HEALTHCHECKs):
  (default)  GET http://127.0.0.1:PORT/readyz of \`serve\`
  --grpc     grpc.health.v1.Health/Check on 127.0.0.1:GRPC_PORT of \`grpc\``;

export const SEED_USAGE = `Usage: petbooks seed [--pets N] [--books N]

Adds demo data through the same services the API uses: the user "demo" (password
"demo-password"), pets of both kinds (a quarter with a small generated photo) and books with
real-looking titles, authors and dates. Idempotent: it tops up to N pets and N books (default 200
each) and creates the demo user only once. A progress bar shows on a terminal.`;
