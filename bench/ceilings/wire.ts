/**
 * The ceiling of a PostgreSQL driver for one statement: connections that do nothing but run one
 * named prepared statement without parameters, over Bun.connect, with the messages of a run
 * (Bind, Execute, Sync) built once and written as they are, and the first column of the first row
 * read as bytes off the socket. Pipelined: a run is written at once, answers are matched in
 * order. Trust authentication only (the bench's local PostgreSQL); no TLS, no timeouts, no
 * reconnects: it is a yardstick for bench/driver.bench.ts, not a client.
 */
import type { Socket } from "bun";

const encoder = new TextEncoder();
const cstring = (text: string) => encoder.encode(`${text}\0`);

/** A frontend message: its type byte, its length (itself included), its body. */
function message(type: string, ...body: Uint8Array[]): Uint8Array {
  const content = Buffer.concat(body);
  const out = new Uint8Array(content.length + 5);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, content.length + 4);
  out.set(content, 5);
  return out;
}

function startupMessage(user: string, database: string): Uint8Array {
  const body = Buffer.concat([
    new Uint8Array([0, 3, 0, 0]), // protocol 3.0
    cstring("user"),
    cstring(user),
    cstring("database"),
    cstring(database),
    new Uint8Array([0]),
  ]);
  const out = new Uint8Array(body.length + 4);
  new DataView(out.buffer).setInt32(0, body.length + 4);
  out.set(body, 4);
  return out;
}

const STATEMENT = "wire_ceiling";
const SYNC = message("S");
/** Bind (unnamed portal, the statement, no parameters, text results), Execute (all rows), Sync. */
const RUN = Buffer.concat([
  message("B", cstring(""), cstring(STATEMENT), new Uint8Array([0, 0, 0, 0, 0, 0])),
  message("E", cstring(""), new Uint8Array([0, 0, 0, 0])),
  SYNC,
]);

interface Waiter {
  resolve(value: Uint8Array | undefined): void;
  reject(err: Error): void;
}

/** One connection with `text` prepared on it. */
export async function wireConnection(url: string, text: string) {
  const { hostname, port, username, pathname } = new URL(url);
  const waiting: Waiter[] = [];
  let pending = new Uint8Array(0);
  let value: Uint8Array | undefined;
  let failure: string | undefined;

  const settle = () => {
    const waiter = waiting.shift();
    if (!waiter) throw new Error("an answer nobody asked for");
    if (failure !== undefined) waiter.reject(new Error(failure));
    else waiter.resolve(value);
    value = failure = undefined;
  };

  const read = (chunk: Uint8Array) => {
    const data = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let at = 0;
    while (data.length - at >= 5) {
      const end = at + 1 + view.getInt32(at + 1);
      if (end > data.length) break;
      const type = data[at];
      if (type === 0x44 /* D */ && value === undefined) {
        const length = view.getInt32(at + 7);
        value = length < 0 ? undefined : data.slice(at + 11, at + 11 + length);
      } else if (type === 0x45 /* E */) {
        failure = new TextDecoder().decode(data.subarray(at + 5, end)).replaceAll("\0", " ");
      } else if (type === 0x52 /* R */ && view.getInt32(at + 5) !== 0) {
        failure = "the wire ceiling speaks trust authentication only";
      } else if (type === 0x5a /* Z */) {
        settle();
      }
      at = end;
    }
    pending = data.slice(at);
  };

  const answer = () =>
    new Promise<Uint8Array | undefined>((resolve, reject) => waiting.push({ resolve, reject }));
  const opened = Promise.withResolvers<Socket>();
  const startup = answer();
  await Bun.connect({
    hostname,
    port: Number(port || 5432),
    socket: {
      open: (socket) => {
        socket.write(startupMessage(decodeURIComponent(username), pathname.slice(1)));
        opened.resolve(socket);
      },
      data: (_socket, chunk) => read(chunk),
      error: (_socket, err) => opened.reject(err),
      close: () => {
        for (const waiter of waiting.splice(0)) waiter.reject(new Error("connection closed"));
      },
    },
  });
  const socket = await opened.promise;
  await startup;
  const prepared = answer();
  socket.write(
    Buffer.concat([message("P", cstring(STATEMENT), cstring(text), new Uint8Array([0, 0])), SYNC]),
  );
  await prepared;
  return {
    /** The statement's first column of its first row, as PostgreSQL sent it. */
    run(): Promise<Uint8Array | undefined> {
      const answered = answer();
      socket.write(RUN);
      return answered;
    },
    close: () => socket.end(message("X")),
  };
}

/** `size` connections (see wireConnection), runs handed out in turn. */
export async function wirePool(url: string, text: string, size: number) {
  const connections = await Promise.all(
    Array.from({ length: size }, () => wireConnection(url, text)),
  );
  let next = 0;
  return {
    run: () => (connections[next++ % connections.length] as (typeof connections)[number]).run(),
    close: () => {
      for (const connection of connections) connection.close();
    },
  };
}
