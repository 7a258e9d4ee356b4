/**
 * Reading a `bun --cpu-prof` profile (Chrome's .cpuprofile format): where the samples fell, by
 * function and by part of the program, and an SVG flame graph of it.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A node of the call tree with its sampled time in µs: its own, and with its callees. */
interface TimedNode {
  frame: CallFrame;
  selfUs: number;
  totalUs: number;
  children: TimedNode[];
}

/** The parts of the program a sample is charged to, by the source file of its function. */
const PARTS: [string, RegExp][] = [
  ["Elysia", /node_modules\/elysia\//],
  ["postgres.js (driver)", /node_modules\/postgres\//],
  ["Drizzle", /node_modules\/drizzle-orm\//],
  ["TypeBox", /node_modules\/@sinclair\/typebox\//],
  ["prom-client", /node_modules\/prom-client\//],
  ["OpenTelemetry", /node_modules\/@opentelemetry\//],
  ["ConnectRPC", /node_modules\/@connectrpc\//],
  ["protobuf-es", /node_modules\/@bufbuild\//],
  ["PGlite (embedded PostgreSQL)", /node_modules\/@electric-sql\/pglite\//],
  ["other packages", /node_modules\//],
  ["petbooks", /\/src\//],
];

/** Idle and garbage collection are Bun's pseudo-frames; a frame with no file is Bun or JSC itself. */
export function partOf(frame: CallFrame): string {
  if (frame.functionName === "(idle)") return "idle";
  if (frame.functionName === "(garbage collector)") return "garbage collection";
  for (const [name, pattern] of PARTS) if (pattern.test(frame.url)) return name;
  return frame.url ? `Bun (${frame.url.replace(/^.*\//, "")})` : NATIVE;
}

export const frameLabel = (frame: CallFrame) => {
  const file = frame.url.replace(/^.*?(src|node_modules)\//, "$1/");
  const where = file ? ` ${file}:${frame.lineNumber + 1}` : "";
  return `${frame.functionName || "(anonymous)"}${where}`;
};

export function timedTree(profile: CpuProfile): TimedNode {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const build = (node: ProfileNode): TimedNode => {
    const children = (node.children ?? []).flatMap((id) => {
      const child = byId.get(id);
      return child ? [build(child)] : [];
    });
    const own = selfUs.get(node.id) ?? 0;
    const totalUs = own + children.reduce((sum, c) => sum + c.totalUs, 0);
    return { frame: node.callFrame, selfUs: own, totalUs, children };
  };
  const root = profile.nodes[0];
  if (!root) throw new Error("the profile has no nodes");
  return build(root);
}

const NATIVE = "Bun and JavaScriptCore (native)";

/**
 * Shares of the busy time (idle left out): by part of the program, and the top functions. Time in
 * Bun's and JavaScriptCore's own functions (JSON, sockets, ...) is charged to the part that
 * called them, which is what would have to change to spend less of it.
 */
export function summarize(tree: TimedNode, top = 25) {
  const parts = new Map<string, number>();
  const functions = new Map<string, { part: string; us: number }>();
  let busyUs = 0;
  const visit = (n: TimedNode, callerPart: string) => {
    const own = partOf(n.frame);
    const part = own === NATIVE || own.startsWith("Bun (") ? callerPart : own;
    if (n.selfUs > 0 && own !== "idle") {
      busyUs += n.selfUs;
      parts.set(part, (parts.get(part) ?? 0) + n.selfUs);
      // By function and part: Bun's "(anonymous)" runs under many callers.
      const key = `${frameLabel(n.frame)}\u0000${part}`;
      const entry = functions.get(key) ?? { part, us: 0 };
      entry.us += n.selfUs;
      functions.set(key, entry);
    }
    for (const child of n.children) visit(child, part);
  };
  visit(tree, NATIVE);
  const share = (us: number) => us / busyUs;
  return {
    busyUs,
    parts: [...parts].map(([part, us]) => ({ part, share: share(us) })).sort(bySize),
    functions: [...functions]
      .map(([key, { part, us }]) => ({
        label: key.split("\u0000")[0] ?? key,
        part,
        share: share(us),
      }))
      .sort(bySize)
      .slice(0, top),
  };
}

const bySize = (a: { share: number }, b: { share: number }) => b.share - a.share;

const escapeXml = (text: string) =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

const PART_COLOURS: Record<string, string> = {
  petbooks: "#e8743b",
  Elysia: "#6aa84f",
  "postgres.js (driver)": "#3d85c6",
  Drizzle: "#8e7cc3",
  TypeBox: "#c27ba0",
  "prom-client": "#f1c232",
  "PGlite (embedded PostgreSQL)": "#76a5af",
  "garbage collection": "#999999",
};

/**
 * A flame graph (callers below, callees above) of the busy samples, as a standalone SVG: each
 * frame's width is its share of the busy time, its colour the part of the program it is in, its
 * tooltip the function, file and share. Frames under `minShare` are left out.
 */
export function flameGraphSvg(tree: TimedNode, title: string, minShare = 0.002): string {
  const busy = (n: TimedNode): number =>
    partOf(n.frame) === "idle" ? 0 : n.selfUs + n.children.reduce((s, c) => s + busy(c), 0);
  const totalUs = busy(tree);
  const width = 1200;
  const rowHeight = 16;
  const rects: string[] = [];
  let depthMax = 0;
  const place = (n: TimedNode, x: number, depth: number) => {
    const us = busy(n);
    const share = us / totalUs;
    if (share < minShare) return;
    depthMax = Math.max(depthMax, depth);
    const w = share * width;
    const label = depth === 0 ? "all busy samples" : frameLabel(n.frame);
    const colour = PART_COLOURS[partOf(n.frame)] ?? "#b7b7b7";
    const tip = `${label} (${partOf(n.frame)}): ${(share * 100).toFixed(1)}%`;
    const text = w > 40 ? label.slice(0, Math.floor(w / 6.5)) : "";
    rects.push(
      `<g><title>${escapeXml(tip)}</title><rect x="${x.toFixed(1)}" y="{y${depth}}" width="${w.toFixed(1)}" height="${rowHeight - 1}" fill="${colour}"/>` +
        (text
          ? `<text x="${(x + 3).toFixed(1)}" y="{t${depth}}" font-size="11">${escapeXml(text)}</text>`
          : "") +
        "</g>",
    );
    let childX = x;
    for (const child of n.children) {
      place(child, childX, depth + 1);
      childX += (busy(child) / totalUs) * width;
    }
  };
  place(tree, 0, 0);
  const top = 24;
  const height = top + (depthMax + 1) * rowHeight + 4;
  const body = rects
    .join("\n")
    .replaceAll(/\{y(\d+)\}/g, (_, d) => String(height - 4 - (Number(d) + 1) * rowHeight))
    .replaceAll(/\{t(\d+)\}/g, (_, d) => String(height - 4 - Number(d) * rowHeight - 4));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" role="img">`,
    `<title>Flame graph: ${escapeXml(title)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="4" y="16" font-size="13">${escapeXml(title)}</text>`,
    body,
    "</svg>",
    "",
  ].join("\n");
}
