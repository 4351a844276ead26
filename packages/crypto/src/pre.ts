/**
 * Proxy re-encryption from a patient's public key to CP-ABE policies (the centre of MedShare; math in
 * `pre/scheme.ts`, security argument in docs/crypto.md §9).
 *
 *   Patient    generatePatientKey → publicKeys (signed bundle) · decrypt · delegate / delegateRecord · rotate
 *   Hospital   encrypt / encryptStream under the bundle's key for a category; with an emergency capsule, also
 *              a platform emergency grant of each record (docs/crypto.md §10)
 *   Cloud      convert / convertHeader with a re-encryption key (learns nothing; deleting the key revokes)
 *   Reader     createReader(userKey).decrypt — FAME once per delegation, then one pairing per record
 *
 * A record ciphertext is  envelope(core ‖ c2) ‖ payload;  a converted one is  envelope(core ‖ c2' ‖ grant) ‖
 * the same payload. `core` (category, epoch, record id, key id, c1) is invariant under conversion and is
 * what the payload key and AEAD bind, so the cloud converts without touching the payload.
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import * as abe from './abe.ts';
import * as c from './curve/bls12381.ts';
import { ByteReader, ByteWriter } from './encoding/bytes.ts';
import { envelopeLength, ObjectType, SchemeId, openEnvelope, sealEnvelope } from './encoding/envelope.ts';
import { AccessDeniedError, IntegrityError, MalformedInputError } from './errors.ts';
import { CHUNK_BYTES, concatBytes, derivePayloadKey, openPayload, PayloadOpener, PayloadSealer } from './hybrid/stream.ts';
import * as scheme from './pre/scheme.ts';

/**
 * The categories of a new patient key: those of the hospital gateway's default FHIR mapping (docs/platform.md §FHIR:
 * Observation/DiagnosticReport → lab, ImagingStudy/Media → imaging, DocumentReference/Composition → notes,
 * Medication* and Immunization → medication, every other resource type → clinical).
 */
export const DEFAULT_CATEGORIES = ['lab', 'imaging', 'notes', 'medication', 'clinical'] as const;
const CATEGORY = /^[a-z][a-z0-9_-]{0,63}$/;
const MAX_TEXT = 256;
const MAX_CATEGORIES = 256;
const ID_BYTES = 16;
const PAYLOAD_LABEL = 'PRE record';
const utf8 = new TextEncoder();

/** The patient's secret: a 32-byte master secret and the current key epoch of each category. */
export interface PatientSecretKey {
  readonly patientId: string;
  readonly masterSecret: Uint8Array;
  readonly epochs: ReadonlyMap<string, number>;
}

/** One category's public key in the signed bundle. */
export interface CategoryKey {
  readonly category: string;
  readonly epoch: number;
  readonly key: c.GT;
  /** First 16 bytes of SHA-256 of the key: names the key in ciphertexts. */
  readonly keyId: Uint8Array;
}

/** The patient's signed bundle of category public keys, fetched by hospitals. */
export interface PatientPublicKeys {
  readonly patientId: string;
  /** Ed25519 public key (32 bytes) that signs the bundle; pin it at enrolment. */
  readonly signingKey: Uint8Array;
  readonly categories: readonly CategoryKey[];
}

/** The invariant part of a record ciphertext. */
export interface RecordCore {
  readonly category: string;
  readonly epoch: number;
  readonly recordId: string;
  readonly keyId: Uint8Array;
  readonly c1: c.G1;
  /** The core's encoding; its digest is bound into the payload. */
  readonly bytes: Uint8Array;
}

/** A record ciphertext header as the hospital wrote it (decryptable by the patient). */
export interface RecordHeader {
  readonly core: RecordCore;
  readonly c2: c.GT;
  /** The header envelope's bytes; the payload follows them. */
  readonly bytes: Uint8Array;
}

/** A re-encryption key held by the cloud: a whole category, or one record. */
export interface ReEncryptionKey {
  readonly patientId: string;
  readonly category: string;
  readonly epoch: number;
  readonly keyId: Uint8Array;
  readonly delegationId: Uint8Array;
  readonly scope: { kind: 'category'; rk1: c.G2; precomputed?: c.PrecomputedG2 } | { kind: 'record'; recordId: string; c2Converted: c.GT };
  /** FAME encapsulation of X under the policy (an ABE ciphertext header). */
  readonly rk2: Uint8Array;
}

