/**
 * Access to functions that mcl's wasm module exports but mcl-wasm's TypeScript API does not wrap:
 * `mclBn_millerLoopVec` (a real multi-Miller loop), `mclBnG1/G2_hashAndMapToWithDst` (RFC 9380 hashing
 * with a caller-chosen domain separation tag), `mclBnG1/G2_setStr/getStr` in mcl's binary affine mode
 * (`IoEcAffineSerialize`: x ‖ y, each coordinate in the field's serialization — big-endian under
 * setETHserialization, the ZCash/IETF uncompressed layout), and `mclBnG1_add` / `mclBnGT_mul` run in a loop over
 * values already on mcl's stack. Everything here goes through mcl's own stack allocator and value layouts; no
 * arithmetic is done in TypeScript.
 */
import mclRuntime from 'mcl-wasm/dist/mcl.js';
import type { G1, G2, GT } from 'mcl-wasm';

interface RawModule {
  _mclBn_millerLoopVec?: (out: number, g1s: number, g2s: number, n: number) => void;
  _mclBnG1_add: (out: number, x: number, y: number) => void;
  _mclBnGT_mul: (out: number, x: number, y: number) => void;
  _mclBnG1_normalize: (out: number, x: number) => void;
  _mclBnG2_normalize: (out: number, x: number) => void;
  _mclBnG1_setStr: (out: number, buf: number, bufLen: number, ioMode: number) => number;
  _mclBnG2_setStr: (out: number, buf: number, bufLen: number, ioMode: number) => number;
  _mclBnG1_getStr: (buf: number, maxLen: number, x: number, ioMode: number) => number;
  _mclBnG2_getStr: (buf: number, maxLen: number, x: number, ioMode: number) => number;
  /** A view of wasm memory, recreated by mcl after the memory grows. */
  readonly HEAP8: Int8Array;
  _mclBnG1_hashAndMapToWithDst: (out: number, msg: number, msgLen: number, dst: number, dstLen: number) => number;
  _mclBnG2_hashAndMapToWithDst: (out: number, msg: number, msgLen: number, dst: number, dstLen: number) => number;
}

interface Runtime {
  mod: RawModule;
  stackSave(): number;
  stackRestore(position: number): void;
  /** Stack space for `words` (not copied: for outputs). */
  salloc(words: Uint32Array): number;
  /** Stack space holding a copy of `words` (for inputs). */
  sallocCopy(words: Uint32Array): number;
  sallocArray(words: Uint32Array[]): number;
  sallocBytes(bytes: Uint8Array): number;
  copyFromHeap32(words: Uint32Array, position: number): void;
  stackAlloc(bytes: number): number;
}

/** mcl value objects keep their limbs in `a_`; this is the layout mcl's own wrappers pass to wasm. */
type Limbs = { a_: Uint32Array };

const runtime = mclRuntime as unknown as Runtime;

function withStack<T>(body: () => T): T {
  const saved = runtime.stackSave();
  try {
    return body();
  } finally {
    runtime.stackRestore(saved);
  }
}

/** True when this build of mcl exports the vectorised Miller loop. */
export function hasMillerLoopVec(): boolean {
  return typeof runtime.mod._mclBn_millerLoopVec === 'function';
}

/** Product of Miller loops f(P_i, Q_i) with no final exponentiation, computed in one pass by mcl. */
export function millerLoopVec(out: GT, g1s: readonly G1[], g2s: readonly G2[]): void {
  const fn = runtime.mod._mclBn_millerLoopVec;
  if (!fn) throw new Error('mclBn_millerLoopVec is not available');
  withStack(() => {
    const target = out as unknown as Limbs;
    const outPos = runtime.salloc(target.a_);
    const p = runtime.sallocArray(g1s.map((x) => (x as unknown as Limbs).a_));
    const q = runtime.sallocArray(g2s.map((x) => (x as unknown as Limbs).a_));
    fn(outPos, p, q, g1s.length);
    runtime.copyFromHeap32(target.a_, outPos);
  });
}

/** Writes hash_to_curve(msg) with the given DST into `out` (RFC 9380, mode set by setMapToMode(IRTF)). */
export function hashAndMapWithDst(group: 'G1' | 'G2', out: G1 | G2, msg: Uint8Array, dst: Uint8Array): void {
  const fn = group === 'G1' ? runtime.mod._mclBnG1_hashAndMapToWithDst : runtime.mod._mclBnG2_hashAndMapToWithDst;
  withStack(() => {
    const target = out as unknown as Limbs;
    const outPos = runtime.salloc(target.a_);
    // sallocBytes rejects empty buffers on some builds; an empty message is passed as a 1-byte buffer of length 0.
    const msgPos = runtime.sallocBytes(msg.length > 0 ? msg : new Uint8Array(1));
    const dstPos = runtime.sallocBytes(dst);
    if (fn(outPos, msgPos, msg.length, dstPos, dst.length) !== 0) throw new Error('hash to curve failed');
    runtime.copyFromHeap32(target.a_, outPos);
  });
}

