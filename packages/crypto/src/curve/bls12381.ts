/**
 * A thin typed layer over mcl-wasm's BLS12-381 (Type-3 pairing e: G1 × G2 → GT, prime order r).
 *
 * - Hashing to G1/G2 is RFC 9380 `BLS12381G1_XMD:SHA-256_SSWU_RO_` (mcl `setMapToMode(IRTF)`), always with an
 *   explicit domain separation tag, so two uses of the hash can never collide.
 * - Point encodings are the ZCash/IETF compressed form (`setETHserialization(true)`): 48 bytes in G1, 96 in G2.
 * - Decoders validate: length, canonical encoding, on-curve, prime-order subgroup (`isValidOrder`),
 *   and refuse the identity. GT elements are checked to have order r. Failures raise MalformedInputError.
 */
import * as mcl from 'mcl-wasm';
import { MalformedInputError } from '../errors.ts';
import { affineBytes, gtPowers, hasMillerLoopVec, hashAndMapWithDst, millerLoopVec, productGT, setAffineBytes, sumG1 } from './mcl-raw.ts';

export type { Fr, G1, G2, GT } from 'mcl-wasm';
type Fr = mcl.Fr;
type G1 = mcl.G1;
type G2 = mcl.G2;
type GT = mcl.GT;

export const FR_BYTES = 32;
export const G1_BYTES = 48;
export const G2_BYTES = 96;
export const GT_BYTES = 576;

/** The group order r. */
export const CURVE_ORDER = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001n;

const G1_GENERATOR_HEX = '97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb';
const G2_GENERATOR_HEX =
  '93e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e' +
  '024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8';

let ready: Promise<void> | undefined;
let generatorG1: G1;
let generatorG2: G2;
let baseGT: GT;

/** Initialises mcl for BLS12-381 once per process. Every other function here requires it. */
export function initCurve(): Promise<void> {
  ready ??= (async () => {
    await mcl.init(mcl.BLS12_381);
    mcl.setMapToMode(mcl.IRTF);
    mcl.setETHserialization(true);
    // Decoders check subgroup membership themselves (isValidOrder) so the error can say which check failed.
    mcl.verifyOrderG1(false);
    mcl.verifyOrderG2(false);
    generatorG1 = new mcl.G1();
    generatorG1.deserializeHexStr(G1_GENERATOR_HEX);
    generatorG2 = new mcl.G2();
    generatorG2.deserializeHexStr(G2_GENERATOR_HEX);
    baseGT = mcl.pairing(generatorG1, generatorG2);
  })();
  return ready;
}

function assertReady(): void {
  if (!generatorG1) throw new Error('initCurve() must be awaited before using the curve');
}

/** The standard generator of G1 (a fresh copy). */
export function g1Generator(): G1 {
  assertReady();
  return generatorG1.clone();
}

/** The standard generator of G2 (a fresh copy). */
export function g2Generator(): G2 {
  assertReady();
  return generatorG2.clone();
}

/** e(g1, g2), computed once by initCurve (a fresh copy). */
export function gtBase(): GT {
  assertReady();
  return baseGT.clone();
}

/** A uniformly random non-zero scalar from the operating system's CSPRNG (via mcl's getRandomValues). */
export function randomFr(): Fr {
  const x = new mcl.Fr();
  do x.setByCSPRNG();
  while (x.isZero());
  return x;
}

/** The scalar x mod r, for any integer x (negative values wrap). */
export function frFromBigInt(x: bigint): Fr {
  const reduced = ((x % CURVE_ORDER) + CURVE_ORDER) % CURVE_ORDER;
  const out = new mcl.Fr();
  out.setStr(reduced.toString(16), 16);
  return out;
}

/** The scalar as an integer in [0, r). */
export function frToBigInt(x: Fr): bigint {
  return BigInt('0x' + x.getStr(16));
}

export const frAdd = (a: Fr, b: Fr): Fr => mcl.add(a, b);
export const frSub = (a: Fr, b: Fr): Fr => mcl.sub(a, b);
export const frMul = (a: Fr, b: Fr): Fr => mcl.mul(a, b);
export const frNeg = (a: Fr): Fr => mcl.neg(a);
/** Multiplicative inverse; the caller guarantees a ≠ 0. */
export const frInv = (a: Fr): Fr => mcl.inv(a);

