/** fast-check generators shared by the crypto tests: random policies and the attribute sets that meet them. */
import fc from 'fast-check';
import { compilePolicy } from '../src/abe.ts';

const NAMES = ['role', 'dept', 'hospital', 'uid', 'site'];
const VALUES = ['doctor', 'nurse', 'emergency', 'cardiology', 'derm', 'a', 'b', 'c'];
const INTEGER_NAMES = ['level', 'age'];

export const stringAttribute = fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(...VALUES)).map(([n, v]) => `${n}:${v}`);

export const comparison = fc
  .tuple(fc.constantFrom(...INTEGER_NAMES), fc.constantFrom('<', '<=', '>', '>=', '=='), fc.integer({ min: 1, max: 200 }))
  .map(([n, op, v]) => `${n} ${op} ${v}`);

/** A random policy text of bounded size over a small attribute universe (so random keys often satisfy it). */
export const policyText: fc.Arbitrary<string> = fc.letrec<{ node: string }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    stringAttribute,
    comparison,
    fc.array(tie('node'), { minLength: 2, maxLength: 3 }).map((xs) => `(${xs.join(' and ')})`),
    fc.array(tie('node'), { minLength: 2, maxLength: 3 }).map((xs) => `(${xs.join(' or ')})`),
    fc.array(tie('node'), { minLength: 3, maxLength: 4 }).chain((xs) => fc.integer({ min: 2, max: xs.length - 1 }).map((k) => `${k} of (${xs.join(', ')})`)),
  ),
})).node;

/** A random key attribute list: some string attributes and at most one value per integer attribute. */
export const attributeList = fc
  .tuple(
    fc.uniqueArray(stringAttribute, { minLength: 1, maxLength: 10 }),
    fc.option(fc.integer({ min: 0, max: 250 }), { nil: undefined }),
    fc.option(fc.integer({ min: 0, max: 250 }), { nil: undefined }),
  )
  .map(([strings, level, age]) => [...strings, ...(level !== undefined ? [`level=${level}`] : []), ...(age !== undefined ? [`age=${age}`] : [])].join(', '));

/**
 * The bound K a key needs to decrypt `policy`: the most rows naming one attribute. Property tests that issue a key
 * per run use it (keygen costs K components per attribute), which also exercises keys whose K is exactly enough.
 */
export function occurrencesNeeded(policy: string): number {
  return Math.max(...compilePolicy(policy).rows.map((row) => row.occurrence));
}
