/** Timing for benchmarks: repeat until a time budget is spent, report the median of the samples. */
export function timeIt(fn: () => unknown, options: { minRuns?: number; budgetMs?: number } = {}): number {
  const { minRuns = 5, budgetMs = 400 } = options;
  fn(); // warm-up: JIT, caches, lazy initialisation
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < minRuns || performance.now() - start < budgetMs) {
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
    if (samples.length >= 10_000) break;
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

/** Formats a number of milliseconds for a table. */
export const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(3));
/** Formats a ratio for a table. */
export const ratio = (x: number): string => x.toFixed(2);
