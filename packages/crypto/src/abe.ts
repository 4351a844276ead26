/**
 * CP-ABE for MedShare: FAME (Agrawal & Chase, CCS 2017) as a hybrid scheme, with the policy in the clear
 * header. `setup` → `keygen` → `encrypt` → `decrypt`, streaming variants for large payloads, and the
 * versioned binary encodings of every object (layouts in docs/crypto.md).
 *
 * A ciphertext is   envelope(header) ‖ STREAM payload
 * where the header holds the authority id, the policy text and the FAME encapsulation, and the payload
 * key is HKDF(K, salt = SHA-256(header)) — so every header byte is bound into every payload chunk.
 */
import { createHash } from 'node:crypto';
import * as c from './curve/bls12381.ts';
import { AccessDeniedError, LimitExceededError, MalformedInputError } from './errors.ts';
import { ByteReader, ByteWriter } from './encoding/bytes.ts';
import { ObjectType, SchemeId, openEnvelope, sealEnvelope } from './encoding/envelope.ts';
import * as fame from './fame/scheme.ts';
import { concatBytes, derivePayloadKey, headerDigest, openPayload, PayloadOpener, PayloadSealer, CHUNK_BYTES } from './hybrid/stream.ts';
import { attributeKey, attributeLabel, MAX_INTEGER, quoteIfNeeded, type Attribute } from './policy/ast.ts';
import { flatSpanProgram } from './policy/flat.ts';
import { countLeaves, toSpanProgram, type SpanProgram } from './policy/msp.ts';
import { expandComparisons, integerBits } from './policy/numeric.ts';
import { checkOccurrenceBound, checkOccurrences, DEFAULT_MAX_OCCURRENCES, keyLabels, rowLabels } from './policy/occurrence.ts';
import { DEFAULT_POLICY_LIMITS, parseAttributes, parsePolicy, type KeyAttribute, type PolicyLimits } from './policy/parser.ts';
import { reconstruct } from './policy/reconstruct.ts';

export type { KeyAttribute, PolicyLimits };

const AUTHORITY_ID_BYTES = 16;
const PAYLOAD_LABEL = 'FAME CP-ABE';

/** The authority's public parameters. `authorityId` fingerprints them (first 16 bytes of SHA-256). */
export interface PublicKey {
  readonly authorityId: Uint8Array;
  readonly fame: fame.FamePublicKey;
}

/** The authority's master secret. Never leaves the trusted authority. */
export interface MasterKey {
  readonly authorityId: Uint8Array;
  readonly fame: fame.FameMasterKey;
}

/** A user's attribute key: for every (expanded) attribute, `maxOccurrences` components (the one-use copies). */
export interface UserKey {
  readonly authorityId: Uint8Array;
  readonly attributes: readonly KeyAttribute[];
  /** K: the key can decrypt policies that name each of its attributes at most K times. */
  readonly maxOccurrences: number;
  readonly fame: fame.FameUserKey;
}

/** Options of `keygen`. */
export interface KeygenOptions {
  /** K, the copies of each attribute (default DEFAULT_MAX_OCCURRENCES = 8, at most 64); key size grows linearly. */
  maxOccurrences?: number;
}

export { DEFAULT_MAX_OCCURRENCES };

/** A parsed ciphertext header: enough to decide access and to open the payload. */
export interface CiphertextHeader {
  readonly authorityId: Uint8Array;
  readonly policy: string;
  readonly program: SpanProgram;
  /** The oracle label of each row: (attribute, occurrence), pairwise distinct. */
  readonly labels: readonly Uint8Array[];
  readonly encapsulation: fame.FameEncapsulation;
  /** The header's exact bytes (its length is where the payload starts). */
  readonly bytes: Uint8Array;
}

/** Initialises the pairing library; await once before anything else. */
export const init = c.initCurve;

function fingerprint(publicKeyBody: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(publicKeyBody).digest().subarray(0, AUTHORITY_ID_BYTES));
}

function publicKeyBody(pk: fame.FamePublicKey): Uint8Array {
  return new ByteWriter().raw(c.g2ToBytes(pk.hA[0])).raw(c.g2ToBytes(pk.hA[1])).raw(c.gtToBytes(pk.eA[0])).raw(c.gtToBytes(pk.eA[1])).finish();
}