/** A converted header: readable by CP-ABE keys that satisfy the delegation's policy. */
export interface ConvertedHeader {
  readonly core: RecordCore;
  readonly c2Converted: c.GT;
  readonly delegationId: Uint8Array;
  /** The delegation's FAME header, still encoded: a reader parses it only when its cache misses. */
  readonly rk2: Uint8Array;
  readonly bytes: Uint8Array;
}

function checkCategory(category: string): void {
  if (!CATEGORY.test(category)) throw new MalformedInputError(`invalid category '${category}' (lowercase letters, digits, _ and -, at most 64)`);
}

function checkText(value: string, what: string): void {
  if (value.length === 0 || utf8.encode(value).length > MAX_TEXT) throw new MalformedInputError(`${what} must be 1 to ${MAX_TEXT} bytes`);
}

const keyIdOf = (key: c.GT) => new Uint8Array(createHash('sha256').update(c.gtToBytes(key)).digest().subarray(0, ID_BYTES));
const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

// ---- patient keys -----------------------------------------------------------------------------

/** A new patient key with the given categories, all at epoch 1. */
export function generatePatientKey(patientId: string, categories: readonly string[] = DEFAULT_CATEGORIES): PatientSecretKey {
  checkText(patientId, 'patient id');
  categories.forEach(checkCategory);
  if (new Set(categories).size !== categories.length) throw new MalformedInputError('categories must be distinct');
  return { patientId, masterSecret: new Uint8Array(randomBytes(32)), epochs: new Map(categories.map((t) => [t, 1])) };
}

/** Starts a new key epoch for `category`: records written after hospitals fetch the new bundle use a fresh key. */
export function rotate(key: PatientSecretKey, category: string): PatientSecretKey {
  const epoch = key.epochs.get(category);
  if (epoch === undefined) throw new MalformedInputError(`no category '${category}' in this patient key`);
  return { ...key, epochs: new Map([...key.epochs, [category, epoch + 1]]) };
}

/**
 * Adds a category at epoch 1 (for a key made before the category existed); publish the new bundle, which the cloud
 * accepts as a replacement. @throws MalformedInputError for an invalid or existing category.
 */
export function addCategory(key: PatientSecretKey, category: string): PatientSecretKey {
  checkCategory(category);
  if (key.epochs.has(category)) throw new MalformedInputError(`the patient key already has category '${category}'`);
  if (key.epochs.size >= MAX_CATEGORIES) throw new MalformedInputError(`a patient key holds at most ${MAX_CATEGORIES} categories`);
  return { ...key, epochs: new Map([...key.epochs, [category, 1]]) };
}

function secretFor(key: PatientSecretKey, category: string, epoch: number) {
  const current = key.epochs.get(category);
  if (current === undefined || epoch < 1 || epoch > current) throw new AccessDeniedError(`this patient key has no '${category}' key of epoch ${epoch}`);
  return scheme.categorySecret(key.masterSecret, category, epoch);
}

function signingKeyPair(key: PatientSecretKey) {
  const seed = new Uint8Array(createHash('sha256').update('MedShare v1 patient signing key').update(key.masterSecret).digest());
  // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: new Uint8Array(spki.subarray(spki.length - 32)) };
}

/** The current public keys of every category. */
export function publicKeys(key: PatientSecretKey): PatientPublicKeys {
  const categories = [...key.epochs].map(([category, epoch]) => {
    const pk = scheme.categoryPublicKey(scheme.categorySecret(key.masterSecret, category, epoch));
    return { category, epoch, key: pk, keyId: keyIdOf(pk) };
  });
  return { patientId: key.patientId, signingKey: signingKeyPair(key).publicKey, categories };
}

function publicKeysBody(keys: PatientPublicKeys): Uint8Array {
  const w = new ByteWriter().text(keys.patientId).raw(keys.signingKey).u32(keys.categories.length);
  for (const k of keys.categories) w.text(k.category).u32(k.epoch).raw(c.gtToBytes(k.key));
  return w.finish();
}

