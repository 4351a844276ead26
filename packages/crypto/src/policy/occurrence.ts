/**
 * The one-use transformation: from span programs whose rows may repeat an attribute to oracle labels that are
 * pairwise distinct, which is what FAME's security argument needs (see `fame/scheme.ts`).
 *
 * The k-th row naming attribute y is labelled (y, k); a key for y carries one component for each of (y, 1) …
 * (y, K), with independent randomness. A policy that names one attribute at most K times is thus a one-use
 * policy over the copies, and decryption uses, for each row, the component of that row's copy. This is the
 * standard reduction from bounded-use to one-use span programs by encoding each attribute k times, introduced
 * with the one-use restriction by Lewko, Okamoto, Sahai, Takashima & Waters, "Fully Secure Functional
 * Encryption: Attribute-Based Encryption and (Hierarchical) Inner Product Encryption", EUROCRYPT 2010, and
 * named "the redundant multiple encoding technique" (attribute multiplicity k) by Takashima, "New Proof
 * Techniques for DLIN-Based Adaptively Secure Attribute-Based Encryption", ACISP 2017. The cost is K components
 * per attribute in every key; ciphertexts and decryption cost the same as before. docs/crypto.md §2.
 */
import { LimitExceededError } from '../errors.ts';
import { attributeBytes, attributeLabel, type Attribute } from './ast.ts';
import type { SpanProgram } from './msp.ts';

/** Copies per attribute in a key unless the authority chooses otherwise: policies may name an attribute this often. */
export const DEFAULT_MAX_OCCURRENCES = 8;
/** The largest bound an authority may choose (key size grows linearly with it). */
export const MAX_OCCURRENCES = 64;

/** The oracle label of copy `occurrence` (1-based) of `attribute`: its canonical encoding ‖ u16 occurrence. */
export function occurrenceLabel(attribute: Attribute, occurrence: number): Uint8Array {
  const bytes = attributeBytes(attribute);
  const out = new Uint8Array(bytes.length + 2);
  out.set(bytes);
  new DataView(out.buffer).setUint16(bytes.length, occurrence);
  return out;
}

/** The labels of a span program's rows, pairwise distinct by construction (row i is copy `occurrence` of its attribute). */
export function rowLabels(program: SpanProgram): Uint8Array[] {
  return program.rows.map((row) => occurrenceLabel(row.attribute, row.occurrence));
}

/** The labels a key for `attributes` holds with `maxOccurrences` copies of each, attribute by attribute. */
export function keyLabels(attributes: readonly Attribute[], maxOccurrences: number): Uint8Array[] {
  checkOccurrenceBound(maxOccurrences);
  return attributes.flatMap((attribute) => Array.from({ length: maxOccurrences }, (_, k) => occurrenceLabel(attribute, k + 1)));
}

/** LimitExceededError unless 1 ≤ bound ≤ MAX_OCCURRENCES. */
export function checkOccurrenceBound(bound: number): void {
  if (!Number.isInteger(bound) || bound < 1 || bound > MAX_OCCURRENCES) {
    throw new LimitExceededError(`the attribute occurrence bound must be an integer from 1 to ${MAX_OCCURRENCES}, got ${bound}`);
  }
}

/**
 * LimitExceededError naming the first attribute that the program names more than `maxOccurrences` times (counted
 * after comparisons are expanded into bits, where two comparisons on one integer repeat its bit attributes).
 */
export function checkOccurrences(program: SpanProgram, maxOccurrences: number): void {
  const worst = program.rows.reduce((w, row) => (row.occurrence > (w?.occurrence ?? 0) ? row : w), program.rows[0]);
  if (worst && worst.occurrence > maxOccurrences) {
    const count = program.rows.filter((row) => row.key === worst.key).length;
    const what =
      worst.attribute.kind === 'bit'
        ? `bit ${worst.attribute.bit} of '${worst.attribute.name}' (from its comparisons)`
        : `'${attributeLabel(worst.attribute)}'`;
    throw new LimitExceededError(
      `the policy names ${what} ${count} times; at most ${maxOccurrences} uses of one attribute are supported (keys carry that many copies)`,
    );
  }
}
