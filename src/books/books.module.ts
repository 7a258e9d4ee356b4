/** The books catalogue as a feature: its service over its repositories, REST and gRPC. */
import type { AuthService } from "../auth/auth.service.ts";
import { bearerGuard } from "../auth/bearer.guard.ts";
import type { Cache } from "../cache/cache.ts";
import type { Db } from "../db/client.ts";
import { unitOfWork } from "../db/unit-of-work.ts";
import { createOutboxWriter } from "../events/outbox.repository.ts";
import type { FeatureModule } from "../feature-module.ts";
import { BookService } from "../gen/petbooks/v1/books_pb.ts";
import { type BookWatchOptions, createBookWatch } from "../grpc/book-watch.ts";
import { booksRoutes } from "./books.http.ts";
import { createBooksRepository } from "./books.repository.ts";
import { type BookRpcDeps, bookRpc } from "./books.rpc.ts";
import { type BooksData, type BooksService, createBooksService } from "./books.service.ts";
import { createPageTokens, pageTokenKey, randomPageTokenKey } from "./page-tokens.ts";

export interface BooksModuleDeps {
  db: Db;
  cache: Cache;
  /** Checks the bearer tokens of every route. */
  auth: AuthService;
  /** Called after every committed write: the relay publishes sooner. */
  onEventCommitted?: () => void;
  /** The repositories the service writes through; the real ones unless a benchmark swaps them. */
  openData?: (db: Db) => BooksData;
  /**
   * The secret ListBooks page tokens are signed with (a key is derived from it): JWT_SECRET, so
   * every replica shares it. Without one, a random key of this process, with a warning.
   */
  pageTokenSecret?: string | undefined;
  /** WatchBooks' live events and retained ones (book-watch.ts); absent, it is UNIMPLEMENTED. */
  watch?: Omit<BookWatchOptions, "shutdown" | "logger"> | undefined;
}

export const openBooksData = (db: Db): BooksData => ({
  books: createBooksRepository(db),
  outbox: createOutboxWriter(db),
});

/** The books service alone, for commands that serve nothing (`seed`). */
export function createBooksServiceFor(
  deps: Pick<BooksModuleDeps, "db" | "cache" | "onEventCommitted" | "openData">,
): BooksService {
  return createBooksService({
    data: unitOfWork(deps.db, deps.openData ?? openBooksData),
    cache: deps.cache,
    onEventCommitted: deps.onEventCommitted,
  });
}

/** BookService over gRPC, on `service`; `grpc` serves it without the REST routes. */
export function createBooksRpc(
  service: BookRpcDeps["books"],
  deps: Pick<BooksModuleDeps, "pageTokenSecret" | "watch">,
): NonNullable<FeatureModule["rpc"]> {
  return ({ shutdown, logger }) => {
    if (!deps.pageTokenSecret) {
      logger
        .child({ module: "grpc" })
        .warn(
          "JWT_SECRET is not set: ListBooks page tokens are signed with a random key of this process, so they do not survive a restart or work across replicas",
        );
    }
    const pageTokens = createPageTokens(
      deps.pageTokenSecret ? pageTokenKey(deps.pageTokenSecret) : randomPageTokenKey(),
    );
    const watch =
      deps.watch &&
      createBookWatch({ ...deps.watch, shutdown, logger: logger.child({ module: "watch" }) });
    return {
      typeName: BookService.typeName,
      register: (router) =>
        router.service(BookService, bookRpc({ books: service, pageTokens, watch })),
    };
  };
}

export function createBooksModule(
  deps: BooksModuleDeps,
): FeatureModule<BooksService> & Required<Pick<FeatureModule, "rpc">> {
  const service = createBooksServiceFor(deps);
  return {
    name: "books",
    service,
    docsTag: {
      name: "books",
      description: "The books catalogue; every route needs a bearer token.",
    },
    http: booksRoutes(service),
    guards: [bearerGuard(deps.auth, ["/books"])],
    rpc: createBooksRpc(service, deps),
  };
}
