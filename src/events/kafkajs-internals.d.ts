/** The one kafkajs internal petbooks touches (see kafkajs-request-queue.ts); kafkajs ships no types for it. */
declare module "kafkajs/src/network/requestQueue/index.js" {
  interface RequestQueueLogger {
    debug(message: string, extra?: object): void;
    warn(message: string, extra?: object): void;
  }

  export default class RequestQueue {
    constructor(options: {
      maxInFlightRequests: number | null;
      requestTimeout: number;
      enforceRequestTimeout: boolean;
      clientId: string;
      broker: string;
      logger: RequestQueueLogger;
    });
    pending: unknown[];
    throttledUntil: number;
    throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
    checkPendingRequests(): void;
    scheduleCheckPendingRequests(): void;
    fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void;
    destroy(): void;
  }
}