/** mcl's IoEcAffineSerialize: a point as the serializations of its affine x and y (mcl/op.hpp). */
const IO_EC_AFFINE_SERIALIZE = 4096;

/**
 * Sets `out` from uncompressed affine bytes (x ‖ y, as `affineBytes` writes them) in one wasm call: mcl checks
 * the length and that the point is on the curve (all-zero bytes decode to the identity), not the subgroup.
 * Returns false when mcl refuses the bytes. Callers check canonical coordinates and flag bits themselves.
 */
export function setAffineBytes(group: 'G1' | 'G2', out: G1 | G2, bytes: Uint8Array): boolean {
  const fn = group === 'G1' ? runtime.mod._mclBnG1_setStr : runtime.mod._mclBnG2_setStr;
  return withStack(() => {
    const target = out as unknown as Limbs;
    const outPos = runtime.salloc(target.a_);
    const bufPos = runtime.sallocBytes(bytes);
    if (fn(outPos, bufPos, bytes.length, IO_EC_AFFINE_SERIALIZE) !== 0) return false;
    runtime.copyFromHeap32(target.a_, outPos);
    return true;
  });
}

/**
 * The uncompressed affine bytes of a point. mcl's affine mode writes the stored x and y as they are, so a copy on
 * mcl's stack is normalised (z = 1) first; the point itself is unchanged.
 */
export function affineBytes(group: 'G1' | 'G2', point: G1 | G2, size: number): Uint8Array {
  const fn = group === 'G1' ? runtime.mod._mclBnG1_getStr : runtime.mod._mclBnG2_getStr;
  const normalize = group === 'G1' ? runtime.mod._mclBnG1_normalize : runtime.mod._mclBnG2_normalize;
  return withStack(() => {
    const pointPos = runtime.sallocCopy((point as unknown as Limbs).a_);
    normalize(pointPos, pointPos);
    const bufPos = runtime.stackAlloc(size);
    const n = fn(bufPos, size, pointPos, IO_EC_AFFINE_SERIALIZE);
    if (n !== size) throw new Error(`mcl wrote ${n} bytes for a ${size}-byte affine point`);
    return new Uint8Array(runtime.mod.HEAP8.buffer, bufPos, size).slice();
  });
}

/** Writes Σ points into `out` (at least one point), the additions done in wasm on one accumulator. */
export function sumG1(out: G1, points: readonly G1[]): void {
  const add = runtime.mod._mclBnG1_add;
  if (points.length === 0) throw new RangeError('sumG1 needs at least one point');
  withStack(() => {
    const target = out as unknown as Limbs;
    const accPos = runtime.sallocCopy((points[0] as unknown as Limbs).a_);
    const words = target.a_.length * 4;
    if (points.length > 1) {
      const rest = runtime.sallocArray(points.slice(1).map((p) => (p as unknown as Limbs).a_));
      for (let i = 0; i < points.length - 1; i++) add(accPos, accPos, rest + i * words);
    }
    runtime.copyFromHeap32(target.a_, accPos);
  });
}

/**
 * Writes Π factors into `out` (at least one factor), the multiplications done in wasm on one accumulator. Each
 * factor is the limbs of a GT element (as `a_` holds them), e.g. a row of a precomputed table.
 */
export function productGT(out: GT, factors: readonly Uint32Array[]): void {
  const mul = runtime.mod._mclBnGT_mul;
  if (factors.length === 0) throw new RangeError('productGT needs at least one factor');
  withStack(() => {
    const target = out as unknown as Limbs;
    const accPos = runtime.sallocCopy(factors[0]!);
    const words = target.a_.length * 4;
    if (factors.length > 1) {
      const rest = runtime.sallocArray(factors.slice(1) as Uint32Array[]);
      for (let i = 0; i < factors.length - 1; i++) mul(accPos, accPos, rest + i * words);
    }
    runtime.copyFromHeap32(target.a_, accPos);
  });
}

/** The limbs of a GT element (a copy), for tables that `productGT` multiplies from. */
export function gtLimbs(x: GT): Uint32Array {
  return (x as unknown as Limbs).a_.slice();
}

/**
 * x^1, x^2, …, x^count as one array of limbs (entry d − 1 holds x^d), each power one multiplication in wasm on an
 * accumulator that stays on mcl's stack.
 */
export function gtPowers(x: GT, count: number): Uint32Array {
  const mul = runtime.mod._mclBnGT_mul;
  const limbs = (x as unknown as Limbs).a_;
  const words = limbs.length;
  const out = new Uint32Array(count * words);
  withStack(() => {
    const basePos = runtime.sallocCopy(limbs);
    const accPos = runtime.sallocCopy(limbs);
    for (let d = 0; d < count; d++) {
      if (d > 0) mul(accPos, accPos, basePos);
      runtime.copyFromHeap32(out.subarray(d * words, (d + 1) * words), accPos);
    }
  });
  return out;
}
