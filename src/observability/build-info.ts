/** Which build is running: the `petbooks_build_info` labels. */
import packageJson from "../../package.json";
import { gitCommit } from "./build-info.macro.ts" with { type: "macro" };

export const BUILD_INFO = { version: packageJson.version, commit: gitCommit() } as const;
