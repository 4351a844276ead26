/**
 * Decoding exponential ElGamal: given M = m·G, find the integer m with |m| ≤ bound by baby-step giant-step
 * (Shanks, 1971). The baby steps j·G for 0 ≤ j < 2^14 are computed once per process; m = j + k·2^14 is then found
 * with at most ⌈bound / 2^14⌉ giant steps in each direction, so a value that is out of bound (or a point that is
 * no small multiple of G at all: a wrong or incomplete decryption) costs a bounded amount of work and is reported,
 * never searched for without end.
 */
import type { G1 } from '../curve/bls12381.ts';
import { frFromBigInt, g1Add, g1Generator, g1Mul, g1Sub, g1ToBytes } from '../curve/bls12381.ts';
import { IntegrityError, LimitExceededError } from '../errors.ts';

/** log2 of the number of baby steps. */
const BABY_BITS = 14;
const BABY_STEPS = 1 << BABY_BITS;
/** The largest bound a caller may ask for: 2^40 needs 2^26 giant steps, minutes of work; more is refused. */
export const MAX_DECODE_BOUND = 2 ** 40;
/** The default bound on |m|: 2^24 (16.7 million), at most 2 × 1,025 giant steps for a value that is not there. */
export const DEFAULT_DECODE_BOUND = 2 ** 24;

let table: Map<string, number> | undefined;
let giant: G1 | undefined;

const key = (p: G1) => Buffer.from(g1ToBytes(p)).toString('latin1');

function babySteps(): Map<string, number> {
  if (table) return table;
  const g = g1Generator();
  const steps = new Map<string, number>();
  let p = g1Mul(g, frFromBigInt(0n));
  for (let j = 0; j < BABY_STEPS; j++) {
    steps.set(key(p), j);
    p = g1Add(p, g);
  }
  giant = p; // 2^14·G
  table = steps;
  return steps;
}

/**
 * The m with M = m·G and |m| ≤ bound. Throws LimitExceededError for a bound above MAX_DECODE_BOUND and
 * IntegrityError when no such m exists (the decryption was wrong, incomplete, or the value is out of bound).
 */
export function decodeSmall(point: G1, bound = DEFAULT_DECODE_BOUND): bigint {
  if (!(bound >= 0 && bound <= MAX_DECODE_BOUND)) throw new LimitExceededError(`decode bound must be in [0, 2^40]`);
  const steps = babySteps();
  const stride = giant!;
  const maxGiant = Math.ceil(bound / BABY_STEPS) + 1;
  let up = point; // M − k·2^14·G: finds m = j + k·2^14 for k ≥ 0
  let down = point; // M + k·2^14·G: finds m = j − k·2^14
  for (let k = 0; k <= maxGiant; k++) {
    const j = steps.get(key(up));
    if (j !== undefined) return check(BigInt(j) + BigInt(k) * BigInt(BABY_STEPS), bound);
    const i = steps.get(key(down));
    if (i !== undefined) return check(BigInt(i) - BigInt(k) * BigInt(BABY_STEPS), bound);
    up = g1Sub(up, stride);
    down = g1Add(down, stride);
  }
  throw new IntegrityError(`decryption is not a value within ±${bound}: wrong or incomplete partial decryptions`);
}

function check(m: bigint, bound: number): bigint {
  if (m > BigInt(bound) || m < -BigInt(bound)) {
    throw new IntegrityError(`decryption is not a value within ±${bound}: wrong or incomplete partial decryptions`);
  }
  return m;
}
