/** Test helpers: craft envelopes with a *valid* checksum, to reach the validation behind it. */
import { createHash } from 'node:crypto';
import * as mcl from 'mcl-wasm';
import { g1ToBytesUncompressed } from '../src/curve/bls12381.ts';
import { PREFIX_BYTES, CHECKSUM_BYTES, sealEnvelope, type ObjectType, type SchemeId } from '../src/encoding/envelope.ts';

/** Splits an envelope (at the start of `bytes`) into its body and what follows it. */
export function splitEnvelope(bytes: Uint8Array) {
  const bodyLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8);
  return {
    type: bytes[5] as ObjectType,
    scheme: bytes[6] as SchemeId,
    body: bytes.slice(PREFIX_BYTES, PREFIX_BYTES + bodyLength),
    rest: bytes.slice(PREFIX_BYTES + bodyLength + CHECKSUM_BYTES),
  };
}

/** Prefix bytes to overwrite: offset 4 version, 5 type, 6 scheme, 7 curve. */
export type PrefixPatch = Partial<Record<4 | 5 | 6 | 7, number>>;

/** Re-seals an envelope with a valid checksum after `edit` rewrites its body and `patch` its prefix. */
export function reseal(bytes: Uint8Array, edit: (body: Uint8Array) => Uint8Array = (b) => b, patch: PrefixPatch = {}): Uint8Array {
  const { type, scheme, body, rest } = splitEnvelope(bytes);
  const sealed = sealEnvelope(type, scheme, edit(body));
  for (const [offset, value] of Object.entries(patch)) sealed[Number(offset)] = value;
  const end = sealed.length - CHECKSUM_BYTES;
  sealed.set(createHash('sha256').update(sealed.subarray(0, end)).digest(), end);
  return concat(sealed, rest);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

export const utf8 = (s: string) => new TextEncoder().encode(s);

/**
 * An on-curve G1 point outside the r-order subgroup, uncompressed: small x values decompressed without the
 * subgroup check (the cofactor is huge, so the first x that is on the curve almost surely qualifies).
 */
export function nonSubgroupG1(): Uint8Array {
  for (let x = 1; ; x++) {
    const compressed = new Uint8Array(48);
    compressed[0] = 0x80;
    compressed[47] = x;
    const p = new mcl.G1();
    try {
      p.deserialize(compressed);
    } catch {
      continue; // x is not the abscissa of a curve point
    }
    if (!p.isValidOrder()) return g1ToBytesUncompressed(p);
  }
}