/** The signed bundle: body ‖ Ed25519 signature over the body (domain-separated). */
export function encodePublicKeys(secret: PatientSecretKey): Uint8Array {
  const keys = publicKeys(secret);
  const body = publicKeysBody(keys);
  const signature = sign(null, Buffer.concat([utf8.encode('MedShare v1 patient keys\n'), body]), signingKeyPair(secret).privateKey);
  return sealEnvelope(ObjectType.PatientPublicKeys, SchemeId.PreToFame, concatBytes([body, signature]));
}

/**
 * Decodes a bundle and verifies its signature (IntegrityError if it fails). Pass the signing key pinned at
 * enrolment as `expectedSigningKey`; without it the bundle is only self-consistent (trust on first use).
 */
export function decodePublicKeys(bytes: Uint8Array, expectedSigningKey?: Uint8Array): PatientPublicKeys {
  const r = openEnvelope(bytes, ObjectType.PatientPublicKeys, SchemeId.PreToFame).body;
  const patientId = r.text(MAX_TEXT);
  const signingKey = r.raw(32);
  const count = r.count(MAX_CATEGORIES, 8 + c.GT_BYTES);
  const categories = Array.from({ length: count }, () => {
    const category = r.text(64);
    checkCategory(category);
    const epoch = r.u32();
    const key = c.gtFromBytes(r.raw(c.GT_BYTES), `${category} public key`);
    return { category, epoch, key, keyId: keyIdOf(key) };
  });
  const signed = bytes.subarray(12, 12 + (bytes.length - 12 - 32 - 64));
  const signature = r.raw(64);
  r.end();
  if (expectedSigningKey && !equalBytes(expectedSigningKey, signingKey))
    throw new IntegrityError(`patient keys for '${patientId}' are signed by an unexpected key`);
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), signingKey]);
  const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  if (!verify(null, Buffer.concat([utf8.encode('MedShare v1 patient keys\n'), signed]), publicKey, signature)) {
    throw new IntegrityError(`patient keys for '${patientId}': signature does not verify`);
  }
  return { patientId, signingKey, categories };
}

/** Binary encoding of the patient's secret key. */
export function encodePatientKey(key: PatientSecretKey): Uint8Array {
  const w = new ByteWriter().text(key.patientId).raw(key.masterSecret).u32(key.epochs.size);
  for (const [category, epoch] of key.epochs) w.text(category).u32(epoch);
  return sealEnvelope(ObjectType.PatientSecretKey, SchemeId.PreToFame, w.finish());
}

export function decodePatientKey(bytes: Uint8Array): PatientSecretKey {
  const r = openEnvelope(bytes, ObjectType.PatientSecretKey, SchemeId.PreToFame).body;
  const patientId = r.text(MAX_TEXT);
  const masterSecret = r.raw(32).slice();
  const count = r.count(MAX_CATEGORIES, 8);
  const epochs = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const category = r.text(64);
    checkCategory(category);
    epochs.set(category, r.u32());
  }
  r.end();
  return { patientId, masterSecret, epochs };
}

// ---- record ciphertexts -----------------------------------------------------------------------

function encodeCore(category: string, epoch: number, recordId: string, keyId: Uint8Array, c1: c.G1): Uint8Array {
  return new ByteWriter().text(category).u32(epoch).text(recordId).raw(keyId).raw(c.g1ToBytesUncompressed(c1)).u32(CHUNK_BYTES).finish();
}

function readCore(r: ByteReader): RecordCore {
  const start = r.position;
  const category = r.text(64);
  checkCategory(category);
  const epoch = r.u32();
  const recordId = r.text(MAX_TEXT);
  const keyId = r.raw(ID_BYTES);
  const c1 = c.g1FromBytesUncompressed(r.raw(c.G1_UNCOMPRESSED_BYTES), 'c1');
  if (r.u32() !== CHUNK_BYTES) throw new MalformedInputError('unsupported payload chunk size');
  // Every field is canonical (text re-encodes exactly, c1's coordinates are reduced and checked), so the bytes read
  // are the core's encoding: no re-encoding needed.
  return { category, epoch, recordId, keyId: keyId.slice(), c1, bytes: r.since(start).slice() };
}

