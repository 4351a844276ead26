/**
 * Byte layouts of the threshold scheme's objects (all integers big-endian, points compressed, 48 bytes):
 *
 *   every object   "MSTH" (4) ‖ version 1 (1) ‖ kind (1) ‖ body
 *   public key     kind 1: n u16 ‖ t u16 ‖ y ‖ Y_1 … Y_n
 *   key share      kind 2: keyId (32) ‖ index u16 ‖ x_j (32)
 *   ciphertext     kind 3: keyId (32) ‖ cells u32 ‖ (c1 ‖ c2) × cells
 *   partial        kind 4: keyId (32) ‖ index u16 ‖ cells u32 ‖ D × cells ‖ challenge (32) ‖ response (32)
 *   range proof    kind 5: keyId (32) ‖ cells u32 ‖ bits u8 × cells ‖ (a ‖ β ‖ c0 ‖ c1 ‖ z0 ‖ z1) per bit, low bit first
 *
 * Decoders check everything before use: magic, version (UnsupportedError), kind, lengths and counts against the
 * bytes that remain and against MAX_CELLS (LimitExceededError), canonical points in the prime-order subgroup and
 * not the identity, scalars below r, and no trailing bytes — each failure a MalformedInputError naming the field.
 * There is no checksum: integrity comes from the cryptography (proofs, key ids), and tests tamper with it directly.
 */
import type { G1 } from '../curve/bls12381.ts';
import { FR_BYTES, G1_BYTES, frFromBytes, frToBytes, g1FromBytes, g1ToBytes } from '../curve/bls12381.ts';
import { ByteReader, ByteWriter } from '../encoding/bytes.ts';
import { LimitExceededError, MalformedInputError, UnsupportedError } from '../errors.ts';
import type { Ciphertext, PartialDecryption } from './elgamal.ts';
import { checkParameters, keyIdOf, MAX_PARTICIPANTS, type KeyShare, type ThresholdPublicKey } from './keys.ts';
import { MAX_RANGE_BITS, type BitProof, type RangeProof } from './range.ts';

const MAGIC = [0x4d, 0x53, 0x54, 0x48]; // "MSTH"
const VERSION = 1;
const KEY_ID_BYTES = 32;
/** The most cells a ciphertext may have (a histogram of 65,536 counters; 6 MiB encoded). */
export const MAX_CELLS = 65_536;
/** The most bit proofs one range proof may hold (65,536 × 224 bytes = 14 MiB). */
export const MAX_RANGE_PROOF_BITS = 65_536;
const BIT_PROOF_BYTES = 2 * G1_BYTES + 4 * FR_BYTES;

enum Kind {
  PublicKey = 1,
  KeyShare = 2,
  Ciphertext = 3,
  Partial = 4,
  RangeProof = 5,
}
const KIND_NAMES: Record<Kind, string> = {
  1: 'threshold public key',
  2: 'threshold key share',
  3: 'threshold ciphertext',
  4: 'partial decryption',
  5: 'range proof',
};

function header(kind: Kind): ByteWriter {
  return new ByteWriter().raw(Uint8Array.from(MAGIC)).u8(VERSION).u8(kind);
}

function open(bytes: Uint8Array, kind: Kind): ByteReader {
  const what = KIND_NAMES[kind];
  if (!(bytes instanceof Uint8Array)) throw new MalformedInputError(`${what}: expected bytes`);
  const reader = new ByteReader(bytes, what);
  const magic = reader.raw(4);
  if (!MAGIC.every((b, i) => magic[i] === b)) throw new MalformedInputError(`${what}: not a MedShare threshold object`);
  const version = reader.u8();
  if (version !== VERSION) throw new UnsupportedError(`${what}: format version ${version} is not supported`);
  const found = reader.u8();
  if (found !== kind) throw new MalformedInputError(`${what}: this is ${KIND_NAMES[found as Kind] ?? `object kind ${found}`}`);
  return reader;
}

