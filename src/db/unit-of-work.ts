/**
 * Who opens transactions: the service, through this. A feature names its repositories once
 * (`open`); the service reads and writes through `repositories` (autocommitted statements), and
 * when several writes must commit together it asks for `transaction`, which hands it the same
 * repositories bound to one transaction.
 */
import type { Db } from "./client.ts";

export interface UnitOfWork<Repositories> {
  readonly repositories: Repositories;
  transaction<T>(work: (repositories: Repositories) => Promise<T>): Promise<T>;
}

export function unitOfWork<Repositories>(
  db: Db,
  open: (db: Db) => Repositories,
): UnitOfWork<Repositories> {
  return {
    repositories: open(db),
    transaction: (work) => db.transaction((tx) => work(open(tx))),
  };
}
