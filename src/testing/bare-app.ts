/** An Elysia app with only the request context (ids, body limit, problems): one plugin or schema under test. */
import { Elysia } from "elysia";
import { InFlight } from "../http/in-flight.ts";
import { requestContext } from "../http/request-context.ts";
import { silentLogger } from "../logger.ts";

export function bareApp() {
  return new Elysia().use(
    requestContext({
      logger: silentLogger,
      maxBodyBytes: () => 1024,
      inFlight: new InFlight(),
    }),
  );
}
