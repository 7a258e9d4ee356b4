/** Undo steps, run last-first whether the bench finished, failed or was interrupted. */
export class Cleanup {
  private steps: (() => unknown)[] = [];

  defer(step: () => unknown) {
    this.steps.push(step);
  }

  async run() {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step();
      } catch (err) {
        console.error("cleanup step failed:", err);
      }
    }
  }
}
