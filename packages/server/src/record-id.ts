/**
 * Record ids name their writing hospital: the first HOSPITAL_TAG_LENGTH characters are a hash of the hospital's
 * code. The cloud refuses an upload whose record ids carry another hospital's tag, and the record id is bound into
 * the ciphertext (the AEAD of pre.encrypt), so a reader who finds `meta.source` of a decrypted resource naming
 * another hospital than the record id's tag knows the record was mislabelled (docs/platform.md §FHIR provenance).
 */
import { createHash } from 'node:crypto';

/** Characters of the hospital tag at the start of a record id. */
export const HOSPITAL_TAG_LENGTH = 10;

/** The tag of a hospital (10 base64url characters of SHA-256 of its code). */
export function hospitalTag(hospital: string): string {
  return createHash('sha256').update(`medshare/hospital-tag/v1|${hospital}`).digest('base64url').slice(0, HOSPITAL_TAG_LENGTH);
}

/** A record id of `hospital`: its tag, then 22 characters of a hash of `parts` (unique per hospital and parts). */
export function taggedRecordId(hospital: string, parts: readonly string[]): string {
  const digest = createHash('sha256')
    .update(['medshare/record/v2', hospital, ...parts].join('|'))
    .digest('base64url')
    .slice(0, 22);
  return `${hospitalTag(hospital)}${digest}`;
}

/** Whether a record id carries `hospital`'s tag. */
export function isRecordOf(recordId: string, hospital: string): boolean {
  return recordId.startsWith(hospitalTag(hospital));
}