const coreDigest = (core: Uint8Array) => new Uint8Array(createHash('sha256').update('MedShare v1 PRE record core\n').update(core).digest());
const payloadKey = (R: c.GT, core: Uint8Array) => derivePayloadKey(c.gtToBytes(R), coreDigest(core), PAYLOAD_LABEL);

function findCategoryKey(keys: PatientPublicKeys, category: string): CategoryKey {
  const key = keys.categories.find((k) => k.category === category);
  if (!key) throw new MalformedInputError(`patient '${keys.patientId}' has no key for category '${category}'`);
  return key;
}

/**
 * Hospital: streaming encryption of one record under the patient's key for `category`. With an emergency
 * capsule, also the record's platform emergency grant (encoded), for the cloud to store beside it.
 */
export function encryptStream(
  keys: PatientPublicKeys,
  category: string,
  recordId: string,
  emergency?: EmergencyCapsule,
): { header: Uint8Array; sealer: PayloadSealer; emergencyGrant?: Uint8Array } {
  checkText(recordId, 'record id');
  const key = findCategoryKey(keys, category);
  const { R, r, c1, c2 } = scheme.encapsulate(key.key);
  const core = encodeCore(category, key.epoch, recordId, key.keyId, c1);
  const header = sealEnvelope(ObjectType.PreCiphertext, SchemeId.PreToFame, concatBytes([core, c.gtToBytes(c2)]));
  const sealer = new PayloadSealer(payloadKey(R, core), coreDigest(core));
  if (emergency === undefined) return { header, sealer };
  const grant: ReEncryptionKey = {
    patientId: keys.patientId,
    category,
    epoch: key.epoch,
    keyId: key.keyId,
    delegationId: emergency.delegationId,
    scope: { kind: 'record', recordId, c2Converted: scheme.recordGrantWithExponent(R, r, grantBaseOf(emergency)) },
    rk2: emergency.rk2,
  };
  return { header, sealer, emergencyGrant: encodeEmergencyGrant(grant) };
}

/** e(g1, H(X)) of each capsule in use, computed at its first record: every further grant is one GT exponentiation. */
const grantBases = new WeakMap<EmergencyCapsule, c.GT>();
function grantBaseOf(capsule: EmergencyCapsule): c.GT {
  let base = grantBases.get(capsule);
  if (base === undefined) grantBases.set(capsule, (base = scheme.grantBase(capsule.hashOfX)));
  return base;
}

/** Hospital: encrypts a record in memory. */
export function encrypt(keys: PatientPublicKeys, category: string, recordId: string, plaintext: Uint8Array): Uint8Array {
  return encryptWithEmergencyGrant(keys, category, recordId, plaintext).ciphertext;
}

/** Hospital: encrypts a record in memory and, given a capsule, makes its platform emergency grant. */
export function encryptWithEmergencyGrant(
  keys: PatientPublicKeys,
  category: string,
  recordId: string,
  plaintext: Uint8Array,
  emergency?: EmergencyCapsule,
): { ciphertext: Uint8Array; emergencyGrant?: Uint8Array } {
  const { header, sealer, emergencyGrant } = encryptStream(keys, category, recordId, emergency);
  const ciphertext = concatBytes([header, ...sealer.end(plaintext)]);
  return emergencyGrant === undefined ? { ciphertext } : { ciphertext, emergencyGrant };
}

/** Parses a record ciphertext header at the start of `input`. */
export function openRecordHeader(input: Uint8Array): RecordHeader {
  const envelope = openEnvelope(input, ObjectType.PreCiphertext, SchemeId.PreToFame, false);
  const r = envelope.body;
  const core = readCore(r);
  const c2 = c.gtFromBytesUnchecked(r.raw(c.GT_BYTES), 'c2');
  r.end();
  return { core, c2, bytes: envelope.bytes };
}

/** A category key as the patient decrypts with it: the decryption key g2^a and the key id of e(g1, g2)^a. */
interface DerivedCategoryKey {
  readonly decryptionKey: c.G2;
  readonly keyId: Uint8Array;
}

/**
 * Derived category keys of each patient key object, by category and epoch: the HKDF, the G2 multiplication and the
 * GT exponentiation behind the key id are done once per category key, not once per record. Keyed by the (immutable)
 * secret key object, so the cache goes when the key does.
 */