/** Setup: a new authority's public key and master key. */
export function setup(): { publicKey: PublicKey; masterKey: MasterKey } {
  const { publicKey, masterKey } = fame.setup();
  const authorityId = fingerprint(publicKeyBody(publicKey));
  return { publicKey: { authorityId, fame: publicKey }, masterKey: { authorityId, fame: masterKey } };
}

/** The attributes a key holds once integer attributes are decomposed into bits. */
function expandKeyAttributes(attributes: readonly KeyAttribute[]): Attribute[] {
  return attributes.flatMap((a): Attribute[] => (a.kind === 'integer' ? integerBits(a.name, a.value) : [a]));
}

/** Canonical text of an attribute list, e.g. `role:doctor, level=3`. */
export function formatAttributes(attributes: readonly KeyAttribute[]): string {
  return attributes.map((a) => (a.kind === 'integer' ? `${a.name}=${a.value}` : `${a.name}:${quoteIfNeeded(a.value)}`)).join(', ');
}

/**
 * KeyGen: a user key for `attributes`, given as text (`role:doctor, dept:cardiology, level=3`) or parsed, with
 * K = `options.maxOccurrences` copies of each attribute. Integer attributes take one value each; duplicates are
 * rejected (PolicySyntaxError); LimitExceededError for a bound outside 1..64.
 */
export function keygen(masterKey: MasterKey, attributes: string | readonly KeyAttribute[], options: KeygenOptions = {}): UserKey {
  const parsed = typeof attributes === 'string' ? parseAttributes(attributes) : parseAttributes(formatAttributes(attributes));
  const maxOccurrences = options.maxOccurrences ?? DEFAULT_MAX_OCCURRENCES;
  const labels = keyLabels(expandKeyAttributes(parsed), maxOccurrences);
  return { authorityId: masterKey.authorityId, attributes: parsed, maxOccurrences, fame: fame.keygen(masterKey.fame, labels) };
}

/**
 * Hashes the oracle points of every copy (1..K) of `attributes` into the process's attribute cache, so that the
 * next keygen naming them does no RFC 9380 hashing (which is most of a cold keygen). An integer attribute is warmed
 * for every value (both settings of each of its bits), so any key for that name then hits. Returns the labels hashed
 * now; PolicySyntaxError / LimitExceededError as keygen throws them.
 */
export function warmAttributeHashes(attributes: string | readonly KeyAttribute[], options: KeygenOptions = {}): number {
  const parsed = typeof attributes === 'string' ? parseAttributes(attributes) : parseAttributes(formatAttributes(attributes));
  const expanded = parsed.flatMap((a): Attribute[] => (a.kind === 'integer' ? [...integerBits(a.name, 0), ...integerBits(a.name, MAX_INTEGER)] : [a]));
  return fame.warmOracle(keyLabels(expanded, options.maxOccurrences ?? DEFAULT_MAX_OCCURRENCES));
}

/**
 * Parses a policy into its span program, enforcing the size limits: LimitExceededError past `maxLeaves`, or when
 * one attribute is named more than `maxOccurrences` times (the message names it); PolicySyntaxError if it does
 * not parse.
 */
export function compilePolicy(policy: string, limits: PolicyLimits = DEFAULT_POLICY_LIMITS): SpanProgram {
  return flatSpanProgram(policy, limits) ?? compileGeneral(policy, limits);
}

/** compilePolicy by the general parser and span-program builder, for every policy (the flat path's reference). */
export function compileGeneral(policy: string, limits: PolicyLimits = DEFAULT_POLICY_LIMITS): SpanProgram {
  const expanded = expandComparisons(parsePolicy(policy, limits));
  const leaves = countLeaves(expanded);
  if (leaves > limits.maxLeaves) {
    throw new LimitExceededError(`policy has ${leaves} attribute leaves after expanding comparisons; the limit is ${limits.maxLeaves}`);
  }
  const program = toSpanProgram(expanded);
  checkOccurrences(program, limits.maxOccurrences);
  return program;
}

/** A policy compiled for headers: its span program and row labels (treated as immutable by every caller). */
interface CompiledPolicy {
  readonly program: SpanProgram;
  readonly labels: readonly Uint8Array[];
}

/** Bounded: a reader's headers name few distinct policies (one per delegation), and each entry is small. */
const MAX_COMPILED_POLICIES = 512;
const compiledPolicies = new Map<string, CompiledPolicy>();

/**
 * compilePolicy and rowLabels for a header's policy, cached by policy text and limits: decrypting many records of
 * one policy parses it once. Throws as compilePolicy does (failures are not cached). The least recently used entry
 * is evicted.
 */
