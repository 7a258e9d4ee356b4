/**
 * Requests the app is still handling. Bun's `server.pendingRequests` drops a request as soon as
 * its client goes away, while the handler may still be writing to the database and invalidating
 * the cache: shutdown waits for this count too, before it closes those clients.
 */
export class InFlight {
  #count = 0;

  get count(): number {
    return this.#count;
  }

  started(): void {
    this.#count++;
  }

  finished(): void {
    if (this.#count > 0) this.#count--;
  }
}
