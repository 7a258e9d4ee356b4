/** The `limit`/`offset` query parameters every paged list shares. */
import { t } from "elysia";

export const LIST_LIMIT_DEFAULT = 20;
export const LIST_LIMIT_MAX = 100;
/** Bounded so the literal can never overflow PostgreSQL's bigint (see db/sql.ts). */
export const OFFSET_MAX = 2_147_483_647;

export const paginationQuery = {
  limit: t.Optional(
    t.Integer({
      minimum: 1,
      maximum: LIST_LIMIT_MAX,
      default: LIST_LIMIT_DEFAULT,
      error: `limit must be an integer from 1 to ${LIST_LIMIT_MAX}`,
    }),
  ),
  offset: t.Optional(
    t.Integer({
      minimum: 0,
      maximum: OFFSET_MAX,
      default: 0,
      error: `offset must be an integer from 0 to ${OFFSET_MAX}`,
    }),
  ),
};