function compiledForHeader(policy: string, limits: PolicyLimits): CompiledPolicy {
  const name = `${limits === DEFAULT_POLICY_LIMITS ? 'default' : JSON.stringify(limits)}\n${policy}`;
  let compiled = compiledPolicies.get(name);
  if (compiled !== undefined) {
    compiledPolicies.delete(name);
  } else {
    const program = compilePolicy(policy, limits);
    compiled = { program, labels: rowLabels(program) };
    if (compiledPolicies.size >= MAX_COMPILED_POLICIES) compiledPolicies.delete(compiledPolicies.keys().next().value!);
  }
  compiledPolicies.set(name, compiled);
  return compiled;
}

/** Empties the compiled-policy cache (benchmarks measure decryption with and without it). */
export function clearPolicyCache(): void {
  compiledPolicies.clear();
}

function encodeHeader(authorityId: Uint8Array, policy: string, enc: fame.FameEncapsulation): Uint8Array {
  const w = new ByteWriter().raw(authorityId).text(policy);
  for (const q of enc.c0) w.raw(c.g2ToBytesUncompressed(q));
  w.u32(enc.rows.length);
  for (const row of enc.rows) for (const p of row) w.raw(c.g1ToBytesUncompressed(p));
  w.u32(CHUNK_BYTES);
  return sealEnvelope(ObjectType.AbeCiphertext, SchemeId.Fame, w.finish());
}

/** Streaming encryption: returns the header to write first and a sealer for the payload. */
export function encryptStream(publicKey: PublicKey, policy: string, limits?: PolicyLimits): { header: Uint8Array; sealer: PayloadSealer } {
  const { key, header } = encapsulate(publicKey, policy, limits);
  return { header, sealer: new PayloadSealer(derivePayloadKey(c.gtToBytes(key), headerDigest(header), PAYLOAD_LABEL), headerDigest(header)) };
}

/**
 * The KEM alone: a fresh uniformly random GT element and a header that encapsulates it under `policy`.
 * Used by proxy re-encryption, whose delegation key is such an encapsulation.
 */
export function encapsulate(publicKey: PublicKey, policy: string, limits?: PolicyLimits): { key: c.GT; header: Uint8Array } {
  const program = compilePolicy(policy, limits);
  const { key, encapsulation } = fame.encapsulate(publicKey.fame, program, rowLabels(program));
  return { key, header: encodeHeader(publicKey.authorityId, policy, encapsulation) };
}

/** Encrypts `plaintext` under `policy` (in memory; see encryptStream for large payloads). */
export function encrypt(publicKey: PublicKey, policy: string, plaintext: Uint8Array, limits?: PolicyLimits): Uint8Array {
  const { key, header } = encapsulate(publicKey, policy, limits);
  const digest = headerDigest(header);
  const sealer = new PayloadSealer(derivePayloadKey(c.gtToBytes(key), digest, PAYLOAD_LABEL), digest);
  // The header and the sealed chunks joined once (sealPayload would join the chunks, and this the payload again).
  return concatBytes([header, ...sealer.end(plaintext)]);
}

/**
 * Reads and validates the header at the start of `input` (trailing payload bytes are left to the caller).
 * Structural failures after the checksum are reported as corruption.
 */
export function openHeader(input: Uint8Array, limits: PolicyLimits = DEFAULT_POLICY_LIMITS): CiphertextHeader {
  const envelope = openEnvelope(input, ObjectType.AbeCiphertext, SchemeId.Fame, false);
  const r = envelope.body;
  const authorityId = r.raw(AUTHORITY_ID_BYTES);
  const policy = r.text(limits.maxLength * 4);
  const { program, labels } = compiledForHeader(policy, limits);
  const readC0 = () => c.g2FromBytesUncompressed(r.raw(c.G2_UNCOMPRESSED_BYTES), 'ct0');
  const c0: fame.Triple<c.G2> = [readC0(), readC0(), readC0()];
  const rowCount = r.count(limits.maxLeaves, 3 * c.G1_UNCOMPRESSED_BYTES);
  if (rowCount !== program.rows.length) throw new MalformedInputError(`ciphertext has ${rowCount} rows but its policy needs ${program.rows.length}`);
  const row = (i: number) => c.g1FromBytesOnCurve(r.raw(c.G1_UNCOMPRESSED_BYTES), `row ${i}`);
  const rows = Array.from({ length: rowCount }, (_, i): fame.Triple<c.G1> => [row(i), row(i), row(i)]);
  const chunkSize = r.u32();
  if (chunkSize !== CHUNK_BYTES) throw new MalformedInputError(`unsupported payload chunk size ${chunkSize}`);
  r.end();
  return { authorityId, policy, program, labels, encapsulation: { c0, rows }, bytes: envelope.bytes };
}

