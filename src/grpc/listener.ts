/**
 * One cleartext port for HTTP/2 and HTTP/1.1. gRPC needs HTTP/2 (h2c with prior knowledge); the
 * Connect protocol and gRPC-Web also run over HTTP/1.1 (browsers, curl without --http2), which
 * node's h2c server refuses. Each connection goes to the server its first bytes ask for: the
 * HTTP/2 connection preface, or anything else (an HTTP/1.1 request line).
 */
import type http from "node:http";
import type http2 from "node:http2";
import net from "node:net";
import type { Logger } from "../logger.ts";

/** RFC 9113 §3.4: every HTTP/2 connection opens with these bytes (then "\r\n\r\nSM\r\n\r\n"). */
const PREFACE = Buffer.from("PRI * HTTP/2.0");

/** A connection that has not said which protocol it speaks within this long is closed. */
export const FIRST_BYTES_TIMEOUT_MS = 10_000;

/**
 * An HTTP/1.1 connection with no traffic either way for this long while no request is in flight
 * (before its first, or between two) is closed. Bun's node:http applies no `headersTimeout` to
 * connections handed to it, so without this a client that sends part of a request line and then
 * nothing holds its connection (a descriptor) for good. A call in flight may be quiet as long as
 * it likes (a health Watch between two changes).
 */
export const HTTP1_IDLE_TIMEOUT_MS = 60_000;

export interface DualProtocolListener extends net.Server {
  /**
   * Closes the connections not yet handed to either server: `close` waits for every connection,
   * and one that never sends a byte would hold it up.
   */
  destroyUnrouted(): void;
}

export function dualProtocolListener(
  h2: http2.Http2Server,
  h1: http.Server,
  logger: Logger,
  options: { http1IdleTimeoutMs?: number } = {},
): DualProtocolListener {
  const http1IdleMs = options.http1IdleTimeoutMs ?? HTTP1_IDLE_TIMEOUT_MS;
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const { socket } = req;
    socket.setTimeout(0);
    res.once("close", () => {
      if (!socket.destroyed) socket.setTimeout(http1IdleMs);
    });
  });
  const unrouted = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    unrouted.add(socket);
    socket.on("error", (err) => logger.debug("connection error", { err }));
    socket.on("close", () => unrouted.delete(socket));
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => {
      if (unrouted.has(socket)) socket.destroy();
    });
    let seen = Buffer.alloc(0);
    const route = () => {
      for (let chunk = socket.read() as Buffer | null; chunk; chunk = socket.read()) {
        seen = Buffer.concat([seen, chunk]);
      }
      // Enough bytes to tell, or a short HTTP/1.1 request that already differs from the preface.
      const decided =
        seen.length >= PREFACE.length || !PREFACE.subarray(0, seen.length).equals(seen);
      if (!decided) return;
      socket.off("readable", route);
      socket.setTimeout(0);
      unrouted.delete(socket);
      socket.unshift(seen);
      const http2Preface = seen.subarray(0, PREFACE.length).equals(PREFACE);
      if (!http2Preface) {
        socket.on("timeout", () => socket.destroy());
        socket.setTimeout(http1IdleMs);
      }
      (http2Preface ? h2 : h1).emit("connection", socket);
    };
    socket.on("readable", route);
  });
  return Object.assign(server, {
    destroyUnrouted() {
      for (const socket of unrouted) socket.destroy();
    },
  });
}
