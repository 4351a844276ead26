/**
 * Publicly verifiable proofs of retrievability with BLS homomorphic tags:
 *   H. Shacham and B. Waters, "Compact Proofs of Retrievability", ASIACRYPT 2008, LNCS 5350, pp. 90-107;
 *   full version in J. Cryptology 26(3):442-483, 2013, §3.3 (the publicly verifiable scheme).
 * on BLS12-381 through the curve layer (mcl-wasm), used as a proof of storage of ciphertexts the cloud holds.
 *
 * A file (a record's ciphertext) is split into n blocks of s sectors of 31 bytes, each sector an integer m_ij < r.
 * The owner (the uploading hospital, secret x and α_1..α_s, public v = g2^x and u_j = g1^{α_j}) tags block i as
 *     σ_i = (H(name ‖ i) · Π_j u_j^{m_ij})^x = H(name ‖ i)^x · g1^{x · Σ_j α_j m_ij} ∈ G1,
 * H being RFC 9380 hash_to_curve into G1. Knowing the α_j, the owner computes the right-hand side: one hash to G1,
 * one two-term multi-exponentiation and s multiply-adds in Z_r per block, instead of an (s+1)-term one.
 * A challenge picks blocks and coefficients ν_i from a fresh nonce; the prover answers σ = Π σ_i^{ν_i} and
 * μ_j = Σ ν_i m_ij; anyone checks e(σ, g2) = e(Π H(name ‖ i)^{ν_i} · Π u_j^{μ_j}, v) with the owner's own u_j.
 *
 * Deviations from the paper, explained in docs/crypto.md ("Proofs of storage"):
 * - The u_j are chosen once per owner (the paper picks them per file) and published in the owner's public key;
 *   α_j = HKDF-SHA256(x, j), so the secret key stays the 32 bytes of x. The file name is the record id; the
 *   record-create ledger entry (blocks, tag-set and key hashes) replaces the paper's signed file tag.
 * - Batch audit: one challenge spans files of several owners. The response aggregates σ over every file and μ per
 *   owner, checked with one multi-pairing of (owners + 1) pairs. Owner keys carry a proof of possession (a BLS
 *   signature on the key), so no owner can register a key built from another's.
 * - Challenged blocks are sampled uniformly without replacement over all blocks of all challenged files
 *   (or all blocks, when the sample would be half of them or more); coefficients ν_i are drawn from
 *   B = [0, 2^128) ⊂ Z_r (the paper lets ν_i range over any B ⊆ Z_p; soundness loses 1/#B), which halves the
 *   verifier's multi-exponentiation over the c block hashes (mcl's mulVec is cheaper for short scalars).
 * - The cloud's check of a whole upload's tags is the small-exponents batch test (M. Bellare, J. A. Garay and
 *   T. Rabin, "Fast Batch Verification for Modular Exponentiation and Digital Signatures", EUROCRYPT 1998):
 *   one random 128-bit exponent per block, error probability 2^-128.
 * Pure computation: no I/O. Every decoder validates lengths, versions and subgroup membership.
 */
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import * as mcl from 'mcl-wasm';
import * as curve from '../curve/bls12381.ts';
import { LimitExceededError, MalformedInputError, UnsupportedError } from '../errors.ts';

type Fr = curve.Fr;
type G1 = curve.G1;
type G2 = curve.G2;

/** Bytes per sector: 31 bytes are always below the group order r (255 bits). */
export const SECTOR_BYTES = 31;
/** Sectors per block by default: 992-byte blocks, one 48-byte tag each (4.8 % overhead). */
export const DEFAULT_SECTORS = 32;
/** Most sectors per block (the response carries s scalars per owner). */
export const MAX_SECTORS = 128;
/** Most blocks in one tag set (at 32 sectors, about 4 GiB). */
export const MAX_BLOCKS = 1 << 22;
/** Most files in one challenge. */
export const MAX_CHALLENGE_FILES = 100_000;
/** Most owners (hospital keys) in one challenge. */
export const MAX_CHALLENGE_KEYS = 256;
/** Most blocks one challenge may sample. */
export const MAX_SAMPLES = 20_000;
/** Longest file name (bytes). */
export const MAX_NAME_BYTES = 255;
/** Nonce length: 256 bits, fresh per audit. */
export const NONCE_BYTES = 32;
/** Bytes of a challenge coefficient or a batch-test exponent: ν ∈ [0, 2^128). */
export const COEFFICIENT_BYTES = 16;

const VERSION = 1;
/** Version of the public-key encoding: 2 since the key carries the owner's u_j (version 1 had global u_j). */
const PUBLIC_KEY_VERSION = 2;
const PROOF_AGGREGATE = 1;
const PROOF_PER_FILE = 2;
const DST_BLOCK = 'MEDSHARE-POR-V01-BLOCK-BLS12381G1_XMD:SHA-256_SSWU_RO_';
const ALPHA_SALT = 'MEDSHARE-POR-V02-ALPHA';
const DST_POP = 'MEDSHARE-POR-V01-POP-BLS12381G1_XMD:SHA-256_SSWU_RO_';
const publicKeyBytes = (generators: number) => 2 + curve.G2_BYTES + (generators + 1) * curve.G1_BYTES;
/** Longest public-key encoding (MAX_SECTORS generators): what a wire format must allow. */
export const MAX_PUBLIC_KEY_BYTES = publicKeyBytes(MAX_SECTORS);

