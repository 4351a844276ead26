/**
 * Access to two functions that mcl's wasm module exports but mcl-wasm's TypeScript API does not wrap:
 * `mclBn_millerLoopVec` (a real multi-Miller loop) and `mclBnG1/G2_hashAndMapToWithDst` (RFC 9380 hashing
 * with a caller-chosen domain separation tag). Everything here goes through mcl's own stack allocator and
 * value layouts; no arithmetic is done in TypeScript.
 */
import mclRuntime from 'mcl-wasm/dist/mcl.js';
import type { G1, G2, GT } from 'mcl-wasm';

interface RawModule {
  _mclBn_millerLoopVec?: (out: number, g1s: number, g2s: number, n: number) => void;
  _mclBnG1_hashAndMapToWithDst: (out: number, msg: number, msgLen: number, dst: number, dstLen: number) => number;
  _mclBnG2_hashAndMapToWithDst: (out: number, msg: number, msgLen: number, dst: number, dstLen: number) => number;
}

interface Runtime {
  mod: RawModule;
  stackSave(): number;
  stackRestore(position: number): void;
  salloc(words: Uint32Array): number;
  sallocArray(words: Uint32Array[]): number;
  sallocBytes(bytes: Uint8Array): number;
  copyFromHeap32(words: Uint32Array, position: number): void;
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
