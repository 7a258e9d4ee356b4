/** The `limit`/`offset` query parameters every paged list shares. */
import { t } from "elysia";
import { integerParameter } from "./query.ts";

export const LIST_LIMIT_DEFAULT = 20;
export const LIST_LIMIT_MAX = 100;
/** Bounded so the literal can never overflow PostgreSQL's bigint (see db/sql.ts). */
export const OFFSET_MAX = 2_147_483_647;

const LIMIT_ERROR = `limit must be an integer from 1 to ${LIST_LIMIT_MAX}`;
const OFFSET_ERROR = `offset must be an integer from 0 to ${OFFSET_MAX}`;

/** How the routes read them (see query.ts). */
export const paginationParameters = {
  limit: integerParameter(1, LIST_LIMIT_MAX, LIMIT_ERROR),
  offset: integerParameter(0, OFFSET_MAX, OFFSET_ERROR),
};

/** How the OpenAPI document shows them. */
export const paginationQuery = {
  limit: t.Optional(
    t.Integer({
      minimum: 1,
      maximum: LIST_LIMIT_MAX,
      default: LIST_LIMIT_DEFAULT,
      error: LIMIT_ERROR,
    }),
  ),
  offset: t.Optional(
    t.Integer({ minimum: 0, maximum: OFFSET_MAX, default: 0, error: OFFSET_ERROR }),
  ),
};