export const g1Add = (a: G1, b: G1): G1 => mcl.add(a, b);
export const g1Sub = (a: G1, b: G1): G1 => mcl.sub(a, b);
export const g1Neg = (a: G1): G1 => mcl.neg(a);
export const g1Mul = (a: G1, k: Fr): G1 => mcl.mul(a, k);
export const g2Add = (a: G2, b: G2): G2 => mcl.add(a, b);
export const g2Mul = (a: G2, k: Fr): G2 => mcl.mul(a, k);
export const gtMul = (a: GT, b: GT): GT => mcl.mul(a, b);
export const gtDiv = (a: GT, b: GT): GT => mcl.div(a, b);
export const gtPow = (a: GT, k: Fr): GT => mcl.pow(a, k);

/**
 * Most points one call into wasm takes. mcl-wasm copies a call's points and scalars onto its wasm stack, which holds
 * about 1 MiB: 8,492 G1 points threw `stackAlloc: bad size` (an 8 MiB record's storage tags at upload, a 500), so
 * longer vectors go in chunks of this many (G2 points are twice as large, hence half).
 */
const G1_CHUNK = 2_048;
const G2_CHUNK = 1_024;

/** Σ over chunks of `size` of `op` on each chunk (at least one element). */
function chunked<P extends G1 | G2>(length: number, size: number, op: (start: number, end: number) => P, add: (a: P, b: P) => P): P {
  let acc = op(0, Math.min(size, length));
  for (let start = size; start < length; start += size) acc = add(acc, op(start, Math.min(start + size, length)));
  return acc;
}

/** Σ P_i in G1 (at least one point; throws RangeError otherwise), accumulated inside wasm: no intermediate point objects. */
export function g1Sum(points: readonly G1[]): G1 {
  if (points.length === 0) throw new RangeError('g1Sum needs at least one point');
  return chunked(
    points.length,
    G1_CHUNK,
    (start, end) => {
      const out = new mcl.G1();
      sumG1(out, points.slice(start, end));
      return out;
    },
    g1Add,
  );
}

/** Σ k_i·P_i in G1 by mcl's multi-scalar multiplication (in chunks of G1_CHUNK points). */
export function msmG1(points: readonly G1[], scalars: readonly Fr[]): G1 {
  if (points.length <= G1_CHUNK) return mcl.mulVec(points as G1[], scalars as Fr[]);
  return chunked(points.length, G1_CHUNK, (start, end) => mcl.mulVec(points.slice(start, end) as G1[], scalars.slice(start, end) as Fr[]), g1Add);
}

/** Σ k_i·Q_i in G2 by mcl's multi-scalar multiplication (in chunks of G2_CHUNK points). */
export function msmG2(points: readonly G2[], scalars: readonly Fr[]): G2 {
  if (points.length <= G2_CHUNK) return mcl.mulVec(points as G2[], scalars as Fr[]);
  return chunked(points.length, G2_CHUNK, (start, end) => mcl.mulVec(points.slice(start, end) as G2[], scalars.slice(start, end) as Fr[]), g2Add);
}

/** The single pairing e(P, Q). */
export function pairing(p: G1, q: G2): GT {
  return mcl.pairing(p, q);
}

/**
 * A G2 point with its Miller-loop line coefficients computed once, for many pairings with the same Q (the
 * cloud's rk1): each `pairing(P)` then skips the line computation and equals `pairing(P, Q)`. The lines take
 * 20 KiB of mcl's wasm heap, outside the garbage collector, until `destroy()`; after it the pairing is
 * computed without them (same value), so a late `destroy` can never make a caller compute garbage.
 */
export class PrecomputedG2 {
  private lines: mcl.PrecomputedG2 | undefined;

  constructor(readonly q: G2) {
    assertReady();
    this.lines = new mcl.PrecomputedG2(q);
    // An owner that forgets to destroy (a dropped Reader, a cache that is garbage collected) still frees the lines.
    unreleasedLines.register(this, this.lines, this);
  }

  /** e(P, Q). */
  pairing(p: G1): GT {
    return this.lines === undefined ? mcl.pairing(p, this.q) : mcl.finalExp(mcl.precomputedMillerLoop(p, this.lines));
  }

  /** Frees the wasm memory of the lines (idempotent). */
  destroy(): void {
    unreleasedLines.unregister(this);
    this.lines?.destroy();
    this.lines = undefined;
  }
}