/**
 * An owner's public key: v = g2^x, the owner's sector generators u_j = g1^{α_j} (tags may use the first s of
 * them, s ≤ u.length) and a proof of possession: a BLS signature under x on the encoding of v and the u_j.
 */
export interface PorPublicKey {
  readonly v: G2;
  readonly u: readonly G1[];
  readonly pop: G1;
}

/** An owner's secret key x, the scalars x·α_j the tags use, and its public key. */
export interface PorSecretKey {
  readonly x: Fr;
  readonly xAlpha: readonly Fr[];
  readonly publicKey: PorPublicKey;
}

/** The tags of one file, block by block. */
export interface TagSet {
  readonly sectors: number;
  readonly tags: readonly G1[];
}

/** A file named in a challenge: its name, its block count (from the ledger) and the index of its owner's key. */
export interface ChallengedFile {
  readonly name: Uint8Array;
  readonly blocks: number;
  readonly key: number;
}

/** What the auditor sends: a fresh nonce, the files, how many owner keys, the sectors per block and the sample size. */
export interface Challenge {
  readonly nonce: Uint8Array;
  readonly sectors: number;
  readonly keys: number;
  readonly samples: number;
  readonly files: readonly ChallengedFile[];
}

/** One challenged block and its coefficient. */
export interface Sample {
  readonly file: number;
  readonly block: number;
  readonly coefficient: Fr;
}

/** The aggregated response: σ over all files, μ per owner key (keys × sectors). */
export interface AggregateProof {
  readonly kind: 'aggregate';
  readonly sigma: G1;
  readonly mu: readonly (readonly Fr[])[];
}

/** The per-file response (asked for after an aggregate fails, to name the files): σ_f and μ_f per sampled file. */
export interface PerFileProof {
  readonly kind: 'per-file';
  readonly files: readonly { readonly file: number; readonly sigma: G1; readonly mu: readonly Fr[] }[];
}

export type Proof = AggregateProof | PerFileProof;

/** What the prover holds for one challenged file: the stored bytes and their tags (either may be damaged or sparse). */
export interface StoredFile {
  readonly data: Uint8Array;
  readonly tags: TagSet;
}

/** The owner's u_0..u_{s-1} for an s-sector challenge or tag set. @throws MalformedInputError when the key has fewer. */
function generators(key: PorPublicKey, sectors: number): readonly G1[] {
  if (sectors > key.u.length) throw new MalformedInputError(`proof of storage: the key has ${key.u.length} sector generators, ${sectors} needed`);
  return key.u.slice(0, sectors);
}

function checkSectors(sectors: number): void {
  if (!Number.isInteger(sectors) || sectors < 1 || sectors > MAX_SECTORS)
    throw new MalformedInputError(`proof of storage: sectors per block must be 1..${MAX_SECTORS}`);
}

/** How many blocks a file of `length` bytes has (at least one: an empty file is one block of zeros). */
export function blockCount(length: number, sectors = DEFAULT_SECTORS): number {
  checkSectors(sectors);
  return Math.max(1, Math.ceil(length / (SECTOR_BYTES * sectors)));
}

function blockMessage(name: Uint8Array, block: number): Uint8Array {
  const out = new Uint8Array(1 + name.length + 4);
  out[0] = name.length;
  out.set(name, 1);
  new DataView(out.buffer).setUint32(1 + name.length, block);
  return out;
}

/** H(name ‖ i): binds each tag to its file and position, so blocks cannot be moved within or across files. */
function blockPoint(name: Uint8Array, block: number): G1 {
  return curve.hashToG1(blockMessage(name, block), DST_BLOCK);
}

function checkName(name: Uint8Array): void {
  if (!(name instanceof Uint8Array) || name.length === 0 || name.length > MAX_NAME_BYTES)
    throw new MalformedInputError(`proof of storage: a file name is 1..${MAX_NAME_BYTES} bytes`);
}

/** The sectors of block i as scalars; the data is read as if right-padded with zeros to whole blocks. */
function sectorsOf(data: Uint8Array, block: number, sectors: number): Fr[] {
  const out: Fr[] = [];
  for (let j = 0; j < sectors; j++) {
    const start = (block * sectors + j) * SECTOR_BYTES;
    const x = new mcl.Fr();
    if (start + SECTOR_BYTES <= data.length) x.setBigEndianMod(data.subarray(start, start + SECTOR_BYTES));
    else if (start < data.length) {
      const sector = new Uint8Array(SECTOR_BYTES);
      sector.set(data.subarray(start));
      x.setBigEndianMod(sector);
    }
    out.push(x);
  }
  return out;
}

