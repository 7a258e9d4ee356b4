/**
 * Swagger UI at /docs in a real browser (headless Chromium), offline, under the page's Content
 * Security Policy: it renders every operation, breaks no rule of the policy, fetches nothing from
 * another origin, and works: authorize with the API key, then "Try it out" on GET /pets.
 *
 * Needs Chromium at CHROMIUM_PATH (default /usr/bin/chromium; Debian: `apt-get install chromium`);
 * skipped with a note where it is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";
import { type RunningServer, startServer, tempDataDir } from "../../src/testing/binary.ts";
import { createEmptyPostgresDatabase } from "../../src/testing/database.ts";
import { SETUP_TIMEOUT_MS } from "../../src/testing/timeouts.ts";
import { CONTRACT_API_KEY, CONTRACT_JWT_SECRET } from "./harness.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  process.stderr.write(
    `browser.contract: no Chromium at ${CHROMIUM} (apt-get install chromium, or set ` +
      "CHROMIUM_PATH): the Swagger UI browser test is skipped.\n",
  );
}
const test_ = test.skipIf(!haveChromium);

/** Generous: a first page load on a busy machine parses a 1.5 MB bundle. */
const UI_TIMEOUT_MS = 60_000;

let server: RunningServer | undefined;
let browser: Browser | undefined;
let dropDatabase = async () => {};
const dataDir = tempDataDir();

beforeAll(async () => {
  if (!haveChromium) return;
  const env: Record<string, string> = {
    API_KEY: CONTRACT_API_KEY,
    JWT_SECRET: CONTRACT_JWT_SECRET,
    DATA_DIR: dataDir,
  };
  if (process.env.DATABASE_URL) {
    const database = await createEmptyPostgresDatabase();
    env.DATABASE_URL = database.url;
    dropDatabase = database.drop;
  }
  server = await startServer(env);
  // Playwright gives the browser a fresh profile folder of its own and removes it on close.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: UI_TIMEOUT_MS,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await browser?.close();
  if (server && server.proc.exitCode === null) await server.stop("SIGKILL");
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
}, SETUP_TIMEOUT_MS);

interface Watched {
  page: Page;
  /** CSP violations, as the page itself reports them, and as the console does. */
  violations: string[];
  /** Requests to anywhere but the server: refused, as offline. */
  foreign: string[];
  errors: string[];
}

async function openDocs(): Promise<Watched> {
  const base = (server as RunningServer).url;
  const context = await (browser as Browser).newContext();
  const page = await context.newPage();
  const watched: Watched = { page, violations: [], foreign: [], errors: [] };
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${base}/`) || url.startsWith("data:")) return route.continue();
    watched.foreign.push(url);
    return route.abort("internetdisconnected");
  });
  // Runs before the page's own scripts and outside its CSP (a string: this file has no DOM types).
  await page.addInitScript({
    content: `
      window.__cspViolations = [];
      document.addEventListener("securitypolicyviolation", (e) =>
        window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline")));
    `,
  });
  page.on("console", (message) => {
    if (/Content.Security.Policy/i.test(message.text())) watched.violations.push(message.text());
  });
  page.on("pageerror", (err) => watched.errors.push(err.message));
  const res = await page.goto(`${base}/docs`, { waitUntil: "load", timeout: UI_TIMEOUT_MS });
  expect(res?.status()).toBe(200);
  return watched;
}

const pageViolations = (page: Page) => page.evaluate<string[]>("window.__cspViolations");

describe("Swagger UI in headless Chromium, offline", () => {
  test_(
    "renders every operation with no CSP violation, nothing fetched from elsewhere",
    async () => {
      const { page, violations, foreign, errors } = await openDocs();
      await page.waitForSelector(".opblock-summary-path", { timeout: UI_TIMEOUT_MS });
      const paths = await page.$$eval(".opblock-summary-path", (els) =>
        els.map((el) => el.textContent?.replace(/\u200b/g, "").trim() ?? ""),
      );
      expect(paths).toContain("/pets");
      expect(paths).toContain("/pets/{id}/photo");
      expect(paths).toContain("/books");
      expect(paths).toContain("/auth/token");
      expect(await page.title()).toBe("petbooks API");
      // The stylesheet applied (its rules, not the browser's defaults).
      const display = await page.evaluate<string>(
        "getComputedStyle(document.querySelector('.swagger-ui .opblock')).display",
      );
      expect(display).not.toBe("inline");
      expect(await pageViolations(page)).toEqual([]);
      expect(violations).toEqual([]);
      expect(foreign).toEqual([]);
      expect(errors).toEqual([]);
      await page.context().close();
    },
    SETUP_TIMEOUT_MS,
  );

  test_(
    "is usable: authorize with the API key, then Try it out on GET /pets answers 200",
    async () => {
      const { page, violations, foreign, errors } = await openDocs();
      await page.waitForSelector(".opblock-summary-path", { timeout: UI_TIMEOUT_MS });
      await page.click("button.authorize");
      const apiKeyForm = page.locator(".auth-container", { hasText: "ApiKeyAuth" });
      await apiKeyForm.locator("input").fill(CONTRACT_API_KEY);
      await apiKeyForm.locator("button.authorize").click();
      await page.click("button.btn-done");
      const operation = page.locator(".opblock-get", {
        has: page.locator('.opblock-summary-path[data-path="/pets"]'),
      });
      await operation.locator(".opblock-summary").click();
      await operation.locator("button.try-out__btn").click();
      await operation.locator("button.execute").click();
      const status = operation
        .locator(".live-responses-table tr.response .response-col_status")
        .first();
      await status.waitFor({ timeout: UI_TIMEOUT_MS });
      expect((await status.textContent())?.trim()).toBe("200");
      const body = await operation
        .locator(".live-responses-table tr.response .microlight")
        .first()
        .textContent();
      expect(JSON.parse(body ?? "")).toMatchObject({ count: expect.any(Number) });
      expect(await pageViolations(page)).toEqual([]);
      expect(violations).toEqual([]);
      expect(foreign).toEqual([]);
      expect(errors).toEqual([]);
      await page.context().close();
    },
    SETUP_TIMEOUT_MS,
  );
});