const unreleasedLines = new FinalizationRegistry<mcl.PrecomputedG2>((lines) => lines.destroy());

/** The Miller loop alone (for benchmarks; combine with finalExp). */
export const millerLoop = (p: G1, q: G2): GT => mcl.millerLoop(p, q);
/** The final exponentiation alone (for benchmarks). */
export const finalExp = (f: GT): GT => mcl.finalExp(f);

/**
 * Π e(P_i, Q_i) with one shared final exponentiation: one vectorised Miller loop when mcl exports it,
 * otherwise the product of separate Miller loops (same result, slightly slower).
 */
export function multiPairing(g1s: readonly G1[], g2s: readonly G2[]): GT {
  if (g1s.length !== g2s.length || g1s.length === 0) throw new RangeError('multiPairing needs equal, non-empty inputs');
  let f: GT;
  if (hasMillerLoopVec()) {
    f = new mcl.GT();
    millerLoopVec(f, g1s, g2s);
  } else {
    f = mcl.millerLoop(g1s[0]!, g2s[0]!);
    for (let i = 1; i < g1s.length; i++) f = mcl.mul(f, mcl.millerLoop(g1s[i]!, g2s[i]!));
  }
  return mcl.finalExp(f);
}

/** Separate-loop multi-pairing, kept so tests and benchmarks can compare it with the vectorised one. */
export function multiPairingSeparate(g1s: readonly G1[], g2s: readonly G2[]): GT {
  let f = mcl.millerLoop(g1s[0]!, g2s[0]!);
  for (let i = 1; i < g1s.length; i++) f = mcl.mul(f, mcl.millerLoop(g1s[i]!, g2s[i]!));
  return mcl.finalExp(f);
}

const utf8 = new TextEncoder();

/** RFC 9380 hash_to_curve into G1 with an explicit domain separation tag. */
export function hashToG1(msg: Uint8Array, dst: string): G1 {
  assertReady();
  const out = new mcl.G1();
  hashAndMapWithDst('G1', out, msg, utf8.encode(dst));
  return out;
}

/** RFC 9380 hash_to_curve into G2 with an explicit domain separation tag. */
export function hashToG2(msg: Uint8Array, dst: string): G2 {
  assertReady();
  const out = new mcl.G2();
  hashAndMapWithDst('G2', out, msg, utf8.encode(dst));
  return out;
}

/** Uniform random element of GT (as e(g1, g2)^x for random x): `gtBasePow` of a random scalar. */
export function randomGT(): GT {
  assertReady();
  return gtBasePow(randomFr());
}

/**
 * Fixed-base windowing for e(g1, g2) (Brickell, Gordon, McCurley & Wilson, "Fast exponentiation with
 * precomputation", EUROCRYPT '92; Menezes et al., Handbook of Applied Cryptography, Algorithm 14.109 with base
 * b = 256): entry (i, d) holds e(g1, g2)^(d·256^i), so e(g1, g2)^x is the product of one entry per non-zero byte
 * of x — at most 31 GT multiplications instead of an exponentiation. Built by `precomputeGtBase`.
 */
const TABLE_WINDOWS = FR_BYTES;
const TABLE_DIGITS = 255;
let baseTable: { words: number; entries: Uint32Array } | undefined;

/**
 * Builds the table of `gtBasePow` (8,160 GT elements, 4.7 MB of memory; about 8,000 GT multiplications once), for a
 * process that makes many random GT elements (a hospital gateway encrypting uploads). Idempotent. A process that
 * never calls it computes e(g1, g2)^x by mcl's exponentiation: the same values. Requires initCurve.
 */
export function precomputeGtBase(): void {
  assertReady();
  if (baseTable !== undefined) return;
  const words = (baseGT as unknown as { a_: Uint32Array }).a_.length;
  const entries = new Uint32Array(TABLE_WINDOWS * TABLE_DIGITS * words);
  let windowBase = baseGT;
  for (let i = 0; i < TABLE_WINDOWS; i++) {
    // base^1 … base^256 of this window: the first 255 are its entries, the last is the next window's base.
    const powers = gtPowers(windowBase, TABLE_DIGITS + 1);
    entries.set(powers.subarray(0, TABLE_DIGITS * words), i * TABLE_DIGITS * words);
    windowBase = new mcl.GT();
    (windowBase as unknown as { a_: Uint32Array }).a_.set(powers.subarray(TABLE_DIGITS * words));
  }
  baseTable = { words, entries };
}