const derivedKeys = new WeakMap<PatientSecretKey, Map<string, DerivedCategoryKey>>();

function derivedKey(key: PatientSecretKey, category: string, epoch: number): DerivedCategoryKey {
  let perKey = derivedKeys.get(key);
  if (perKey === undefined) derivedKeys.set(key, (perKey = new Map()));
  const name = `${category}\n${epoch}`;
  let derived = perKey.get(name);
  if (derived === undefined) {
    const a = secretFor(key, category, epoch);
    derived = { decryptionKey: scheme.categoryDecryptionKey(a), keyId: keyIdOf(scheme.categoryPublicKey(a)) };
    perKey.set(name, derived);
  }
  return derived;
}

/** The decryption key of the category key that encrypted `core`, checked against the key id the hospital recorded. */
function decryptionKeyForCore(key: PatientSecretKey, core: RecordCore): c.G2 {
  const derived = derivedKey(key, core.category, core.epoch);
  if (!equalBytes(derived.keyId, core.keyId)) throw new AccessDeniedError('the record was encrypted for a different patient key');
  return derived.decryptionKey;
}

/** Patient: the record key R of a header (for streaming decryption or a single-record grant). One pairing. */
export function recordSecret(key: PatientSecretKey, header: RecordHeader): c.GT {
  return scheme.decapsulate(decryptionKeyForCore(key, header.core), header.core.c1, header.c2);
}

/** Patient: streaming decryption of one of her records. */
export function decryptStream(key: PatientSecretKey, header: RecordHeader): PayloadOpener {
  return new PayloadOpener(payloadKey(recordSecret(key, header), header.core.bytes), coreDigest(header.core.bytes));
}

/** Patient: decrypts one of her records in memory. */
export function decrypt(key: PatientSecretKey, ciphertext: Uint8Array): Uint8Array {
  const header = openRecordHeader(ciphertext);
  const R = recordSecret(key, header);
  return openPayload(payloadKey(R, header.core.bytes), coreDigest(header.core.bytes), ciphertext.subarray(header.bytes.length));
}

// ---- delegation, conversion, reading ---------------------------------------------------------

/**
 * Patient: delegates a whole category (current epoch) to a CP-ABE policy. The cloud stores the returned key;
 * deleting it revokes the delegation. Every call draws a fresh X, so re-delegating cuts off readers who
 * cached an old X.
 */
export function delegate(key: PatientSecretKey, category: string, abePublicKey: abe.PublicKey, policy: string): ReEncryptionKey {
  const epoch = key.epochs.get(category);
  if (epoch === undefined) throw new MalformedInputError(`no category '${category}' in this patient key`);
  const a = secretFor(key, category, epoch);
  const { key: x, header } = abe.encapsulate(abePublicKey, policy);
  const delegationId = new Uint8Array(randomBytes(ID_BYTES));
  return {
    patientId: key.patientId,
    category,
    epoch,
    keyId: keyIdOf(scheme.categoryPublicKey(a)),
    delegationId,
    scope: { kind: 'category', rk1: scheme.reEncryptionKey(scheme.categoryDecryptionKey(a), scheme.delegationHash(x, delegationId, header)) },
    rk2: header,
  };
}

/** Patient: shares one record (by its header) with a policy, without giving the cloud anything that converts others. */
export function delegateRecord(key: PatientSecretKey, header: RecordHeader, abePublicKey: abe.PublicKey, policy: string): ReEncryptionKey {
  const R = recordSecret(key, header);
  const { key: x, header: rk2 } = abe.encapsulate(abePublicKey, policy);
  const delegationId = new Uint8Array(randomBytes(ID_BYTES));
  return {
    patientId: key.patientId,
    category: header.core.category,
    epoch: header.core.epoch,
    keyId: header.core.keyId,
    delegationId,
    scope: { kind: 'record', recordId: header.core.recordId, c2Converted: scheme.recordGrant(R, header.core.c1, scheme.delegationHash(x, delegationId, rk2)) },
    rk2,
  };
}