/** What the proof of possession signs: the key's encoding up to the signature (version, count, v, u_j). */
function popMessage(v: G2, u: readonly G1[]): Uint8Array {
  const out = new Uint8Array(publicKeyBytes(u.length) - curve.G1_BYTES);
  out[0] = PUBLIC_KEY_VERSION;
  out[1] = u.length;
  out.set(curve.g2ToBytes(v), 2);
  u.forEach((p, j) => out.set(curve.g1ToBytes(p), 2 + curve.G2_BYTES + j * curve.G1_BYTES));
  return out;
}

/**
 * A fresh owner key from the CSPRNG, with `sectors` generators (the largest sector count its tags may use).
 * @throws MalformedInputError for a sector count outside 1..MAX_SECTORS.
 */
export function generateKey(sectors = DEFAULT_SECTORS): PorSecretKey {
  return secretKeyFromScalar(curve.randomFr(), sectors);
}

/** α_j = HKDF-SHA256(x, j) reduced mod r from 48 bytes (bias below 2^-128), as RFC 9380 hash_to_field does. */
function alpha(x: Fr, j: number): Fr {
  const info = new Uint8Array(4);
  new DataView(info.buffer).setUint32(0, j);
  const a = new mcl.Fr();
  a.setBigEndianMod(new Uint8Array(hkdfSync('sha256', curve.frToBytes(x), ALPHA_SALT, info, 48)));
  return a;
}

function secretKeyFromScalar(x: Fr, sectors: number): PorSecretKey {
  checkSectors(sectors);
  const alphas = Array.from({ length: sectors }, (_, j) => alpha(x, j));
  const g1 = curve.g1Generator();
  const u = alphas.map((a) => curve.g1Mul(g1, a));
  const v = curve.g2Mul(curve.g2Generator(), x);
  const pop = curve.g1Mul(curve.hashToG1(popMessage(v, u), DST_POP), x);
  return { x, xAlpha: alphas.map((a) => curve.frMul(x, a)), publicKey: { v, u, pop } };
}

/** The 32-byte encoding of a secret key (to be stored wrapped by a key-encryption key). */
export function encodeSecretKey(key: PorSecretKey): Uint8Array {
  return curve.frToBytes(key.x);
}

/**
 * Decodes a secret key and derives its public key with `sectors` generators.
 * @throws MalformedInputError for a wrong length, a non-canonical or zero scalar, or a sector count outside 1..MAX_SECTORS.
 */
export function decodeSecretKey(bytes: Uint8Array, sectors = DEFAULT_SECTORS): PorSecretKey {
  return secretKeyFromScalar(curve.frFromBytes(bytes, 'proof-of-storage secret key'), sectors);
}

/** version (2) ‖ generator count ‖ v (96) ‖ u_j (48 each) ‖ proof of possession (48). */
export function encodePublicKey(key: PorPublicKey): Uint8Array {
  const message = popMessage(key.v, key.u);
  const out = new Uint8Array(message.length + curve.G1_BYTES);
  out.set(message);
  out.set(curve.g1ToBytes(key.pop), message.length);
  return out;
}

/**
 * Decodes and checks a public key: every u_j in G1, not the identity and all distinct, and the proof of
 * possession over v and the u_j.
 * @throws UnsupportedError naming the version (version 1, the global-generator keys, included),
 *         MalformedInputError (length, generator count, encoding, subgroup, repeated generators, or a proof of
 *         possession that does not verify).
 */
export function decodePublicKey(bytes: Uint8Array): PorPublicKey {
  if (!(bytes instanceof Uint8Array) || bytes.length < 2) throw new MalformedInputError('proof-of-storage public key: truncated header');
  if (bytes[0] !== PUBLIC_KEY_VERSION)
    throw new UnsupportedError(`proof-of-storage public key: version ${bytes[0]} is not supported (expected version ${PUBLIC_KEY_VERSION})`);
  const count = bytes[1]!;
  if (count < 1 || count > MAX_SECTORS) throw new MalformedInputError(`proof-of-storage public key: 1..${MAX_SECTORS} sector generators, got ${count}`);
  if (bytes.length !== publicKeyBytes(count))
    throw new MalformedInputError(`proof-of-storage public key: ${count} generators need ${publicKeyBytes(count)} bytes, got ${bytes.length}`);
  const v = curve.g2FromBytes(bytes.subarray(2, 2 + curve.G2_BYTES), 'proof-of-storage public key');
  const seen = new Set<string>();
  const u = Array.from({ length: count }, (_, j) => {
    const at = 2 + curve.G2_BYTES + j * curve.G1_BYTES;
    const encoded = bytes.subarray(at, at + curve.G1_BYTES);
    const hex = Buffer.from(encoded).toString('hex');
    if (seen.has(hex)) throw new MalformedInputError(`proof-of-storage public key: generator ${j} repeats an earlier one`);
    seen.add(hex);
    return curve.g1FromBytes(encoded, `proof-of-storage generator ${j}`);
  });
  const pop = curve.g1FromBytes(bytes.subarray(bytes.length - curve.G1_BYTES), 'proof of possession');
  const h = curve.hashToG1(popMessage(v, u), DST_POP);
  if (!curve.multiPairing([curve.g1Neg(pop), h], [curve.g2Generator(), v]).isOne()) {
    throw new MalformedInputError('proof-of-storage public key: the proof of possession does not verify');
  }
  return { v, u, pop };
}

