/**
 * WatchBooks against the compiled binary, as the README shows it: `petbooks dev`, a stream opened
 * with `buf curl` (reflection, the REST bearer token), books written with REST; a resume over
 * gRPC-Web; and SIGTERM ending the open streams with UNAVAILABLE.
 */

import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { BookService, type WatchBooksResponse } from "../src/gen/petbooks/v1/books_pb.ts";
import { startDev } from "../src/testing/binary.ts";
import { SETUP_TIMEOUT_MS } from "../src/testing/timeouts.ts";
import { until } from "../src/testing/until.ts";
import { useBinaryCommand } from "./contract/harness.ts";

const BUF = join(import.meta.dir, "..", "node_modules", ".bin", "buf");
let authorization = "";

const json = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

const running = useBinaryCommand(
  startDev,
  {
    API_KEY: "watch-e2e-api-key-0123456789",
    JWT_SECRET: "watch-e2e-jwt-secret-0123456789-0123456789",
  },
  undefined,
  "embedded",
);

beforeAll(async () => {
  const dev = running();
  await fetch(
    `${dev.httpUrl}/auth/register`,
    json({ username: "watcher", password: "long password" }),
  );
  const token = (await (
    await fetch(
      `${dev.httpUrl}/auth/token`,
      json({ grant_type: "password", username: "watcher", password: "long password" }),
    )
  ).json()) as { access_token: string };
  authorization = `Bearer ${token.access_token}`;
}, SETUP_TIMEOUT_MS);

/** `buf curl` streaming WatchBooks, as the README shows it; its output collected as it comes. */
function bufCurlWatch(request: object) {
  const proc = Bun.spawn(
    [
      BUF,
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `Authorization: ${authorization}`,
      "-d",
      JSON.stringify(request),
      `${running().grpcUrl}/petbooks.v1.BookService/WatchBooks`,
    ],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  let stdout = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      stdout += decoder.decode(chunk);
    }
  })();
  return {
    proc,
    output: () => stdout,
    async finished() {
      const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      await reading;
      return { code, stderr, stdout };
    },
  };
}

/** The JSON messages buf curl printed one after the other (each pretty-printed). */
function messages(output: string): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  let depth = 0;
  let start = 0;
  let inString = false;
  for (let i = 0; i < output.length; i++) {
    const c = output[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" && depth++ === 0) start = i;
    else if (c === "}" && --depth === 0) found.push(JSON.parse(output.slice(start, i + 1)));
  }
  return found;
}

async function createBook(title: string): Promise<string> {
  const created = await fetch(
    `${running().httpUrl}/books`,
    json({ title, author: "Someone", published_on: "1999-01-02" }, { authorization }),
  );
  expect(created.status).toBe(201);
  return ((await created.json()) as { id: string }).id;
}

const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", authorization);
  return next(req);
};

/** A gRPC-Web client of BookService with the user's token. */
const grpcWebClient = () =>
  createClient(
    BookService,
    createGrpcWebTransport({
      baseUrl: running().grpcUrl,
      httpVersion: "2",
      interceptors: [bearer],
    }),
  );

describe("WatchBooks (compiled binary, petbooks dev)", () => {
  let firstEventId = "";
  let bookId = "";
  let stream: ReturnType<typeof bufCurlWatch>;

  test("a book created, changed and deleted with curl appears in a buf curl stream, in order", async () => {
    stream = bufCurlWatch({});
    // The stream is live once a book created now shows up in it (no speed assumed: a sentinel
    // book per try, each waited for a while).
    for (let ready = false; !ready; ) {
      const sentinel = await createBook("sentinel");
      const deadline = Date.now() + 2_000;
      while (!ready && Date.now() < deadline) {
        ready = stream.output().includes(sentinel);
        if (!ready) await Bun.sleep(50);
      }
    }
    bookId = await createBook("Watched");
    await fetch(`${running().httpUrl}/books/${bookId}`, {
      method: "PATCH",
      headers: { authorization, "content-type": "application/json" },
      body: JSON.stringify({ title: "Watched, renamed" }),
    });
    await fetch(`${running().httpUrl}/books/${bookId}`, {
      method: "DELETE",
      headers: { authorization },
    });
    await until("the condition", () => stream.output().includes("BOOK_EVENT_TYPE_DELETED"));
    const events = messages(stream.output())
      .map((m) => m.event as { id: string; type: string; book: { id: string; title: string } })
      .filter((e) => e?.book.id === bookId);
    expect(events.map((e) => [e.type, e.book.title])).toEqual([
      ["BOOK_EVENT_TYPE_CREATED", "Watched"],
      ["BOOK_EVENT_TYPE_UPDATED", "Watched, renamed"],
      ["BOOK_EVENT_TYPE_DELETED", "Watched, renamed"],
    ]);
    firstEventId = events[0]?.id ?? "";
  });

  test("a resume over gRPC-Web replays what came after the event it names", async () => {
    const client = grpcWebClient();
    const hangUp = new AbortController();
    const replayed: WatchBooksResponse[] = [];
    for await (const response of client.watchBooks(
      { resumeAfterEventId: firstEventId, bookIds: [bookId] },
      { signal: hangUp.signal },
    )) {
      if (response.event) replayed.push(response);
      if (replayed.length === 2) break;
    }
    expect(replayed.map((r) => r.event?.book?.title)).toEqual([
      "Watched, renamed",
      "Watched, renamed",
    ]);
  });

  test("SIGTERM ends open streams with UNAVAILABLE and the process exits 0", async () => {
    const client = grpcWebClient();
    // Resuming, so the first response proves the stream is open before the signal.
    const opened = Promise.withResolvers<void>();
    const open = (async () => {
      try {
        for await (const _ of client.watchBooks({ resumeAfterEventId: firstEventId })) {
          opened.resolve();
        }
        return undefined;
      } catch (err) {
        return ConnectError.from(err);
      } finally {
        opened.resolve();
      }
    })();
    await opened.promise;
    expect(await running().stop("SIGTERM")).toBe(0);
    expect((await open)?.code).toBe(Code.Unavailable);
    const curl = await stream.finished();
    expect(curl.code).not.toBe(0);
    expect(curl.stderr.toLowerCase()).toContain("unavailable");
  });
});
