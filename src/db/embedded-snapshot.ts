/**
 * A migrated PGlite data directory as a tarball, built into the executable (scripts/build.ts).
 * A new embedded database loaded from it skips initdb and every migration, most of a first
 * start; `migrate` still runs afterwards, so an older snapshot is brought forward.
 */
export const SNAPSHOT_FILE_NAME = "pgdata-snapshot.tar.gz";

/** The snapshot built into this executable; none when running from source. */
export function bundledSnapshot(): Blob | undefined {
  return Bun.embeddedFiles.find((file) => (file as File).name === SNAPSHOT_FILE_NAME);
}