/** SHA-256 of the public key's encoding, hex: how the ledger and the cloud name a key. */
export function publicKeyId(key: PorPublicKey): string {
  return createHash('sha256').update(encodePublicKey(key)).digest('hex');
}

/**
 * Tags every block of `data` (the gateway, at upload): per block one hash to G1, s multiply-adds in Z_r and one
 * two-term multi-exponentiation, H(name ‖ i)^x · g1^{Σ_j (x·α_j) m_ij} (equal to (H(name ‖ i) · Π u_j^{m_ij})^x).
 * @throws MalformedInputError (name, sector count, or more sectors than the key has generators), LimitExceededError.
 */
export function tagFile(key: PorSecretKey, name: Uint8Array, data: Uint8Array, sectors = DEFAULT_SECTORS): TagSet {
  checkName(name);
  const blocks = blockCount(data.length, sectors);
  if (blocks > MAX_BLOCKS) throw new LimitExceededError(`proof of storage: at most ${MAX_BLOCKS} blocks per file`);
  generators(key.publicKey, sectors);
  const bases = [new mcl.G1(), curve.g1Generator()];
  const tags: G1[] = [];
  for (let i = 0; i < blocks; i++) {
    const m = sectorsOf(data, i, sectors);
    let exponent = new mcl.Fr();
    for (let j = 0; j < sectors; j++) exponent = curve.frAdd(exponent, curve.frMul(key.xAlpha[j]!, m[j]!));
    bases[0] = blockPoint(name, i);
    tags.push(curve.msmG1(bases, [key.x, exponent]));
  }
  return { sectors, tags };
}

/** version ‖ sectors ‖ block count (4, big-endian) ‖ 48-byte tags. */
export function encodeTagSet(set: TagSet): Uint8Array {
  const out = new Uint8Array(6 + set.tags.length * curve.G1_BYTES);
  out[0] = VERSION;
  out[1] = set.sectors;
  new DataView(out.buffer).setUint32(2, set.tags.length);
  set.tags.forEach((t, i) => out.set(curve.g1ToBytes(t), 6 + i * curve.G1_BYTES));
  return out;
}

/** The header of an encoded tag set, checked against the length. @throws as `decodeTagSet`. */
function tagSetHeader(bytes: Uint8Array): { sectors: number; count: number } {
  if (!(bytes instanceof Uint8Array) || bytes.length < 6) throw new MalformedInputError('proof-of-storage tag set: truncated header');
  if (bytes[0] !== VERSION) throw new UnsupportedError(`proof-of-storage tag set: version ${bytes[0]} is not supported`);
  const sectors = bytes[1]!;
  checkSectors(sectors);
  const count = new DataView(bytes.buffer, bytes.byteOffset).getUint32(2);
  if (count === 0 || count > MAX_BLOCKS) throw new LimitExceededError(`proof-of-storage tag set: 1..${MAX_BLOCKS} blocks`);
  if (bytes.length !== 6 + count * curve.G1_BYTES)
    throw new MalformedInputError(`proof-of-storage tag set: ${count} tags need ${6 + count * curve.G1_BYTES} bytes, got ${bytes.length}`);
  return { sectors, count };
}

/** The sector and block counts an encoded tag set declares, checked against its length (no point decoded). @throws as `decodeTagSet`. */
export function tagSetShape(bytes: Uint8Array): { sectors: number; blocks: number } {
  const { sectors, count } = tagSetHeader(bytes);
  return { sectors, blocks: count };
}

const tagAt = (bytes: Uint8Array, i: number): G1 => curve.g1FromBytes(bytes.subarray(6 + i * curve.G1_BYTES, 6 + (i + 1) * curve.G1_BYTES), `tag ${i}`);

/** Decodes a tag set. @throws MalformedInputError, UnsupportedError, LimitExceededError. */
export function decodeTagSet(bytes: Uint8Array): TagSet {
  const { sectors, count } = tagSetHeader(bytes);
  return { sectors, tags: Array.from({ length: count }, (_, i) => tagAt(bytes, i)) };
}

/**
 * Decodes only the tags at `blocks` (what a proof needs) from an encoded tag set, leaving the others undefined:
 * a prover touches a few tags of a large record. @throws as `decodeTagSet`.
 */
export function decodeTagsAt(bytes: Uint8Array, blocks: readonly number[]): TagSet {
  const { sectors, count } = tagSetHeader(bytes);
  const tags: G1[] = new Array<G1>(count);
  for (const i of blocks) if (i >= 0 && i < count) tags[i] = tagAt(bytes, i);
  return { sectors, tags };
}

