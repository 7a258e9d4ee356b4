import { describe, expect, setDefaultTimeout, test } from "bun:test";
import packageJson from "../package.json";
import { runBinary, tempDataDir } from "../src/testing/binary.ts";

// These run the compiled binary (built on first use): more than the default 5 s on a busy machine.
setDefaultTimeout(60_000);

describe("petbooks CLI", () => {
  test("--version and --help", async () => {
    const version = await runBinary(["--version"], {});
    expect(version).toMatchObject({ code: 0, stdout: `petbooks ${packageJson.version}\n` });
    const help = await runBinary(["--help"], {});
    expect(help.code).toBe(0);
    for (const command of ["serve", "export-pets", "migrate"])
      expect(help.stdout).toContain(command);
  });

  test.each(["serve", "export-pets", "migrate"])("%s --help", async (command) => {
    const result = await runBinary([command, "--help"], {});
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: petbooks ${command}`);
  });

  test.each([
    [[], "no command given"],
    [["frobnicate"], 'unknown command "frobnicate"'],
    [["export-pets", "--has-photos=maybe"], '--has-photos must be true or false (got "maybe")'],
    [["export-pets", "--limit=5"], "unknown option --limit=5"],
    [["export-pets", "--has-photos", "--has-photos=false"], "--has-photos is given more than once"],
    [["serve", "--port", "80"], "unknown option --port"],
    [["--version", "extra"], "--version takes no arguments"],
    [
      ["--help", "--bogus"],
      "--help takes no arguments (a command's own: petbooks <command> --help)",
    ],
  ])("%j is a usage error: exit 2, message and usage on stderr", async (args, message) => {
    const result = await runBinary(args, { DATA_DIR: tempDataDir() });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr.split("\n")[0]).toBe(`petbooks: ${message}`);
    expect(result.stderr).toContain("Usage: petbooks");
  });

  test("configuration errors name every bad variable in one line, exit 1", async () => {
    const result = await runBinary(["serve"], { PORT: "x", LOG_LEVEL: "loud" });
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("API_KEY is required");
    expect(lines[0]).toContain("PORT must be");
    expect(lines[0]).toContain("LOG_LEVEL must be");
  });

  test("an unreachable PostgreSQL fails with a clear message and no password", async () => {
    const result = await runBinary(["migrate"], {
      DATABASE_URL: "postgres://petbooks:hunter2-secret@127.0.0.1:1/petbooks",
      LOG_LEVEL: "error",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "cannot reach PostgreSQL at postgres://petbooks:***@127.0.0.1:1/",
    );
    expect(result.stderr).not.toContain("hunter2-secret");
  }, 60_000);
});
