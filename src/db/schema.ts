/** Every Drizzle table, for drizzle-kit. */
export * from "../auth/users.table.ts";
export * from "../books/books.table.ts";
export * from "../events/consumed-events.table.ts";
export * from "../events/outbox.table.ts";
export * from "../pets/pets.table.ts";
export * from "../storage/object-deletions.table.ts";
