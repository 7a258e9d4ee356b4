import { describe, expect, test } from "bun:test";
import { UsageError } from "../errors.ts";
import { booleanFlag, integerFlag, parseArgs } from "./args.ts";

const spec = { help: "switch", "has-photos": "boolean" } as const;

describe("parseArgs", () => {
  test.each([
    [[], undefined],
    [["--has-photos"], true],
    [["--has-photos=true"], true],
    [["--has-photos=false"], false],
  ])("%j gives has-photos %p", (argv, expected) => {
    expect(booleanFlag(parseArgs(argv, spec).flags["has-photos"])).toBe(expected as boolean);
  });

  test.each([
    [["--has-photos=yes"], "--has-photos must be true or false"],
    [["--has-photos="], "--has-photos must be true or false"],
    [["--nope"], "unknown option --nope"],
    [["-x"], "unknown option -x"],
    [["stray"], 'unexpected argument "stray"'],
    [["--help=true"], "--help takes no value"],
    [["--has-photos", "--has-photos=false"], "--has-photos is given more than once"],
    [["-h", "--help"], "--help is given more than once"],
  ])("%j is a usage error", (argv, message) => {
    expect(() => parseArgs(argv, spec, "USAGE")).toThrow(message);
    try {
      parseArgs(argv, spec, "USAGE");
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).usage).toBe("USAGE");
    }
  });

  test.each([
    [["--pets", "500"], 500],
    [["--pets=0"], 0],
    [[], 200],
  ])("integer flag %j gives %d", (argv, expected) => {
    expect(integerFlag(parseArgs(argv, { pets: "integer" }).flags.pets, 200)).toBe(expected);
  });

  test.each([[["--pets"]], [["--pets", "many"]], [["--pets=-3"]], [["--pets", "1.5"]]])(
    "%j is a usage error",
    (argv) => {
      expect(() => parseArgs(argv, { pets: "integer" })).toThrow("--pets needs a whole number");
    },
  );

  test("-h is --help", () => {
    expect(parseArgs(["-h"], spec).flags.help).toBe(true);
  });
});
