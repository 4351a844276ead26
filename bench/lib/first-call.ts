/**
 * The measurement every fresh-process entry (bench/lib/fresh-*.ts) makes: the curve's start-up (`abe.init`), then
 * the operation's first call — the first curve operation after start-up, so nothing has compiled or tiered up the
 * code it runs — and only then the pairing, alternated after a warm-up as every reference. A reference measured
 * before would warm the Miller loop and the final exponentiation the operation shares with it, and hide part of
 * what a fresh process pays (docs/benchmarks.md, "Decrypt in a fresh process"). Prints one JSON line
 * {ms, ratio, mainRatio, startRatio} for `freshProcesses`: mainRatio counts only the main thread's CPU time (Linux
 * schedstat), without V8's background compiler threads, which process CPU time includes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { abe } from '@medshare/crypto';
import { alternate, cpuMs } from './measure.ts';
import { primitiveOps } from './primitives.ts';

/** This thread's CPU time in ms (schedstat's first field, ns), or NaN where the kernel does not report it. */
const SCHEDSTAT = '/proc/thread-self/schedstat';
const threadMs = () => (existsSync(SCHEDSTAT) ? Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6 : Number.NaN);

/** Initialises the curve, builds the operation (decoding its inputs, untimed), times its first call and reports. */
export async function reportFirstCall(prepare: () => () => unknown): Promise<void> {
  const startAt = cpuMs();
  await abe.init();
  const startMs = cpuMs() - startAt;
  const op = prepare();
  const threadStart = threadMs();
  const start = cpuMs();
  op();
  const spent = cpuMs() - start;
  const threadSpent = threadMs() - threadStart;
  const { pairing } = primitiveOps();
  const reference = alternate('pairing', { pairing }, { rounds: 5 })['pairing']!.ms;
  console.log(JSON.stringify({ ms: spent, ratio: spent / reference, mainRatio: threadSpent / reference, startRatio: startMs / reference }));
}
