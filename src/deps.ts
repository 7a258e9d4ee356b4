/** Composition root: config → database → storage → repositories → services, once per command. */
import { join } from "node:path";
import type { Config } from "./config.ts";
import { type Database, openDatabase } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import type { Logger } from "./logger.ts";
import { createPetsRepository } from "./pets/pets.repository.ts";
import { createPetsService } from "./pets/pets.service.ts";
import { createLocalPhotoStorage } from "./storage/photo-storage.ts";

export type ServiceConfig = Pick<Config, "dataDir" | "publicUrl" | "maxPhotoBytes">;

export function buildServices(database: Database, config: ServiceConfig, logger: Logger) {
  const storage = createLocalPhotoStorage(join(config.dataDir, "photos"), config.publicUrl);
  const pets = createPetsService({
    repository: createPetsRepository(database.db),
    storage,
    maxPhotoBytes: config.maxPhotoBytes,
    logger: logger.child({ module: "pets" }),
  });
  return { database, storage, pets };
}

export type Services = ReturnType<typeof buildServices>;

export interface OpenOptions {
  /** Apply pending migrations after connecting. */
  migrate: boolean;
}

export async function openServices(config: Config, logger: Logger, options: OpenOptions) {
  const database = await openDatabase(
    {
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
    },
    logger.child({ module: "db" }),
  );
  try {
    if (options.migrate) await migrate(database.db, logger.child({ module: "migrate" }));
    return buildServices(database, config, logger);
  } catch (err) {
    await database.close();
    throw err;
  }
}