const point = (reader: ByteReader, what: string): G1 => g1FromBytes(reader.raw(G1_BYTES), what);

function cells(reader: ByteReader, what: string, bytesPerCell: number): number {
  const count = reader.u32();
  if (count > MAX_CELLS) throw new LimitExceededError(`${what}: ${count} cells exceed the limit of ${MAX_CELLS}`);
  if (count === 0) throw new MalformedInputError(`${what}: no cells`);
  if (count * bytesPerCell > reader.remaining) throw new MalformedInputError(`${what}: truncated (${count} cells declared)`);
  return count;
}

function index(reader: ByteReader, what: string): number {
  const i = reader.u16();
  if (i < 1 || i > MAX_PARTICIPANTS) throw new MalformedInputError(`${what}: participant index ${i} out of range`);
  return i;
}

/** Encodes a joint public key with its verification keys. */
export function encodePublicKey(pk: ThresholdPublicKey): Uint8Array {
  const w = header(Kind.PublicKey).u16(pk.n).u16(pk.t).raw(g1ToBytes(pk.y));
  for (const v of pk.verificationKeys) w.raw(g1ToBytes(v));
  return w.finish();
}

/** Decodes and validates a joint public key (MalformedInputError / UnsupportedError). */
export function decodePublicKey(bytes: Uint8Array): ThresholdPublicKey {
  const what = KIND_NAMES[Kind.PublicKey];
  const r = open(bytes, Kind.PublicKey);
  const n = r.u16();
  const t = r.u16();
  try {
    checkParameters({ n, t });
  } catch {
    throw new MalformedInputError(`${what}: invalid threshold ${t} of ${n}`);
  }
  if ((n + 1) * G1_BYTES !== r.remaining) throw new MalformedInputError(`${what}: expected ${n + 1} points`);
  const y = point(r, `${what} y`);
  const verificationKeys = Array.from({ length: n }, (_, j) => point(r, `${what} Y_${j + 1}`));
  r.end();
  return { n, t, y, verificationKeys };
}

/** Encodes a participant's secret key share (store it wrapped; it is a secret). */
export function encodeKeyShare(share: KeyShare): Uint8Array {
  return header(Kind.KeyShare).raw(share.keyId).u16(share.index).raw(frToBytes(share.secret)).finish();
}

/** Decodes a key share. */
export function decodeKeyShare(bytes: Uint8Array): KeyShare {
  const what = KIND_NAMES[Kind.KeyShare];
  const r = open(bytes, Kind.KeyShare);
  const keyId = new Uint8Array(r.raw(KEY_ID_BYTES));
  const i = index(r, what);
  const secret = frFromBytes(r.raw(FR_BYTES), `${what} secret`);
  r.end();
  return { keyId, index: i, secret };
}

/** Encodes a ciphertext vector. */
export function encodeCiphertext(ct: Ciphertext): Uint8Array {
  const w = header(Kind.Ciphertext).raw(ct.keyId).u32(ct.c1.length);
  for (let k = 0; k < ct.c1.length; k++) w.raw(g1ToBytes(ct.c1[k]!)).raw(g1ToBytes(ct.c2[k]!));
  return w.finish();
}

/** Decodes a ciphertext vector; every point is checked to be in G1. */
export function decodeCiphertext(bytes: Uint8Array): Ciphertext {
  const what = KIND_NAMES[Kind.Ciphertext];
  const r = open(bytes, Kind.Ciphertext);
  const keyId = new Uint8Array(r.raw(KEY_ID_BYTES));
  const count = cells(r, what, 2 * G1_BYTES);
  const c1: G1[] = [];
  const c2: G1[] = [];
  for (let k = 0; k < count; k++) {
    c1.push(point(r, `${what} cell ${k} c1`));
    c2.push(point(r, `${what} cell ${k} c2`));
  }
  r.end();
  return { keyId, c1, c2 };
}