function sameAuthority(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Recovers the KEM key of a header; AccessDeniedError if the key does not satisfy the policy (including when it
 * would, but the policy names one of its attributes more often than the key's bound K).
 */
export function decapsulate(userKey: UserKey, header: CiphertextHeader): c.GT {
  if (!sameAuthority(userKey.authorityId, header.authorityId)) {
    throw new AccessDeniedError('the key was issued by a different attribute authority than the ciphertext');
  }
  try {
    return fame.decapsulate(userKey.fame, header.program, header.labels, header.encapsulation);
  } catch (error) {
    const needed = Math.max(...header.program.rows.map((row) => row.occurrence));
    if (error instanceof AccessDeniedError && needed > userKey.maxOccurrences && satisfiedBy(header.program, userKey.attributes)) {
      throw new AccessDeniedError(
        `the policy names an attribute ${needed} times but this key carries ${userKey.maxOccurrences} copies; ask the authority for a key with a larger bound`,
      );
    }
    throw error;
  }
}

/** Streaming decryption: an opener for the payload that follows `header`. */
export function decryptStream(userKey: UserKey, header: CiphertextHeader): PayloadOpener {
  const key = decapsulate(userKey, header);
  const digest = headerDigest(header.bytes);
  return new PayloadOpener(derivePayloadKey(c.gtToBytes(key), digest, PAYLOAD_LABEL), digest);
}

/** Decrypts a whole ciphertext in memory. */
export function decrypt(userKey: UserKey, ciphertext: Uint8Array): Uint8Array {
  const header = openHeader(ciphertext);
  const key = decapsulate(userKey, header);
  const digest = headerDigest(header.bytes);
  return openPayload(derivePayloadKey(c.gtToBytes(key), digest, PAYLOAD_LABEL), digest, ciphertext.subarray(header.bytes.length));
}

/**
 * The attributes `policy` names more than once once comparisons are expanded, as readable labels (a repeated bit of
 * an integer is reported as its name, `level (integer bits)`): the policies whose format-1 objects were unsafe and
 * must be re-issued. Throws like compilePolicy, except that no occurrence bound applies.
 */
export function repeatedAttributes(policy: string): string[] {
  const program = compilePolicy(policy, { ...DEFAULT_POLICY_LIMITS, maxOccurrences: Number.MAX_SAFE_INTEGER });
  const repeated = program.rows
    .filter((row) => row.occurrence === 2)
    .map((row) => (row.attribute.kind === 'bit' ? `${row.attribute.name} (integer bits)` : attributeLabel(row.attribute)));
  return [...new Set(repeated)];
}

/** True if the key's attributes satisfy the policy (no cryptography: a pre-check for services and UIs). */
export function satisfies(attributes: string | readonly KeyAttribute[], policy: string): boolean {
  return policyCheck(policy)(attributes);
}

/**
 * `satisfies` with the policy compiled once, for a service that checks many readers against the same policies
 * (parsing and building the span program cost more than the check itself).
 */
export function policyCheck(policy: string): (attributes: string | readonly KeyAttribute[]) => boolean {
  const program = compilePolicy(policy);
  return (attributes) => satisfiedBy(program, typeof attributes === 'string' ? parseAttributes(attributes) : attributes);
}

/** True if `attributes` satisfy the span program, whatever the number of copies a key for them carries. */
function satisfiedBy(program: SpanProgram, attributes: readonly KeyAttribute[]): boolean {
  const held = new Set(expandKeyAttributes(attributes).map(attributeKey));
  return reconstruct(program, (row) => held.has(row.key)) !== undefined;
}

// ---- encodings -------------------------------------------------------------------------------

const readG1 = (r: ByteReader, what: string) => c.g1FromBytes(r.raw(c.G1_BYTES), what);
const readG2 = (r: ByteReader, what: string) => c.g2FromBytes(r.raw(c.G2_BYTES), what);
const readGT = (r: ByteReader, what: string) => c.gtFromBytes(r.raw(c.GT_BYTES), what);
const readFr = (r: ByteReader, what: string) => c.frFromBytes(r.raw(c.FR_BYTES), what);

/** Binary encoding of a public key. */
export function encodePublicKey(key: PublicKey): Uint8Array {
  return sealEnvelope(ObjectType.AbePublicKey, SchemeId.Fame, publicKeyBody(key.fame));
}

/** Decodes and validates a public key (subgroup checks on every element). */
export function decodePublicKey(bytes: Uint8Array): PublicKey {
  const r = openEnvelope(bytes, ObjectType.AbePublicKey, SchemeId.Fame).body;
  const fameKey: fame.FamePublicKey = { hA: [readG2(r, 'h^a1'), readG2(r, 'h^a2')], eA: [readGT(r, 'T1'), readGT(r, 'T2')] };
  r.end();
  return { authorityId: fingerprint(publicKeyBody(fameKey)), fame: fameKey };
}

/** Binary encoding of a master key. Secret: store it encrypted at rest. */
export function encodeMasterKey(key: MasterKey): Uint8Array {
  const w = new ByteWriter().raw(key.authorityId);
  for (const x of [...key.fame.a, ...key.fame.b]) w.raw(c.frToBytes(x));
  for (const p of key.fame.gd) w.raw(c.g1ToBytes(p));
  return sealEnvelope(ObjectType.AbeMasterKey, SchemeId.Fame, w.finish());
}

export function decodeMasterKey(bytes: Uint8Array): MasterKey {
  const r = openEnvelope(bytes, ObjectType.AbeMasterKey, SchemeId.Fame).body;
  const authorityId = r.raw(AUTHORITY_ID_BYTES);
  const [a1, a2, b1, b2] = [readFr(r, 'a1'), readFr(r, 'a2'), readFr(r, 'b1'), readFr(r, 'b2')];
  const gd: fame.Triple<c.G1> = [readG1(r, 'g^d1'), readG1(r, 'g^d2'), readG1(r, 'g^d3')];
  r.end();
  return { authorityId, fame: { a: [a1, a2], b: [b1, b2], gd } };
}

/**
 * Binary encoding of a user key (format 2): authority id, attribute list text, K (u16), sk0, sk', then one triple
 * per (expanded attribute, copy 1..K), attribute by attribute.
 */
export function encodeUserKey(key: UserKey): Uint8Array {
  const w = new ByteWriter().raw(key.authorityId).text(formatAttributes(key.attributes)).u16(key.maxOccurrences);
  for (const q of key.fame.k0) w.raw(c.g2ToBytes(q));
  for (const p of key.fame.kPrime) w.raw(c.g1ToBytes(p));
  w.u32(key.fame.components.length);
  for (const comp of key.fame.components) for (const p of comp.k) w.raw(c.g1ToBytes(p));
  return sealEnvelope(ObjectType.AbeUserKey, SchemeId.Fame, w.finish());
}

/**
 * Decodes and validates a user key (subgroup checks on every element). UnsupportedError for a format-1 key (it
 * must be re-issued), MalformedInputError or LimitExceededError for a malformed one.
 */
export function decodeUserKey(bytes: Uint8Array, limits: PolicyLimits = DEFAULT_POLICY_LIMITS): UserKey {
  const r = openEnvelope(bytes, ObjectType.AbeUserKey, SchemeId.Fame).body;
  const authorityId = r.raw(AUTHORITY_ID_BYTES);
  const attributes = parseAttributes(r.text(limits.maxLength * 4), limits);
  const maxOccurrences = r.u16();
  checkOccurrenceBound(maxOccurrences);
  const labels = keyLabels(expandKeyAttributes(attributes), maxOccurrences);
  const k0: fame.Triple<c.G2> = [readG2(r, 'sk0'), readG2(r, 'sk0'), readG2(r, 'sk0')];
  const kPrime: fame.Triple<c.G1> = [readG1(r, "sk'"), readG1(r, "sk'"), readG1(r, "sk'")];
  const count = r.count(labels.length, 3 * c.G1_BYTES);
  if (count !== labels.length) throw new MalformedInputError(`user key has ${count} components for ${labels.length} attribute copies`);
  const components = labels.map((label) => ({ label, k: [readG1(r, 'sk_y'), readG1(r, 'sk_y'), readG1(r, 'sk_y')] as fame.Triple<c.G1> }));
  r.end();
  return { authorityId, attributes, maxOccurrences, fame: { k0, kPrime, components } };
}