/** A fresh challenge nonce from the operating system's CSPRNG. */
export function freshNonce(): Uint8Array {
  return new Uint8Array(randomBytes(NONCE_BYTES));
}

/** Validates a challenge's shape and bounds. @throws MalformedInputError, LimitExceededError. */
export function checkChallenge(challenge: Challenge): void {
  if (typeof challenge !== 'object' || challenge === null) throw new MalformedInputError('proof-of-storage challenge: not an object');
  if (!(challenge.nonce instanceof Uint8Array) || challenge.nonce.length !== NONCE_BYTES)
    throw new MalformedInputError(`proof-of-storage challenge: the nonce is ${NONCE_BYTES} bytes`);
  checkSectors(challenge.sectors);
  if (!Number.isInteger(challenge.keys) || challenge.keys < 1) throw new MalformedInputError('proof-of-storage challenge: at least one key');
  if (challenge.keys > MAX_CHALLENGE_KEYS) throw new LimitExceededError(`proof-of-storage challenge: at most ${MAX_CHALLENGE_KEYS} keys`);
  if (!Number.isInteger(challenge.samples) || challenge.samples < 1) throw new MalformedInputError('proof-of-storage challenge: at least one sample');
  if (challenge.samples > MAX_SAMPLES) throw new LimitExceededError(`proof-of-storage challenge: at most ${MAX_SAMPLES} samples`);
  if (!Array.isArray(challenge.files) || challenge.files.length === 0) throw new MalformedInputError('proof-of-storage challenge: at least one file');
  if (challenge.files.length > MAX_CHALLENGE_FILES) throw new LimitExceededError(`proof-of-storage challenge: at most ${MAX_CHALLENGE_FILES} files`);
  for (const f of challenge.files) {
    checkName(f.name);
    if (!Number.isInteger(f.blocks) || f.blocks < 1 || f.blocks > MAX_BLOCKS)
      throw new MalformedInputError(`proof-of-storage challenge: a file has 1..${MAX_BLOCKS} blocks`);
    if (!Number.isInteger(f.key) || f.key < 0 || f.key >= challenge.keys)
      throw new MalformedInputError('proof-of-storage challenge: a file names a key outside the key list');
  }
}

/** SHA-256 over the whole challenge: coefficients depend on every field, so no part can be swapped. */
function challengeDigest(challenge: Challenge): Buffer {
  const h = createHash('sha256').update('medshare/por/v2/challenge');
  const header = Buffer.alloc(16);
  header.writeUInt32BE(challenge.sectors, 0);
  header.writeUInt32BE(challenge.keys, 4);
  header.writeUInt32BE(challenge.samples, 8);
  header.writeUInt32BE(challenge.files.length, 12);
  h.update(challenge.nonce).update(header);
  for (const f of challenge.files) {
    const meta = Buffer.alloc(9);
    meta.writeUInt32BE(f.blocks, 0);
    meta.writeUInt32BE(f.key, 4);
    meta[8] = f.name.length;
    h.update(meta).update(f.name);
  }
  return h.digest();
}

function stream(seed: Buffer, label: string, counter: number): Buffer {
  const c = Buffer.alloc(8);
  c.writeBigUInt64BE(BigInt(counter));
  return createHash('sha512').update(seed).update(label).update(c).digest();
}

/**
 * The challenged blocks and coefficients, derived from the challenge alone (prover and verifier agree):
 * `samples` distinct blocks drawn uniformly over all N blocks of the files, or every block when samples ≥ N/2.
 * Sorted by file, then block. @throws as `checkChallenge`.
 */
export function expandChallenge(challenge: Challenge): Sample[] {
  checkChallenge(challenge);
  const seed = challengeDigest(challenge);
  const starts: number[] = [];
  let total = 0;
  for (const f of challenge.files) {
    starts.push(total);
    total += f.blocks;
  }
  let picked: number[];
  if (2 * challenge.samples >= total) picked = Array.from({ length: total }, (_, i) => i);
  else {
    const chosen = new Set<number>();
    const n = BigInt(total);
    const limit = (1n << 64n) - ((1n << 64n) % n);
    // Eight 64-bit candidates per SHA-512 block.
    for (let counter = 0; chosen.size < challenge.samples; counter++) {
      const block = stream(seed, 'index', counter);
      for (let w = 0; w < 8 && chosen.size < challenge.samples; w++) {
        const word = block.readBigUInt64BE(8 * w);
        if (word < limit) chosen.add(Number(word % n));
      }
    }
    picked = [...chosen].sort((a, b) => a - b);
  }
  const perBlock = 64 / COEFFICIENT_BYTES;
  let coefficients: Buffer = Buffer.alloc(0);
  return picked.map((global, k) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= global) lo = mid;
      else hi = mid - 1;
    }
    if (k % perBlock === 0) coefficients = stream(seed, 'coefficient', k / perBlock);
    const at = (k % perBlock) * COEFFICIENT_BYTES;
    const coefficient = shortScalar(coefficients.subarray(at, at + COEFFICIENT_BYTES));
    return { file: lo, block: global - starts[lo]!, coefficient };
  });
}

