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

/** CPU time of the process (user + system) in milliseconds: less disturbed than wall time on a shared machine. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * `fn` against a reference primitive, alternated in the same process: each round times one `reference` and one
 * `fn` (CPU time) and keeps their ratio; returns the median `fn` time and the median ratio, so load that changes
 * during the run affects both sides of each ratio alike.
 */
export function alternateWith(reference: () => unknown, fn: () => unknown, options: { runs?: number } = {}): { ms: number; ratio: number } {
  const { runs = 11 } = options;
  reference();
  fn(); // warm-up
  const times: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < runs; i++) {
    let t = cpuMs();
    reference();
    const ref = cpuMs() - t;
    t = cpuMs();
    fn();
    const own = cpuMs() - t;
    times.push(own);
    ratios.push(own / ref);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { ms: median(times), ratio: median(ratios) };
}
