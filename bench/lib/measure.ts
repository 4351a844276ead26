/**
 * How every MedShare benchmark measures: CPU time (process.cpuUsage, user + system: what the process itself
 * spent, not what other processes took from it), operations alternated with a reference primitive in the same
 * process in blocks, and medians over rounds. A ratio "3.1 pairings" is computed within each round, so load that
 * changes during the run moves both of its sides alike; the median over rounds drops the rounds a burst of load
 * hit unevenly.
 */
import { spawnSync } from 'node:child_process';

/** CPU time of this process (user + system) in milliseconds. */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One operation's result: CPU milliseconds per call and its ratio to the reference (both medians over rounds). */
export interface Measured {
  readonly ms: number;
  readonly ratio: number;
}

export interface AlternateOptions {
  /** Rounds (default 9): each runs one block of every operation. */
  readonly rounds?: number;
  /** A block repeats an operation until it has taken at least this much CPU (default 4 ms), calibrated once. */
  readonly blockMs?: number;
}

/** Calls `fn` `calls` times and returns the CPU milliseconds per call. */
function perCall(fn: () => unknown, calls: number): number {
  const start = cpuMs();
  for (let i = 0; i < calls; i++) fn();
  return (cpuMs() - start) / calls;
}

/**
 * Alternated measurement of `ops` against `ops[reference]`. After a warm-up, each operation's block size is
 * calibrated so that a block takes about `blockMs` of CPU (cpuUsage's resolution and the scheduler's tick would
 * swamp a single fast call); then each round runs one block of every operation in turn, the reference first. For
 * each operation: the median over rounds of its CPU time per call and of its ratio to the reference's time per
 * call in the same round.
 */
export function alternate(reference: string, ops: Record<string, () => unknown>, options: AlternateOptions = {}): Record<string, Measured> {
  const { rounds = 9, blockMs = 4 } = options;
  if (!(reference in ops)) throw new RangeError(`the reference '${reference}' is not among the operations`);
  const names = [reference, ...Object.keys(ops).filter((name) => name !== reference)];
  const blocks: Record<string, number> = {};
  for (const name of names) {
    const op = ops[name]!;
    op(); // warm-up: JIT, caches, lazy initialisation
    let calls = 1;
    let spent = perCall(op, calls);
    while (spent * calls < blockMs && calls < 1 << 16) {
      calls *= 2;
      spent = perCall(op, calls);
    }
    blocks[name] = calls;
  }
  const times: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  const ratios: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    let referenceMs = 0;
    for (const name of names) {
      const t = perCall(ops[name]!, blocks[name]!);
      if (name === reference) referenceMs = t;
      times[name]!.push(t);
      ratios[name]!.push(t / referenceMs);
    }
  }
  return Object.fromEntries(names.map((name) => [name, { ms: median(times[name]!), ratio: median(ratios[name]!) }]));
}

/**
 * `alternate` with the first operation as the reference, giving only each operation's CPU milliseconds per call
 * (for benchmarks that compute their own ratios from them).
 */
export function cpuAlternating(ops: Record<string, () => unknown>, rounds: number): Record<string, number> {
  return Object.fromEntries(Object.entries(alternate(Object.keys(ops)[0]!, ops, { rounds })).map(([name, m]) => [name, m.ms]));
}

/**
 * The result of running an operation once in a fresh process: its CPU time and the ratio to the reference
 * primitive measured (alternated, after a warm-up) in that same process.
 */
export interface FreshRun {
  readonly ms: number;
  readonly ratio: number;
  /** The ratio counting the main thread's CPU time only (without background compiler threads), when reported. */
  readonly mainRatio?: number;
  /** The process's start-up (library initialisation) against the same reference, when reported. */
  readonly startRatio?: number;
}

/**
 * Runs `script` (a bench/lib fresh-process entry) `processes` times, each a new Node process that prints one JSON
 * line `{ms, ratio}` per case, and returns the median of each case over the processes. The first call in a fresh
 * process pays what a warm loop hides: JIT, wasm tier-up, empty caches.
 */
export function freshProcesses(script: URL, args: readonly string[], processes: number): FreshRun[] {
  const runs: FreshRun[][] = [];
  for (let i = 0; i < processes; i++) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', script.pathname, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (child.status !== 0) throw new Error(`fresh-process run failed: ${child.stderr.trim().split('\n').at(-1)}`);
    runs.push(
      child.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as FreshRun),
    );
  }
  return runs[0]!.map((_, k) => {
    /** The median of an optional field over the processes that reported it. */
    const optional = (field: 'mainRatio' | 'startRatio') => {
      const values = runs.map((r) => r[k]![field]).filter((x): x is number => x !== undefined && Number.isFinite(x));
      return values.length > 0 ? { [field]: median(values) } : {};
    };
    return { ms: median(runs.map((r) => r[k]!.ms)), ratio: median(runs.map((r) => r[k]!.ratio)), ...optional('mainRatio'), ...optional('startRatio') };
  });
}

/** Wall-clock timing (for throughput over real I/O, where CPU time would not count the waiting): median of samples. */
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
  return median(samples);
}

/** Formats a number of milliseconds for a table. */
export const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(3));
/** Formats a ratio for a table. */
export const ratio = (x: number): string => x.toFixed(2);

/** True when the command line asks for plots (`--plots`): benchmarks rewrite tracked SVG files only then. */
export const wantsPlots = (): boolean => process.argv.includes('--plots');