/** What names a re-encryption key or an emergency grant: patient, category key (category, epoch, key id), delegation. */
type KeyFields = Pick<ReEncryptionKey, 'patientId' | 'category' | 'epoch' | 'keyId' | 'delegationId'>;

const writeKeyFields = (k: KeyFields) => new ByteWriter().text(k.patientId).text(k.category).u32(k.epoch).raw(k.keyId).raw(k.delegationId);

function readKeyFields(r: ByteReader): KeyFields {
  const patientId = r.text(MAX_TEXT);
  const category = r.text(64);
  checkCategory(category);
  return { patientId, category, epoch: r.u32(), keyId: r.raw(ID_BYTES).slice(), delegationId: r.raw(ID_BYTES).slice() };
}

/** Binary encoding of a re-encryption key. */
export function encodeReEncryptionKey(rk: ReEncryptionKey): Uint8Array {
  const w = writeKeyFields(rk);
  if (rk.scope.kind === 'category') w.u8(0).raw(c.g2ToBytes(rk.scope.rk1));
  else w.u8(1).text(rk.scope.recordId).raw(c.gtToBytes(rk.scope.c2Converted));
  w.bytes(rk.rk2);
  return sealEnvelope(ObjectType.ReEncryptionKey, SchemeId.PreToFame, w.finish());
}

const MAX_RK2 = 4 * 1024 * 1024;

export function decodeReEncryptionKey(bytes: Uint8Array): ReEncryptionKey {
  const r = openEnvelope(bytes, ObjectType.ReEncryptionKey, SchemeId.PreToFame).body;
  const fields = readKeyFields(r);
  const kind = r.u8();
  let scope: ReEncryptionKey['scope'];
  if (kind === 0) scope = { kind: 'category', rk1: c.g2FromBytes(r.raw(c.G2_BYTES), 'rk1') };
  else if (kind === 1) scope = { kind: 'record', recordId: r.text(MAX_TEXT), c2Converted: c.gtFromBytesUnchecked(r.raw(c.GT_BYTES), "c2'") };
  else throw new MalformedInputError(`re-encryption key: unknown scope ${kind}`);
  const rk2 = r.bytes(MAX_RK2).slice();
  r.end();
  abe.openHeader(rk2); // validate the embedded ABE header now, not at first use
  return { ...fields, scope, rk2 };
}

/**
 * Cloud: `rk` prepared for converting many records — rk1's Miller-loop lines computed once (~0.1 pairing), which
 * each conversion then reuses (same bytes out, ~0.1 pairing less each). The lines hold 20 KiB of wasm memory until
 * `release`. A record key is returned as it is (its conversion has no pairing).
 */
export function precompute(rk: ReEncryptionKey): ReEncryptionKey {
  return rk.scope.kind === 'category' ? { ...rk, scope: { ...rk.scope, precomputed: new c.PrecomputedG2(rk.scope.rk1) } } : rk;
}

/** Frees what `precompute` allocated; the key still converts, without the saving. */
export function release(rk: ReEncryptionKey): void {
  if (rk.scope.kind === 'category') rk.scope.precomputed?.destroy();
}

/**
 * Cloud: converts a record header with a re-encryption key. AccessDeniedError if the key is for another
 * category, epoch, patient key or record. One pairing for a category key; none for a record grant.
 */
export function convertHeader(rk: ReEncryptionKey, header: RecordHeader): Uint8Array {
  const { core } = header;
  if (rk.category !== core.category) throw new AccessDeniedError(`the re-encryption key is for category '${rk.category}', the record is '${core.category}'`);
  if (rk.epoch !== core.epoch || !equalBytes(rk.keyId, core.keyId)) {
    throw new AccessDeniedError(`the re-encryption key is for another key of category '${core.category}' (epoch ${rk.epoch}, record epoch ${core.epoch})`);
  }
  let c2Converted: c.GT;
  if (rk.scope.kind === 'category') c2Converted = scheme.convert(rk.scope.precomputed ?? rk.scope.rk1, core.c1, header.c2);
  else if (rk.scope.recordId === core.recordId) c2Converted = rk.scope.c2Converted;
  else throw new AccessDeniedError(`the re-encryption key shares record '${rk.scope.recordId}' only`);
  const body = new ByteWriter().raw(core.bytes).raw(c.gtToBytes(c2Converted)).raw(rk.delegationId).bytes(rk.rk2).finish();
  return sealEnvelope(ObjectType.ConvertedCiphertext, SchemeId.PreToFame, body);
}

