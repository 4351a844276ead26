/**
 * Group commit of small writes: the items added in the current tick, and those added while a write runs, go
 * together in the next write (one statement for a burst of concurrent callers), in order, at most `maxBatch` a
 * write. Each caller's promise settles with its own item's result, or with the error of the write that carried it.
 */
export class GroupCommit<Item, Result> {
  private queue: Array<{ item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;

  /** `write` returns one result per item, in the items' order. */
  constructor(
    private readonly write: (items: Item[]) => Promise<Result[]>,
    private readonly maxBatch: number,
  ) {}

  add(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    // Let the current tick's callers join the first write.
    await new Promise((resolve) => setImmediate(resolve));
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const results = await this.write(batch.map((pending) => pending.item));
          batch.forEach((pending, i) => pending.resolve(results[i]!));
        } catch (error) {
          for (const pending of batch) pending.reject(error);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }
}