/** The big-endian integer `bytes` (at most 16 bytes, so below r) as a scalar. */
function shortScalar(bytes: Uint8Array): Fr {
  const x = new mcl.Fr();
  x.setBigEndianMod(bytes);
  return x;
}

function zeros(n: number): Fr[] {
  return Array.from({ length: n }, () => new mcl.Fr());
}

/** Σ ν_i m_ij and the σ_i with their ν_i for the samples of one group (missing tags are left out). */
function accumulate(samples: readonly Sample[], stored: readonly (StoredFile | undefined)[], sectors: number, mu: Fr[], points: G1[], scalars: Fr[]): void {
  for (const s of samples) {
    const file = stored[s.file] ?? LOST;
    const m = sectorsOf(file.data, s.block, sectors);
    for (let j = 0; j < sectors; j++) mu[j] = curve.frAdd(mu[j]!, curve.frMul(s.coefficient, m[j]!));
    const tag = file.tags.tags[s.block];
    if (tag !== undefined) {
      points.push(tag);
      scalars.push(s.coefficient);
    }
  }
}

/** A file the prover no longer has. */
const LOST: StoredFile = { data: new Uint8Array(0), tags: { sectors: 1, tags: [] } };

function sum(points: G1[], scalars: Fr[]): G1 {
  return points.length === 0 ? new mcl.G1() : curve.msmG1(points, scalars);
}

/**
 * The cloud's answer to a challenge from what it holds (`stored[i]` is file i of the challenge, undefined when
 * lost; only sampled files are read). A file whose bytes or tags were lost or altered yields a proof that does
 * not verify.
 * @throws MalformedInputError for a challenge that does not validate or a stored list of the wrong length.
 */
export function prove(challenge: Challenge, stored: readonly (StoredFile | undefined)[], kind: Proof['kind'] = 'aggregate'): Proof {
  const samples = expandChallenge(challenge);
  if (stored.length !== challenge.files.length) throw new MalformedInputError('proof of storage: one stored file per challenged file');
  const s = challenge.sectors;
  if (kind === 'aggregate') {
    const mu = Array.from({ length: challenge.keys }, () => zeros(s));
    const points: G1[] = [];
    const scalars: Fr[] = [];
    for (const sample of samples) accumulate([sample], stored, s, mu[challenge.files[sample.file]!.key]!, points, scalars);
    return { kind, sigma: sum(points, scalars), mu };
  }
  const files: PerFileProof['files'][number][] = [];
  for (let start = 0; start < samples.length;) {
    let end = start;
    while (end < samples.length && samples[end]!.file === samples[start]!.file) end++;
    const mu = zeros(s);
    const points: G1[] = [];
    const scalars: Fr[] = [];
    accumulate(samples.slice(start, end), stored, s, mu, points, scalars);
    files.push({ file: samples[start]!.file, sigma: sum(points, scalars), mu });
    start = end;
  }
  return { kind, files };
}

/** Π H(name ‖ i)^{ν_i} · Π u_j^{μ_j} over the given samples. */
function expected(challenge: Challenge, key: PorPublicKey, samples: readonly Sample[], mu: readonly Fr[]): G1 {
  const points = [...generators(key, challenge.sectors), ...samples.map((s) => blockPoint(challenge.files[s.file]!.name, s.block))];
  const scalars = [...mu, ...samples.map((s) => s.coefficient)];
  return curve.msmG1(points, scalars);
}

/**
 * Checks an aggregated proof: e(σ, g2) = Π_k e(A_k, v_k), one multi-pairing of (owners with samples + 1) pairs
 * after one multi-exponentiation per owner. False when the cloud does not hold the challenged blocks.
 * @throws MalformedInputError for a challenge that does not validate, a key list of the wrong length, or a key
 *         with fewer sector generators than the challenge's sectors.
 */
export function verifyAggregate(challenge: Challenge, keys: readonly PorPublicKey[], proof: AggregateProof): boolean {
  const samples = expandChallenge(challenge);
  if (keys.length !== challenge.keys) throw new MalformedInputError('proof of storage: one public key per challenge key');
  if (proof.mu.length !== challenge.keys || proof.mu.some((m) => m.length !== challenge.sectors)) return false;
  const byKey = Array.from({ length: challenge.keys }, (): Sample[] => []);
  for (const s of samples) byKey[challenge.files[s.file]!.key]!.push(s);
  const g1s: G1[] = [curve.g1Neg(proof.sigma)];
  const g2s: G2[] = [curve.g2Generator()];
  for (let k = 0; k < challenge.keys; k++) {
    if (byKey[k]!.length === 0) {
      if (proof.mu[k]!.some((x) => !x.isZero())) return false;
      continue;
    }
    g1s.push(expected(challenge, keys[k]!, byKey[k]!, proof.mu[k]!));
    g2s.push(keys[k]!.v);
  }
  return curve.multiPairing(g1s, g2s).isOne();
}

