/**
 * Provenance the cloud cannot forge. The cloud holds every patient's public keys, so it could encrypt a record of its
 * own and name any hospital in its `meta.source` (and give it that hospital's record-id tag: it is the one enforcing
 * tags). So each hospital's gateway signs every version it writes with its own Ed25519 key (RFC 8032, Josefsson and
 * Liusvaara, "Edwards-Curve Digital Signature Algorithm (EdDSA)", 2017; node:crypto, through
 * the ledger's signed-note keys: `<hospital>.medshare/records`, of type 0x01, stored KEK-wrapped in the hospital's
 * database), and the signature travels inside the ciphertext, as a `meta.extension` of the resource. It signs
 *
 *   medshare/record-signature/v1
 *   hospital <code>          the hospital `meta.source` names
 *   patient <pseudonym>      whose record it is
 *   category <category>      under which of her keys it is encrypted
 *   version <versionId>
 *   resource <SHA-256, base64url, of the RFC 8785 canonical JSON of the resource without the signature extension>
 *
 * so a signed version cannot be moved into another patient's record or category, given another source or version,
 * or altered. A reader verifies it against the hospital keys she trusts from her own side — her hospital's
 * federation list (`GET /gateway/writer-keys` of her own gateway: keys pinned by her hospital's configuration or
 * fetched from each hospital itself), never a list the cloud serves.
 *
 * Older records (written before signatures, format v0) carry no signature: `verifyRecord` answers `unsigned` for
 * them and the reader decides (the FHIR view leaves them out unless told to serve them marked unverified).
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
// The browser-safe entry (the portal bundles this file through the search code): keys only, no database or files.
import { parseVerifierKey, type CheckpointSigner, type CheckpointVerifier } from '@medshare/ledger/proofs';
import { IntegrityError, MalformedInputError } from '@medshare/crypto';
import type { FhirResource } from './gateway/fhir.ts';

/** URL of the `meta.extension` carrying a version's signature (valueBase64Binary: key ID || Ed25519 signature). */
export const SIGNATURE_EXTENSION = 'urn:medshare:fhir:record-signature:v1';
/** `meta.tag` system the reader's view sets on a version whose signature it verified (code: the signing hospital). */
export const VERIFIED_SYSTEM = 'urn:medshare:provenance:verified';
/** `meta.tag` the view sets on an unsigned (pre-signature) version it was told to serve. */
export const UNSIGNED_TAG = {
  system: 'urn:medshare:provenance:unverified',
  code: 'unsigned',
  display: 'written before record signatures: source not verified',
} as const;

/** The name of a hospital's record-signing key. */
export const recordKeyName = (hospital: string): string => `${hospital}.medshare/records`;

/** Where a version is stored: what the signature binds besides the resource. */
export interface RecordContext {
  readonly patient: string;
  readonly category: string;
}

type Meta = { source?: unknown; versionId?: unknown; extension?: Array<{ url?: unknown; valueBase64Binary?: unknown }>; [key: string]: unknown };

const metaOf = (resource: FhirResource) => (resource.meta ?? {}) as Meta;
/** The hospital a version's `meta.source` names (urn:medshare:hospital:<code>, fhir-versions.ts sourceOf), if any. */
export const sourceHospital = (resource: FhirResource) => /^urn:medshare:hospital:([a-z][a-z0-9-]{0,62})$/.exec(String(metaOf(resource).source ?? ''))?.[1];

/** The resource without its signature extension (and without `meta.extension` once that leaves it empty). */
export function withoutSignature(resource: FhirResource): FhirResource {
  const meta = metaOf(resource);
  if (!Array.isArray(meta.extension)) return resource;
  const { extension, ...rest } = meta;
  const kept = extension.filter((e) => !(typeof e === 'object' && e !== null && e.url === SIGNATURE_EXTENSION));
  return { ...resource, meta: kept.length > 0 ? { ...rest, extension: kept } : rest };
}

