/**
 * A TCP proxy for outage tests: put it between a process and a service (PostgreSQL), then cut
 * the service off without touching it: every proxied connection is closed and new ones are
 * refused (accepted and closed at once) or blackholed (accepted and never answered, so only the
 * client's own timeouts end the wait), until `resume`.
 */
import type { Socket, TCPSocketListener } from "bun";

export type OutageMode = "refuse" | "blackhole";

export interface TcpProxy {
  /** The port to connect to instead of the service's. */
  readonly port: number;
  /** Connections forwarded right now. */
  readonly openConnections: number;
  /** Connections accepted since the start, forwarded or not. */
  readonly accepted: number;
  cut(mode: OutageMode): void;
  /**
   * The network goes silent: open connections stay open but nothing more crosses them, either
   * way (no FIN, no RST, as a dead link or a lost NAT entry), and new ones are blackholed.
   */
  silence(): void;
  /**
   * Bytes are lost: open connections stay open and go on reading, but what either side sends is
   * thrown away (a broken middlebox), until `resume`, which forwards again.
   */
  drop(): void;
  resume(): void;
  stop(): void;
}

interface Pair {
  client: Socket<Pair>;
  upstream?: Socket<Pair>;
  /** What the client sent before the upstream connection was open. */
  early: Uint8Array[];
  /** Bytes a socket could not take yet, per direction, written on its `drain`. */
  toClient: Uint8Array[];
  toUpstream: Uint8Array[];
  /** Blackholed or being closed: nothing more is forwarded. */
  dead: boolean;
}

/** Writes what the socket takes now and keeps the rest, in order, for its next `drain`. */
function send(socket: Socket<Pair>, queue: Uint8Array[], data?: Uint8Array) {
  if (data) queue.push(data);
  while (queue.length > 0) {
    const chunk = queue[0] as Uint8Array;
    const written = socket.write(chunk);
    if (written === chunk.length) {
      queue.shift();
    } else {
      queue[0] = chunk.subarray(Math.max(0, written));
      return;
    }
  }
}

export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  let mode: OutageMode | undefined;
  let dropping = false;
  let accepted = 0;
  const pairs = new Set<Pair>();
  const held = new Set<Socket<Pair>>();
  const close = (pair: Pair) => {
    pair.dead = true;
    pairs.delete(pair);
    pair.client.terminate();
    pair.upstream?.terminate();
  };

  const listener: TCPSocketListener<Pair> = Bun.listen<Pair>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        accepted++;
        const pair: Pair = { client, early: [], toClient: [], toUpstream: [], dead: false };
        client.data = pair;
        if (mode === "refuse") {
          client.terminate();
          return;
        }
        if (mode === "blackhole") {
          // Held open and ignored; resume() does not revive it, as a real network would not.
          pair.dead = true;
          held.add(client);
          return;
        }
        pairs.add(pair);
        Bun.connect<Pair>({
          hostname: target.hostname,
          port: target.port,
          data: pair,
          socket: {
            open(upstream) {
              if (pair.dead) {
                upstream.terminate();
                return;
              }
              pair.upstream = upstream;
              for (const chunk of pair.early.splice(0)) send(upstream, pair.toUpstream, chunk);
            },
            data(_, data) {
              if (!pair.dead && !dropping) send(client, pair.toClient, new Uint8Array(data));
            },
            drain(upstream) {
              send(upstream, pair.toUpstream);
            },
            close() {
              if (!pair.dead) close(pair);
            },
            error() {
              if (!pair.dead) close(pair);
            },
          },
        }).catch(() => {
          if (!pair.dead) close(pair);
        });
      },
      data(client, data) {
        const pair = client.data;
        if (pair.dead || dropping) return;
        const bytes = new Uint8Array(data);
        if (pair.upstream) send(pair.upstream, pair.toUpstream, bytes);
        else pair.early.push(bytes);
      },
      drain(client) {
        send(client, client.data.toClient);
      },
      close(client) {
        held.delete(client);
        const pair = client.data;
        if (pair && !pair.dead) close(pair);
      },
      error(client) {
        const pair = client.data;
        if (pair && !pair.dead) close(pair);
      },
    },
  });

  return {
    port: listener.port,
    get openConnections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    cut(outage) {
      mode = outage;
      for (const pair of [...pairs]) close(pair);
    },
    silence() {
      mode = "blackhole";
      for (const pair of [...pairs]) {
        pair.dead = true;
        pair.toClient.length = 0;
        pair.toUpstream.length = 0;
        pairs.delete(pair);
        held.add(pair.client);
        if (pair.upstream) held.add(pair.upstream);
      }
    },
    drop() {
      dropping = true;
      for (const pair of pairs) {
        pair.toClient.length = 0;
        pair.toUpstream.length = 0;
      }
    },
    resume() {
      mode = undefined;
      dropping = false;
    },
    stop() {
      mode = "refuse";
      for (const pair of [...pairs]) close(pair);
      for (const socket of [...held]) socket.terminate();
      listener.stop(true);
    },
  };
}
