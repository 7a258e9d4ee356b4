/** The real HTTP app over a fresh test database and a temporary photo directory. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildServices } from "../deps.ts";
import { createApp } from "../http/app.ts";
import { createLogger, type Logger, silentLogger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";

export const TEST_API_KEY = "test-api-key-0123456789";
export const PUBLIC_URL = "http://petbooks.test";

export interface TestApp {
  app: ReturnType<typeof createApp>;
  database: TestDatabase;
  services: ReturnType<typeof buildServices>;
  dataDir: string;
  logLines: string[];
  /** Calls the app in-process, with the API key unless `apiKey` says otherwise. */
  request(path: string, init?: RequestInit & { apiKey?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

export async function createTestApp(options: { maxPhotoBytes?: number } = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const dataDir = mkdtempSync(join(tmpdir(), "petbooks-test-"));
  const logLines: string[] = [];
  const logger: Logger = createLogger("debug", (line) => logLines.push(line));
  const config = {
    dataDir,
    publicUrl: PUBLIC_URL,
    maxPhotoBytes: options.maxPhotoBytes ?? 1024 * 1024,
  };
  const services = buildServices(database, config, silentLogger);
  const app = createApp({
    apiKey: TEST_API_KEY,
    maxPhotoBytes: config.maxPhotoBytes,
    logger,
    ...services,
  });
  return {
    app,
    database,
    services,
    dataDir,
    logLines,
    request(path, init = {}) {
      const { apiKey = TEST_API_KEY, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (apiKey !== null) headers.set("x-api-key", apiKey);
      return app.handle(new Request(`http://localhost${path}`, { ...rest, headers }));
    },
    async close() {
      await database.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function jsonRequest(method: string, body: unknown): RequestInit {
  return {
    method,
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

export function photoForm(bytes: Uint8Array, field = "file", name = "photo.bin"): RequestInit {
  const form = new FormData();
  form.append(field, new File([bytes], name, { type: "application/octet-stream" }));
  return { method: "POST", body: form };
}

/** Response bodies in tests are checked field by field, so they are read untyped. */
// biome-ignore lint/suspicious/noExplicitAny: test assertions inspect arbitrary JSON
export async function readJson(res: Response | Promise<Response>): Promise<any> {
  return (await res).json();
}