/** e(g1, g2)^x: from the table of `precomputeGtBase` when it was built, else one GT exponentiation. */
export function gtBasePow(x: Fr): GT {
  assertReady();
  if (baseTable === undefined) return mcl.pow(baseGT, x);
  const { words, entries } = baseTable;
  const digits = x.serialize(); // big-endian, FR_BYTES long
  const factors: Uint32Array[] = [];
  for (let i = 0; i < TABLE_WINDOWS; i++) {
    const d = digits[FR_BYTES - 1 - i]!;
    if (d !== 0) factors.push(entries.subarray((i * TABLE_DIGITS + d - 1) * words, (i * TABLE_DIGITS + d) * words));
  }
  if (factors.length === 0) return gtOne();
  const out = new mcl.GT();
  productGT(out, factors);
  return out;
}

/** The identity of GT. */
export function gtOne(): GT {
  const one = new mcl.GT();
  one.setInt(1);
  return one;
}

export const g1ToBytes = (p: G1): Uint8Array => p.serialize();
export const g2ToBytes = (q: G2): Uint8Array => q.serialize();
export const gtToBytes = (x: GT): Uint8Array => x.serialize();
export const frToBytes = (x: Fr): Uint8Array => x.serialize();

function decodeWith<T extends { deserialize(b: Uint8Array): void; serialize(): Uint8Array }>(make: () => T, bytes: Uint8Array, size: number, what: string): T {
  assertReady();
  if (bytes.length !== size) throw new MalformedInputError(`${what}: expected ${size} bytes, got ${bytes.length}`);
  const value = make();
  try {
    value.deserialize(bytes);
  } catch {
    throw new MalformedInputError(`${what}: not a valid encoding`);
  }
  // Reject non-canonical encodings: re-encoding must give back exactly the input.
  const again = value.serialize();
  if (again.length !== bytes.length || !again.every((b, i) => b === bytes[i])) {
    throw new MalformedInputError(`${what}: non-canonical encoding`);
  }
  return value;
}

/** Decodes a compressed G1 point; rejects off-curve, non-subgroup and identity points. */
export function g1FromBytes(bytes: Uint8Array, what = 'G1 point'): G1 {
  const p = decodeWith(() => new mcl.G1(), bytes, G1_BYTES, what);
  if (p.isZero()) throw new MalformedInputError(`${what}: the identity is not allowed`);
  assertInG1(p, what);
  return p;
}

/** Decodes a compressed G2 point; rejects off-curve, non-subgroup and identity points. */
export function g2FromBytes(bytes: Uint8Array, what = 'G2 point'): G2 {
  const q = decodeWith(() => new mcl.G2(), bytes, G2_BYTES, what);
  if (q.isZero()) throw new MalformedInputError(`${what}: the identity is not allowed`);
  if (!q.isValidOrder()) throw new MalformedInputError(`${what}: not in the prime-order subgroup`);
  return q;
}

export const G1_UNCOMPRESSED_BYTES = 96;
export const G2_UNCOMPRESSED_BYTES = 192;

/** The base field modulus p, big-endian (a coordinate is canonical when it compares below it byte by byte). */
const FIELD_MODULUS = Buffer.from('1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab', 'hex');
const COORDINATE_BYTES = 48;

/**
 * Uncompressed affine encodings in the ZCash/IETF layout: G1 is x ‖ y, G2 is x.c1 ‖ x.c0 ‖ y.c1 ‖ y.c0,
 * each coordinate 48 bytes big-endian; the three flag bits of the first byte are 0. Written by mcl in one call
 * (its affine serialization under setETHserialization is exactly this layout).
 */
export function g1ToBytesUncompressed(p: G1): Uint8Array {
  return affineBytes('G1', p, G1_UNCOMPRESSED_BYTES);
}

export function g2ToBytesUncompressed(q: G2): Uint8Array {
  return affineBytes('G2', q, G2_UNCOMPRESSED_BYTES);
}

