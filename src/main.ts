/** Entry point of the petbooks executable: subcommand dispatch, exit codes, last-resort errors. */
import packageJson from "../package.json";
import {
  type CliIo,
  devCommand,
  exportPetsCommand,
  grpcCommand,
  healthcheckCommand,
  migrateCommand,
  seedCommand,
  serveCommand,
} from "./cli/commands.ts";
import { MAIN_USAGE } from "./cli/usage.ts";
import { UsageError } from "./errors.ts";

const commands: Record<string, (argv: string[], io: CliIo) => Promise<number>> = {
  serve: serveCommand,
  grpc: grpcCommand,
  dev: devCommand,
  "export-pets": exportPetsCommand,
  migrate: migrateCommand,
  seed: seedCommand,
  healthcheck: healthcheckCommand,
};

export async function run(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === "--help" || name === "-h" || name === "help") {
      if (rest.length > 0) {
        throw new UsageError(
          `${name} takes no arguments (a command's own: petbooks <command> --help)`,
        );
      }
      io.stdout.write(`${MAIN_USAGE}\n`);
      return 0;
    }
    if (name === "--version" || name === "-v") {
      if (rest.length > 0) throw new UsageError(`${name} takes no arguments`);
      io.stdout.write(`petbooks ${packageJson.version}\n`);
      return 0;
    }
    const command = name ? commands[name] : undefined;
    if (!command) {
      throw new UsageError(name ? `unknown command "${name}"` : "no command given");
    }
    return await command(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`petbooks: ${err.message}\n\n${err.usage ?? MAIN_USAGE}\n`);
      return 2;
    }
    io.stderr.write(`petbooks: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}

/** 128 + SIGPIPE (13). */
const EXIT_BROKEN_PIPE = 141;

function shutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const)
      process.once(signal, () => resolve(signal));
  });
}

if (import.meta.main) {
  // A reader that goes away (`petbooks export-pets | head`) is not worth a stack trace, nor a
  // success: the output is cut short. Silent with 141, as a tool killed by SIGPIPE exits, which a
  // shell's `pipefail` reports and an interactive `| head` does not show.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(EXIT_BROKEN_PIPE);
  });
  const code = await run(process.argv.slice(2), {
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    shutdownSignal,
  });
  process.exit(code);
}
