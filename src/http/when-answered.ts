/** Around Elysia's whole fetch handler (`app.wrap`): routing, hooks, handler and errors. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/**
 * Runs `answer` and calls `ended` once, with the response it made or with what it threw or
 * rejected with; the response, or the error, goes on unchanged. Synchronous answers stay
 * synchronous.
 */
export function whenAnswered(
  answer: () => Response | Promise<Response>,
  ended: (response: Response | undefined, err?: unknown) => void,
): Response | Promise<Response> {
  let made: Response | Promise<Response>;
  try {
    made = answer();
  } catch (err) {
    ended(undefined, err);
    throw err;
  }
  if (!(made instanceof Promise)) {
    ended(made);
    return made;
  }
  return made.then(
    (response) => {
      ended(response);
      return response;
    },
    (err: unknown) => {
      ended(undefined, err);
      throw err;
    },
  );
}