/**
 * Checks a per-file proof file by file; returns the indices (into the challenge's files) of the files whose
 * proof is missing or does not verify — the files the cloud cannot show it holds.
 * @throws as `verifyAggregate`.
 */
export function failingFiles(challenge: Challenge, keys: readonly PorPublicKey[], proof: PerFileProof): number[] {
  const samples = expandChallenge(challenge);
  if (keys.length !== challenge.keys) throw new MalformedInputError('proof of storage: one public key per challenge key');
  const byFile = new Map<number, Sample[]>();
  for (const s of samples) byFile.set(s.file, [...(byFile.get(s.file) ?? []), s]);
  const answers = new Map<number, PerFileProof['files'][number]>();
  for (const f of proof.files) if (!answers.has(f.file)) answers.set(f.file, f);
  const failing: number[] = [];
  for (const [file, fileSamples] of byFile) {
    const answer = answers.get(file);
    const key = keys[challenge.files[file]!.key]!;
    const ok =
      answer !== undefined &&
      answer.mu.length === challenge.sectors &&
      curve.multiPairing([curve.g1Neg(answer.sigma), expected(challenge, key, fileSamples, answer.mu)], [curve.g2Generator(), key.v]).isOne();
    if (!ok) failing.push(file);
  }
  return failing.sort((a, b) => a - b);
}

/** A file with its tags, as an uploader presents it. */
export interface TaggedFile {
  readonly name: Uint8Array;
  readonly data: Uint8Array;
  readonly tags: TagSet;
}

/**
 * Checks a tag set against the file and its owner's key (the cloud, before it accepts an upload, so a hospital
 * cannot make the cloud fail later audits with bad tags): every block challenged with random coefficients.
 */
export function verifyTagSet(key: PorPublicKey, name: Uint8Array, data: Uint8Array, set: TagSet): boolean {
  return verifyTagSets(key, [{ name, data, tags: set }]);
}

/**
 * Checks the tag sets of many files of one owner in one randomised check (every block of every file with its own
 * random 128-bit exponent, up to MAX_SAMPLES blocks per multi-pairing of two pairs): true only if every tag
 * matches, except with probability 2^-128 (the small-exponents test of Bellare–Garay–Rabin). Tag sets with the wrong block count or mixed sector counts are false.
 */
export function verifyTagSets(key: PorPublicKey, files: readonly TaggedFile[]): boolean {
  const blocks: { file: TaggedFile; block: number }[] = [];
  const sectors = files[0]?.tags.sectors;
  for (const file of files) {
    checkName(file.name);
    if (file.tags.sectors !== sectors || sectors > key.u.length || file.tags.tags.length !== blockCount(file.data.length, file.tags.sectors)) return false;
    for (let i = 0; i < file.tags.tags.length; i++) blocks.push({ file, block: i });
  }
  for (let start = 0; start < blocks.length; start += MAX_SAMPLES) {
    if (!verifyBlocks(key, sectors!, blocks.slice(start, start + MAX_SAMPLES))) return false;
  }
  return true;
}

function verifyBlocks(key: PorPublicKey, s: number, blocks: readonly { file: TaggedFile; block: number }[]): boolean {
  const mu = zeros(s);
  const points: G1[] = [];
  const hashes: G1[] = [];
  const coefficients: Fr[] = [];
  for (const { file, block } of blocks) {
    const nu = shortScalar(randomBytes(COEFFICIENT_BYTES));
    const m = sectorsOf(file.data, block, s);
    for (let j = 0; j < s; j++) mu[j] = curve.frAdd(mu[j]!, curve.frMul(nu, m[j]!));
    points.push(file.tags.tags[block]!);
    hashes.push(blockPoint(file.name, block));
    coefficients.push(nu);
  }
  const a = curve.msmG1([...generators(key, s), ...hashes], [...mu, ...coefficients]);
  return curve.multiPairing([curve.g1Neg(curve.msmG1(points, coefficients)), a], [curve.g2Generator(), key.v]).isOne();
}

const scalarBytes = (x: Fr) => curve.frToBytes(x);

/** A scalar < r (zero allowed: a μ may be zero). */
function decodeScalar(bytes: Uint8Array, what: string): Fr {
  const value = BigInt('0x' + Buffer.from(bytes).toString('hex'));
  if (value >= curve.CURVE_ORDER) throw new MalformedInputError(`${what}: not reduced modulo r`);
  return curve.frFromBigInt(value);
}

/** The identity is a legitimate σ only for an empty sample set; encode it as 48 zero bytes. */
function encodeSigma(p: G1): Uint8Array {
  return p.isZero() ? new Uint8Array(curve.G1_BYTES) : curve.g1ToBytes(p);
}

function decodeSigma(bytes: Uint8Array): G1 {
  if (bytes.every((b) => b === 0)) return new mcl.G1();
  return curve.g1FromBytes(bytes, 'proof σ');
}