/** Encodes a partial decryption with its proof. */
export function encodePartial(partial: PartialDecryption): Uint8Array {
  const w = header(Kind.Partial).raw(partial.keyId).u16(partial.index).u32(partial.d.length);
  for (const d of partial.d) w.raw(g1ToBytes(d));
  return w.raw(frToBytes(partial.proof.challenge)).raw(frToBytes(partial.proof.response)).finish();
}

/** Decodes a partial decryption (its proof is checked by `verifyPartial` / `combine`, not here). */
export function decodePartial(bytes: Uint8Array): PartialDecryption {
  const what = KIND_NAMES[Kind.Partial];
  const r = open(bytes, Kind.Partial);
  const keyId = new Uint8Array(r.raw(KEY_ID_BYTES));
  const i = index(r, what);
  const count = cells(r, what, G1_BYTES);
  const d = Array.from({ length: count }, (_, k) => point(r, `${what} cell ${k}`));
  const challenge = frFromBytes(r.raw(FR_BYTES), `${what} challenge`);
  const response = frFromBytes(r.raw(FR_BYTES), `${what} response`);
  r.end();
  return { keyId, index: i, d, proof: { challenge, response } };
}

/** Encodes a range proof. */
export function encodeRangeProof(proof: RangeProof): Uint8Array {
  const w = header(Kind.RangeProof).raw(proof.keyId).u32(proof.cells.length);
  for (const k of proof.bits) w.u8(k);
  for (const cell of proof.cells)
    for (const p of cell) w.raw(g1ToBytes(p.a)).raw(g1ToBytes(p.b)).raw(frToBytes(p.c0)).raw(frToBytes(p.c1)).raw(frToBytes(p.z0)).raw(frToBytes(p.z1));
  return w.finish();
}

/** Decodes a range proof: bit widths 1..MAX_RANGE_BITS, at most MAX_RANGE_PROOF_BITS bits (LimitExceededError), every point in G1 and not the identity, scalars below r (MalformedInputError). The proof itself is checked by `rangeFailures`. */
export function decodeRangeProof(bytes: Uint8Array): RangeProof {
  const what = KIND_NAMES[Kind.RangeProof];
  const r = open(bytes, Kind.RangeProof);
  const keyId = new Uint8Array(r.raw(KEY_ID_BYTES));
  const count = cells(r, what, 1);
  const bits = Array.from({ length: count }, (_, k) => {
    const b = r.u8();
    if (b < 1 || b > MAX_RANGE_BITS) throw new MalformedInputError(`${what}: cell ${k} has ${b} bits (1..${MAX_RANGE_BITS})`);
    return b;
  });
  const total = bits.reduce((a, b) => a + b, 0);
  if (total > MAX_RANGE_PROOF_BITS) throw new LimitExceededError(`${what}: ${total} bit proofs exceed the limit of ${MAX_RANGE_PROOF_BITS}`);
  if (total * BIT_PROOF_BYTES !== r.remaining) throw new MalformedInputError(`${what}: expected ${total} bit proofs`);
  const scalar = (at: string) => frFromBytes(r.raw(FR_BYTES), `${what} ${at}`);
  const proofCells = bits.map((k, cell) =>
    Array.from({ length: k }, (_, i): BitProof => {
      const at = `cell ${cell} bit ${i}`;
      return {
        a: point(r, `${what} ${at} a`),
        b: point(r, `${what} ${at} b`),
        c0: scalar(`${at} c0`),
        c1: scalar(`${at} c1`),
        z0: scalar(`${at} z0`),
        z1: scalar(`${at} z1`),
      };
    }),
  );
  r.end();
  return { keyId, bits, cells: proofCells };
}

/** Hex fingerprint of a public key, for display and for naming keys in storage. */
export function keyFingerprint(pk: ThresholdPublicKey): string {
  return Buffer.from(keyIdOf(pk)).toString('hex');
}