/** Checks the length, the flag bits and that every coordinate is reduced modulo p. */
function checkUncompressed(bytes: Uint8Array, count: number, what: string): void {
  if (bytes.length !== count * COORDINATE_BYTES) throw new MalformedInputError(`${what}: expected ${count * COORDINATE_BYTES} bytes, got ${bytes.length}`);
  if ((bytes[0]! & 0xe0) !== 0) throw new MalformedInputError(`${what}: unexpected flag bits for an uncompressed point`);
  for (let at = 0; at < bytes.length; at += COORDINATE_BYTES) {
    if (Buffer.compare(bytes.subarray(at, at + COORDINATE_BYTES), FIELD_MODULUS) >= 0)
      throw new MalformedInputError(`${what}: coordinate not reduced modulo p`);
  }
}

/** Decodes checked uncompressed bytes in one wasm call; refuses off-curve points and the identity. */
function setAffine<T extends G1 | G2>(group: 'G1' | 'G2', point: T, bytes: Uint8Array, what: string): T {
  assertReady();
  if (!setAffineBytes(group, point, bytes)) throw new MalformedInputError(`${what}: not a point on the curve`);
  if (point.isZero()) throw new MalformedInputError(`${what}: the identity is not allowed`);
  return point;
}

/**
 * Decodes an uncompressed G1 point and checks it is canonical and on the curve — but NOT that it is in the
 * prime-order subgroup. Cheap (no square root, no subgroup test); callers must run `assertInG1` on every
 * point derived from it that meets secret material in a pairing (see docs/crypto.md, "Validation").
 */
export function g1FromBytesOnCurve(bytes: Uint8Array, what = 'G1 point'): G1 {
  checkUncompressed(bytes, 2, what);
  return setAffine('G1', new mcl.G1(), bytes, what);
}

/** Decodes an uncompressed G2 point with all checks: canonical, on the curve, in the prime-order subgroup. */
export function g2FromBytesUncompressed(bytes: Uint8Array, what = 'G2 point'): G2 {
  checkUncompressed(bytes, 4, what);
  const q = setAffine('G2', new mcl.G2(), bytes, what);
  if (!q.isValidOrder()) throw new MalformedInputError(`${what}: not in the prime-order subgroup`);
  return q;
}

/** Decodes an uncompressed G1 point with every check, subgroup membership included. */
export function g1FromBytesUncompressed(bytes: Uint8Array, what = 'G1 point'): G1 {
  const p = g1FromBytesOnCurve(bytes, what);
  assertInG1(p, what);
  return p;
}

/** Throws unless p is in the prime-order subgroup G1. */
export function assertInG1(p: G1, what: string): void {
  if (!p.isValidOrder()) throw new MalformedInputError(`${what}: not in the prime-order subgroup`);
}

/** Decodes a scalar (big-endian, < r); rejects zero. */
export function frFromBytes(bytes: Uint8Array, what = 'scalar'): Fr {
  const x = decodeWith(() => new mcl.Fr(), bytes, FR_BYTES, what);
  if (x.isZero()) throw new MalformedInputError(`${what}: zero is not allowed`);
  return x;
}

/**
 * Decodes a GT element and checks x^r = 1 and x ≠ 1. The exponentiation uses only generic Fp12
 * multiplication (no cyclotomic shortcuts that assume membership), so a non-member cannot pass.
 */
export function gtFromBytes(bytes: Uint8Array, what = 'GT element'): GT {
  const x = decodeWith(() => new mcl.GT(), bytes, GT_BYTES, what);
  if (x.isOne() || x.isZero()) throw new MalformedInputError(`${what}: degenerate element`);
  if (!gtPowBig(x, CURVE_ORDER).isOne()) throw new MalformedInputError(`${what}: not in the order-r subgroup`);
  return x;
}

/**
 * Decodes a canonical, non-zero Fp12 element WITHOUT the order-r check. Only for values that are multiplied
 * or divided and then hashed (a PRE c2), never paired or raised to a secret exponent: a non-member only
 * makes the derived key wrong, which the AEAD then rejects.
 */
export function gtFromBytesUnchecked(bytes: Uint8Array, what = 'GT element'): GT {
  const x = decodeWith(() => new mcl.GT(), bytes, GT_BYTES, what);
  if (x.isZero()) throw new MalformedInputError(`${what}: zero is not an element of GT`);
  return x;
}

function gtPowBig(x: GT, e: bigint): GT {
  let result = gtOne();
  for (let bit = BigInt(e.toString(2).length - 1); bit >= 0n; bit--) {
    result = mcl.mul(result, result);
    if ((e >> bit) & 1n) result = mcl.mul(result, x);
  }
  return result;
}