/**
 * Cloud: splits a stored record ciphertext into its header envelope and its payload (views, no copy) without
 * validating the header, which `openRecordHeader` does where it is converted: the cloud moves only headers to its
 * converters and serves the payload as it is stored. IntegrityError if `ciphertext` is shorter than the header it
 * announces, MalformedInputError if it does not start like a record ciphertext.
 */
export function splitRecord(ciphertext: Uint8Array): { header: Uint8Array; payload: Uint8Array } {
  const length = envelopeLength(ciphertext, ObjectType.PreCiphertext);
  if (length === undefined || length > ciphertext.length) throw new IntegrityError('corrupted record ciphertext: truncated');
  return { header: ciphertext.subarray(0, length), payload: ciphertext.subarray(length) };
}

/** Cloud: converts a whole record ciphertext in memory (the payload is copied unchanged). */
export function convert(rk: ReEncryptionKey, ciphertext: Uint8Array): Uint8Array {
  const header = openRecordHeader(ciphertext);
  return concatBytes([convertHeader(rk, header), ciphertext.subarray(header.bytes.length)]);
}

/** Parses a converted header at the start of `input`. */
export function openConvertedHeader(input: Uint8Array): ConvertedHeader {
  const envelope = openEnvelope(input, ObjectType.ConvertedCiphertext, SchemeId.PreToFame, false);
  const r = envelope.body;
  const core = readCore(r);
  const c2Converted = c.gtFromBytesUnchecked(r.raw(c.GT_BYTES), "c2'");
  const delegationId = r.raw(ID_BYTES).slice();
  const rk2 = r.bytes(MAX_RK2);
  r.end();
  return { core, c2Converted, delegationId, rk2, bytes: envelope.bytes };
}

// ---- platform emergency grants (docs/crypto.md §10) -----------------------------------------

/**
 * The public part of a platform emergency capsule: X encapsulated (FAME) under the platform's emergency policy.
 * It plays the role of a delegation's rk2 for every record granted under it.
 */
export interface EmergencyCapsuleInfo {
  readonly delegationId: Uint8Array;
  readonly policy: string;
  readonly rk2: Uint8Array;
}

/** A capsule as the hospital holds it while encrypting: H(X, id, rk2) lets it grant records; it never leaves the hospital. */
export interface EmergencyCapsule extends EmergencyCapsuleInfo {
  readonly hashOfX: c.G2;
}

/** Hospital: a fresh capsule under `policy` (one FAME encapsulation), for the records of one upload. */
export function emergencyCapsule(abePublicKey: abe.PublicKey, policy: string): EmergencyCapsule {
  const { key: x, header } = abe.encapsulate(abePublicKey, policy);
  const delegationId = new Uint8Array(randomBytes(ID_BYTES));
  return { delegationId, policy: abe.openHeader(header).policy, rk2: header, hashOfX: scheme.delegationHash(x, delegationId, header) };
}

/** The capsule's public part, for the cloud: delegation id ‖ bytes rk2. */
export function encodeEmergencyCapsule(capsule: EmergencyCapsuleInfo): Uint8Array {
  return sealEnvelope(ObjectType.EmergencyCapsule, SchemeId.PreToFame, new ByteWriter().raw(capsule.delegationId).bytes(capsule.rk2).finish());
}

/** Decodes and validates (the embedded FAME header included) a capsule's public part. */
export function decodeEmergencyCapsule(bytes: Uint8Array): EmergencyCapsuleInfo {
  const r = openEnvelope(bytes, ObjectType.EmergencyCapsule, SchemeId.PreToFame).body;
  const delegationId = r.raw(ID_BYTES).slice();
  const rk2 = r.bytes(MAX_RK2).slice();
  r.end();
  return { delegationId, policy: abe.openHeader(rk2).policy, rk2 };
}

