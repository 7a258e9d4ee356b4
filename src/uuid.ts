const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID in its canonical textual form (any version), as PostgreSQL prints them. */
export const isUuid = (value: string) => UUID.test(value);