function signedBody(resource: FhirResource, hospital: string, context: RecordContext): string {
  const hash = createHash('sha256')
    .update(canonicalize(resource) ?? '')
    .digest('base64url');
  return [
    'medshare/record-signature/v1',
    `hospital ${hospital}`,
    `patient ${context.patient}`,
    `category ${context.category}`,
    `version ${String(metaOf(resource).versionId ?? '')}`,
    `resource ${hash}`,
    '',
  ].join('\n');
}

/** The version as the gateway encrypts it: signed by its hospital's key. @throws MalformedInputError when `meta.source` is not that hospital */
export function signRecord(signer: CheckpointSigner, resource: FhirResource, context: RecordContext): FhirResource {
  const unsigned = withoutSignature(resource);
  const hospital = sourceHospital(unsigned);
  if (hospital === undefined || recordKeyName(hospital) !== signer.verifier.name)
    throw new MalformedInputError(`a record signed by ${signer.verifier.name} must name that hospital in meta.source`);
  const signature = signer.sign(signedBody(unsigned, hospital, context), 0).toString('base64');
  const meta = metaOf(unsigned);
  return { ...unsigned, meta: { ...meta, extension: [...(meta.extension ?? []), { url: SIGNATURE_EXTENSION, valueBase64Binary: signature }] } };
}

/** What the reader learns of a decrypted version. */
export type RecordProvenance =
  | { readonly status: 'verified'; readonly hospital: string; readonly resource: FhirResource }
  | { readonly status: 'unsigned'; readonly resource: FhirResource }
  | { readonly status: 'refused'; readonly reason: string };

/**
 * Checks a decrypted version's signature against the writer keys the reader trusts (hospital → key). A verified
 * version comes back without the extension and with a VERIFIED_SYSTEM tag naming its hospital.
 */
export function verifyRecord(trusted: ReadonlyMap<string, CheckpointVerifier>, resource: FhirResource, context: RecordContext): RecordProvenance {
  const extension = metaOf(resource).extension;
  // A hostile payload's meta.extension may be anything: only a list of objects can carry a signature.
  const signatures = (Array.isArray(extension) ? extension : []).filter((e) => typeof e === 'object' && e !== null && e.url === SIGNATURE_EXTENSION);
  if (signatures.length === 0) return { status: 'unsigned', resource };
  const signature = signatures[0]!.valueBase64Binary;
  if (signatures.length > 1 || typeof signature !== 'string') return { status: 'refused', reason: 'its signature extension is malformed' };
  const unsigned = withoutSignature(resource);
  const hospital = sourceHospital(unsigned);
  if (hospital === undefined) return { status: 'refused', reason: 'meta.source names no hospital' };
  const key = trusted.get(hospital);
  if (key === undefined) return { status: 'refused', reason: `${hospital} is not in your hospital's federation` };
  if (key.verify(signedBody(unsigned, hospital, context), Buffer.from(signature, 'base64')) === undefined) {
    return { status: 'refused', reason: `its signature does not verify under ${hospital}'s key (forged, relabelled or moved)` };
  }
  const meta = metaOf(unsigned) as Meta & { tag?: unknown[] };
  return {
    status: 'verified',
    hospital,
    resource: { ...unsigned, meta: { ...meta, tag: [...(meta.tag ?? []), { system: VERIFIED_SYSTEM, code: hospital, display: 'signature verified' }] } },
  };
}

/**
 * The writer keys of a federation list `{ hospital, key }` (signed-note vkeys). @throws IntegrityError when a key is
 * not the named hospital's record key; MalformedInputError for a malformed key
 */
export function writerKeys(list: ReadonlyArray<{ hospital: string; key: string }>): Map<string, CheckpointVerifier> {
  const keys = new Map<string, CheckpointVerifier>();
  for (const { hospital, key } of list) {
    const verifier = parseVerifierKey(key);
    if (verifier.name !== recordKeyName(hospital) || verifier.type !== 'ed25519')
      throw new IntegrityError(`the record key listed for ${hospital} is ${verifier.name} (${verifier.type}), not ${recordKeyName(hospital)}`);
    keys.set(hospital, verifier);
  }
  return keys;
}