// A grant is a record-scoped re-encryption key whose rk2 lives once, in its capsule.
function encodeEmergencyGrant(grant: ReEncryptionKey): Uint8Array {
  if (grant.scope.kind !== 'record') throw new MalformedInputError('an emergency grant is record-scoped');
  const w = writeKeyFields(grant);
  w.text(grant.scope.recordId).raw(c.gtToBytes(grant.scope.c2Converted));
  return sealEnvelope(ObjectType.EmergencyGrant, SchemeId.PreToFame, w.finish());
}

/** A decoded emergency grant: whose key, which record, and under which capsule (its delegation id). */
export interface EmergencyGrant extends KeyFields {
  readonly recordId: string;
  readonly c2Converted: c.GT;
}

/** Decodes an emergency grant (the cloud checks its fields against the record and capsule at upload). */
export function decodeEmergencyGrant(bytes: Uint8Array): EmergencyGrant {
  const r = openEnvelope(bytes, ObjectType.EmergencyGrant, SchemeId.PreToFame).body;
  const fields = readKeyFields(r);
  const recordId = r.text(MAX_TEXT);
  const c2Converted = c.gtFromBytesUnchecked(r.raw(c.GT_BYTES), "c2'");
  r.end();
  return { ...fields, recordId, c2Converted };
}

/**
 * Cloud: the re-encryption key of one record under a platform emergency capsule (then `convert` as usual).
 * AccessDeniedError if the grant was made under another capsule; `convert` refuses it for any other record.
 */
export function emergencyGrantKey(capsule: EmergencyCapsuleInfo, grant: Uint8Array): ReEncryptionKey {
  const { recordId, c2Converted, ...key } = decodeEmergencyGrant(grant);
  if (!equalBytes(key.delegationId, capsule.delegationId)) throw new AccessDeniedError('the emergency grant was made under another capsule');
  return { ...key, scope: { kind: 'record', recordId, c2Converted }, rk2: capsule.rk2 };
}

/**
 * A reader holding a CP-ABE user key. It decrypts converted records, running FAME once per delegation and
 * caching H(X) (bounded), so each further record of that delegation costs one pairing.
 */
export class Reader {
  /** H(X) of each opened delegation with its Miller-loop lines (20 KiB of wasm memory each, freed on eviction). */
  private readonly cache = new Map<string, c.PrecomputedG2>();
  private static readonly MAX_CACHED = 1024;

  constructor(private readonly userKey: abe.UserKey) {}

  /** How many delegations this reader has opened (and cached). */
  get cachedDelegations(): number {
    return this.cache.size;
  }

  private hashOfX(header: ConvertedHeader): c.PrecomputedG2 {
    const id = createHash('sha256').update(header.delegationId).update(header.rk2).digest('hex');
    let h = this.cache.get(id);
    if (!h) {
      h = new c.PrecomputedG2(scheme.delegationHash(abe.decapsulate(this.userKey, abe.openHeader(header.rk2)), header.delegationId, header.rk2));
      if (this.cache.size >= Reader.MAX_CACHED) {
        const oldest = this.cache.keys().next().value!;
        this.cache.get(oldest)!.destroy();
        this.cache.delete(oldest);
      }
      this.cache.set(id, h);
    }
    return h;
  }

  /** Frees the cached lines now (otherwise the garbage collector frees them with the reader); the reader stays usable. */
  clear(): void {
    for (const h of this.cache.values()) h.destroy();
    this.cache.clear();
  }

  /** The record key R; AccessDeniedError if the user key does not satisfy the delegation's policy. */
  recordSecret(header: ConvertedHeader): c.GT {
    return scheme.recover(this.hashOfX(header), header.core.c1, header.c2Converted);
  }

  /** Streaming decryption of a converted record. */
  decryptStream(header: ConvertedHeader): PayloadOpener {
    return new PayloadOpener(payloadKey(this.recordSecret(header), header.core.bytes), coreDigest(header.core.bytes));
  }

  /** Decrypts a converted record in memory. */
  decrypt(ciphertext: Uint8Array): Uint8Array {
    const header = openConvertedHeader(ciphertext);
    return openPayload(payloadKey(this.recordSecret(header), header.core.bytes), coreDigest(header.core.bytes), ciphertext.subarray(header.bytes.length));
  }
}

/** A reader for `userKey` (see Reader). */
export const createReader = (userKey: abe.UserKey): Reader => new Reader(userKey);