/**
 * Aggregate: version ‖ 1 ‖ sectors ‖ keys (2) ‖ σ (48) ‖ μ (keys × sectors × 32).
 * Per file: version ‖ 2 ‖ sectors ‖ count (4) ‖ count × (file (4) ‖ σ (48) ‖ μ (sectors × 32)).
 */
export function encodeProof(proof: Proof): Uint8Array {
  const parts: Uint8Array[] = [];
  if (proof.kind === 'aggregate') {
    const s = proof.mu[0]?.length ?? 0;
    const head = Buffer.alloc(5);
    head[0] = VERSION;
    head[1] = PROOF_AGGREGATE;
    head[2] = s;
    head.writeUInt16BE(proof.mu.length, 3);
    parts.push(head, encodeSigma(proof.sigma), ...proof.mu.flat().map(scalarBytes));
  } else {
    const s = proof.files[0]?.mu.length ?? 0;
    const head = Buffer.alloc(7);
    head[0] = VERSION;
    head[1] = PROOF_PER_FILE;
    head[2] = s;
    head.writeUInt32BE(proof.files.length, 3);
    parts.push(head);
    for (const f of proof.files) {
      const index = Buffer.alloc(4);
      index.writeUInt32BE(f.file);
      parts.push(index, encodeSigma(f.sigma), ...f.mu.map(scalarBytes));
    }
  }
  return new Uint8Array(Buffer.concat(parts));
}

/**
 * Decodes a proof for `challenge`: its sizes must be exactly those the challenge implies.
 * @throws MalformedInputError (truncated, wrong size, a point off the curve or outside G1, a scalar ≥ r, a file
 *         index outside the challenge), UnsupportedError (version or kind), LimitExceededError (more entries than files).
 */
export function decodeProof(bytes: Uint8Array, challenge: Challenge): Proof {
  checkChallenge(challenge);
  if (!(bytes instanceof Uint8Array) || bytes.length < 5) throw new MalformedInputError('proof of storage: truncated header');
  if (bytes[0] !== VERSION) throw new UnsupportedError(`proof of storage: version ${bytes[0]} is not supported`);
  const s = challenge.sectors;
  if (bytes[2] !== s) throw new MalformedInputError(`proof of storage: ${bytes[2]} sectors per block, the challenge has ${s}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const scalars = (at: number, n: number, what: string) =>
    Array.from({ length: n }, (_, j) => decodeScalar(bytes.subarray(at + j * curve.FR_BYTES, at + (j + 1) * curve.FR_BYTES), what));
  if (bytes[1] === PROOF_AGGREGATE) {
    const keys = view.getUint16(3);
    if (keys !== challenge.keys) throw new MalformedInputError(`proof of storage: μ for ${keys} keys, the challenge has ${challenge.keys}`);
    const size = 5 + curve.G1_BYTES + keys * s * curve.FR_BYTES;
    if (bytes.length !== size) throw new MalformedInputError(`proof of storage: expected ${size} bytes, got ${bytes.length}`);
    const sigma = decodeSigma(bytes.subarray(5, 5 + curve.G1_BYTES));
    const mu = Array.from({ length: keys }, (_, k) => scalars(5 + curve.G1_BYTES + k * s * curve.FR_BYTES, s, 'proof μ'));
    return { kind: 'aggregate', sigma, mu };
  }
  if (bytes[1] !== PROOF_PER_FILE) throw new UnsupportedError(`proof of storage: kind ${bytes[1]} is not supported`);
  if (bytes.length < 7) throw new MalformedInputError('proof of storage: truncated header');
  const count = view.getUint32(3);
  if (count > challenge.files.length) throw new LimitExceededError(`proof of storage: ${count} entries for ${challenge.files.length} files`);
  const entry = 4 + curve.G1_BYTES + s * curve.FR_BYTES;
  if (bytes.length !== 7 + count * entry) throw new MalformedInputError(`proof of storage: expected ${7 + count * entry} bytes, got ${bytes.length}`);
  const files = Array.from({ length: count }, (_, i) => {
    const at = 7 + i * entry;
    const file = view.getUint32(at);
    if (file >= challenge.files.length) throw new MalformedInputError(`proof of storage: entry ${i} names file ${file}, outside the challenge`);
    return { file, sigma: decodeSigma(bytes.subarray(at + 4, at + 4 + curve.G1_BYTES)), mu: scalars(at + 4 + curve.G1_BYTES, s, 'proof μ') };
  });
  return { kind: 'per-file', files };
}

/**
 * Probability that `samples` blocks drawn without replacement from `total` catch at least one of `bad` damaged
 * blocks: 1 − C(total − bad, samples) / C(total, samples).
 */
export function detectionProbability(total: number, bad: number, samples: number): number {
  if (2 * samples >= total) return bad > 0 ? 1 : 0;
  let miss = 1;
  for (let i = 0; i < samples; i++) miss *= (total - bad - i) / (total - i);
  return 1 - Math.max(0, miss);
}
