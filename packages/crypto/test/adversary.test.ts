/**
 * The linear-algebra adversary against FAME with repeated attributes (the attack of issue 11).
 *
 * FAME's decryption equation yields the KEM key for any coefficients γ with Σ γ_i·M_i = e_0 in which, for every
 * oracle label the adversary has no key component for, the γ_i of the rows hashed under that label sum to zero:
 * that label's hash then cancels and no component for it is needed. With one label per attribute (format 1) two rows
 * naming one attribute make such γ possible for keys that do not satisfy the policy. With the one-use labels
 * (attribute, occurrence) every label names one row, so a missing label forces γ_i = 0 and the equation can only be
 * solved by a satisfying key.
 *
 * The adversary here is written from the algebra alone: Gauss–Jordan elimination mod r over the span program, its own
 * satisfaction oracle evaluated on the parsed policy (not `abe.satisfies`, not the library's `reconstruct`), and its
 * own decryption equation on the curve primitives. It is shown to work: its γ opens real ciphertexts end to end
 * through the AEAD, for satisfying keys under the current labels and for non-satisfying keys under format-1 labels.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as abe from '../src/abe.ts';
import * as c from '../src/curve/bls12381.ts';
import * as fame from '../src/fame/scheme.ts';
import { attributeBytes, MAX_INTEGER, type Attribute, type PolicyNode } from '../src/policy/ast.ts';
import type { SpanProgram } from '../src/policy/msp.ts';
import { integerBits } from '../src/policy/numeric.ts';
import { parsePolicy } from '../src/policy/parser.ts';
import { derivePayloadKey, headerDigest, openPayload, sealPayload } from '../src/hybrid/stream.ts';
import { policyText, stringAttribute } from './arbitraries.ts';
import { utf8 } from './helpers.ts';

/** The order of G1, G2 and GT for BLS12-381. */
const R = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001n;
const mod = (x: bigint) => ((x % R) + R) % R;
function inverse(x: bigint): bigint {
  let [a, b, u, v] = [mod(x), R, 1n, 0n];
  while (a !== 0n) {
    const q = b / a;
    [a, b, u, v] = [b - q * a, a, v - q * u, u];
  }
  return mod(v);
}

/** A linear equation Σ coefficients[i]·γ_i = rhs over Fr, sparse. */
interface Equation {
  coefficients: Map<number, bigint>;
  rhs: bigint;
}

/** Gauss–Jordan elimination mod r: a solution (free unknowns 0) or undefined if the system is inconsistent. */
function solve(equations: Equation[], unknowns: number): bigint[] | undefined {
  const pivots: Array<{ unknown: number; eq: Equation }> = [];
  for (const eq of equations) {
    for (const p of pivots) {
      const factor = eq.coefficients.get(p.unknown);
      if (factor === undefined) continue;
      for (const [i, x] of p.eq.coefficients) {
        const value = mod((eq.coefficients.get(i) ?? 0n) - factor * x);
        if (value === 0n) eq.coefficients.delete(i);
        else eq.coefficients.set(i, value);
      }
      eq.rhs = mod(eq.rhs - factor * p.eq.rhs);
    }
    const first = eq.coefficients.entries().next();
    if (first.done) {
      if (eq.rhs !== 0n) return undefined; // 0 = nonzero
      continue;
    }
    const [unknown, x] = first.value;
    const scale = inverse(x);
    for (const [i, y] of eq.coefficients) eq.coefficients.set(i, mod(y * scale));
    eq.rhs = mod(eq.rhs * scale);
    // Keep the pivot rows reduced against the new pivot (Gauss–Jordan), so the final read-out is direct.
    for (const p of pivots) {
      const factor = p.eq.coefficients.get(unknown);
      if (factor === undefined) continue;
      for (const [i, y] of eq.coefficients) {
        const value = mod((p.eq.coefficients.get(i) ?? 0n) - factor * y);
        if (value === 0n) p.eq.coefficients.delete(i);
        else p.eq.coefficients.set(i, value);
      }
      p.eq.rhs = mod(p.eq.rhs - factor * eq.rhs);
    }
    pivots.push({ unknown, eq });
  }
  const gamma = new Array<bigint>(unknowns).fill(0n);
  for (const p of pivots) gamma[p.unknown] = p.eq.rhs;
  return gamma;
}

/**
 * The adversary's γ: Σ γ_i·M_i = e_0 and, for every label it lacks, Σ_{i with that label} γ_i = 0.
 * `labels[i]` is row i's oracle label (hex), `held` the labels it has components for.
 */
function forgeCoefficients(program: SpanProgram, labels: readonly string[], held: ReadonlySet<string>): bigint[] | undefined {
  const equations: Equation[] = Array.from({ length: program.columns }, (_, j) => ({ coefficients: new Map(), rhs: j === 0 ? 1n : 0n }));
  program.rows.forEach((row, i) => {
    for (const [j, x] of row.entries) equations[j]!.coefficients.set(i, mod(x));
  });
  const lacked = new Map<string, number[]>();
  labels.forEach((label, i) => {
    if (!held.has(label)) lacked.set(label, [...(lacked.get(label) ?? []), i]);
  });
  for (const rows of lacked.values()) equations.push({ coefficients: new Map(rows.map((i) => [i, 1n])), rhs: 0n });
  return solve(equations, program.rows.length);
}

/**
 * The decryption equation with the adversary's γ, from the curve primitives: the rows of lacked labels enter with
 * their γ (whose sum per label is 0) and no key component.
 */
function forgedKey(key: fame.FameUserKey, encapsulation: fame.FameEncapsulation, labels: readonly string[], gamma: readonly bigint[]): c.GT {
  const components = new Map(key.components.map((k) => [fame.labelKey(k.label), k.k]));
  const g1s: c.G1[] = [];
  const g2s: c.G2[] = [];
  for (const l of [0, 1, 2] as const) {
    let withKey = key.kPrime[l];
    let rows: c.G1 | undefined;
    gamma.forEach((g, i) => {
      if (g === 0n) return;
      const scalar = c.frFromBigInt(g);
      const sk = components.get(labels[i]!);
      if (sk) withKey = c.g1Add(withKey, c.g1Mul(sk[l], scalar));
      const term = c.g1Mul(encapsulation.rows[i]![l], scalar);
      rows = rows ? c.g1Add(rows, term) : term;
    });
    g1s.push(withKey, c.g1Neg(rows!));
    g2s.push(encapsulation.c0[l], key.k0[l]);
  }
  return c.multiPairing(g1s, g2s);
}

// ---- the adversary's own view of a policy: its attributes and its truth value ----------------------------------

interface Universe {
  strings: string[];
  /** Per integer name, the values tried: absent (undefined) and each comparison bound −1, itself and +1. */
  integers: Map<string, Array<number | undefined>>;
}

function universe(node: PolicyNode, u: Universe = { strings: [], integers: new Map() }): Universe {
  if (node.kind === 'leaf') {
    if (node.attribute.kind === 'string') {
      const text = `${node.attribute.name}:"${node.attribute.value}"`;
      if (!u.strings.includes(text)) u.strings.push(text);
    }
  } else if (node.kind === 'compare') {
    const values = u.integers.get(node.name) ?? [undefined];
    for (const v of [node.value - 1, node.value, node.value + 1]) if (v >= 0 && v <= MAX_INTEGER && !values.includes(v)) values.push(v);
    u.integers.set(node.name, values);
  } else node.children.forEach((child) => universe(child, u));
  return u;
}

interface AttributeSet {
  strings: Set<string>;
  integers: Map<string, number>;
}

/** The policy's truth value for a set of attributes, straight from its meaning (integers compared as integers). */
function holds(node: PolicyNode, set: AttributeSet): boolean {
  switch (node.kind) {
    case 'leaf':
      return node.attribute.kind === 'string' && set.strings.has(`${node.attribute.name}:"${node.attribute.value}"`);
    case 'compare': {
      const v = set.integers.get(node.name);
      if (v === undefined) return false;
      return { '<': v < node.value, '<=': v <= node.value, '>': v > node.value, '>=': v >= node.value, '==': v === node.value }[node.op];
    }
    case 'gate':
      return node.children.filter((child) => holds(child, set)).length >= node.threshold;
  }
}

/** Every attribute set over the universe (string subsets × integer choices), or an even sample of `cap` of them. */
function attributeSets(u: Universe, cap: number): AttributeSet[] {
  const names = [...u.integers.keys()];
  const sizes = [2 ** u.strings.length, ...names.map((n) => u.integers.get(n)!.length)];
  const total = sizes.reduce((a, b) => a * b, 1);
  const step = Math.max(1, Math.floor(total / cap));
  const out: AttributeSet[] = [];
  for (let index = 0; index < total && out.length < cap; index += step) {
    let rest = index;
    const mask = rest % sizes[0]!;
    rest = Math.floor(rest / sizes[0]!);
    const integers = new Map<string, number>();
    names.forEach((name, k) => {
      const choice = u.integers.get(name)![rest % sizes[k + 1]!];
      rest = Math.floor(rest / sizes[k + 1]!);
      if (choice !== undefined) integers.set(name, choice);
    });
    out.push({ strings: new Set(u.strings.filter((_, i) => (mask >> i) & 1)), integers });
  }
  return out;
}

/** The attributes a key for the set holds (integers as their bits), and its text for keygen. */
function expanded(set: AttributeSet): Attribute[] {
  const strings = [...set.strings].map((text): Attribute => {
    const [name, value] = [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 2, -1)];
    return { kind: 'string', name, value };
  });
  return [...strings, ...[...set.integers].flatMap(([name, value]) => integerBits(name, value))];
}
const keyText = (set: AttributeSet) => [...set.strings, ...[...set.integers].map(([n, v]) => `${n}=${v}`)].join(', ');

// ---- labellings -------------------------------------------------------------------------------------------------

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
/** Format 1: a row is hashed under its attribute alone. */
const legacyRowLabels = (program: SpanProgram) => program.rows.map((row) => hex(attributeBytes(row.attribute)));
const legacyKeyLabels = (set: AttributeSet) => new Set(expanded(set).map((a) => hex(attributeBytes(a))));
/** Format 2: the labels of the ciphertext header, and what a key for the set holds (K copies of each attribute). */
const currentKeyLabels = (set: AttributeSet, bound: number) =>
  new Set(
    expanded(set).flatMap((a) => Array.from({ length: bound }, (_, k) => hex(Buffer.concat([attributeBytes(a), Buffer.from([(k + 1) >> 8, (k + 1) & 0xff])])))),
  );

const PAYLOAD_LABEL = 'FAME CP-ABE';

let authority: ReturnType<typeof abe.setup>;
before(async () => {
  await abe.init();
  authority = abe.setup();
});

/** Format-1 FAME end to end: a key and an AEAD ciphertext under attribute-only labels, opened with forged γ. */
function legacyForgeryOpens(policy: string, set: AttributeSet): boolean {
  const program = abe.compilePolicy(policy);
  const rowLabels = legacyRowLabels(program);
  const gamma = forgeCoefficients(program, rowLabels, legacyKeyLabels(set));
  if (!gamma) return false;
  const { key, encapsulation } = fame.encapsulate(
    authority.publicKey.fame,
    program,
    program.rows.map((row) => attributeBytes(row.attribute)),
  );
  const digest = headerDigest(utf8(policy));
  const sealed = sealPayload(derivePayloadKey(c.gtToBytes(key), digest, PAYLOAD_LABEL), digest, utf8('lab result'));
  const userKey = fame.keygen(authority.masterKey.fame, expanded(set).map(attributeBytes));
  const forged = forgedKey(userKey, encapsulation, rowLabels, gamma);
  return new TextDecoder().decode(openPayload(derivePayloadKey(c.gtToBytes(forged), digest, PAYLOAD_LABEL), digest, sealed)) === 'lab result';
}

const set = (strings: string[], integers: Record<string, number> = {}): AttributeSet => ({
  strings: new Set(strings),
  integers: new Map(Object.entries(integers)),
});

describe('linear-algebra adversary', () => {
  test("linear-algebra-adversary (format 1): the issue's policies open end to end through the AEAD for keys that do not satisfy them", () => {
    const cases: Array<[string, AttributeSet]> = [
      ['role:doctor and (role:doctor or dept:cardiology)', set(['dept:"cardiology"'])],
      ['(role:doctor and level >= 3) or (role:nurse and level >= 5)', set(['role:"doctor"'])],
      ['2 of (role:a, role:a, dept:b)', set(['dept:"b"'])],
    ];
    for (const [policy, attributes] of cases) {
      assert.equal(holds(parsePolicy(policy), attributes), false, policy);
      assert.equal(legacyForgeryOpens(policy, attributes), true, `${policy} opened by ${keyText(attributes)}`);
    }
  });

  test("linear-algebra-adversary: on random policies, no set of the policy's own attributes that fails it solves the equation; satisfying sets do, and open the ciphertext", () => {
    let unsatisfying = 0;
    let opened = 0;
    fc.assert(
      fc.property(policyText, (policy) => {
        const tree = parsePolicy(policy);
        const program = abe.compilePolicy(policy);
        const ct = abe.encrypt(authority.publicKey, policy, utf8('lab result'));
        const header = abe.openHeader(ct);
        const labels = header.labels.map(hex);
        // Copies beyond the policy's most repeated attribute are never used: a key with K = that many is equivalent.
        const bound = Math.max(...program.rows.map((row) => row.occurrence));
        let openedHere = false;
        for (const attributes of attributeSets(universe(tree), 32)) {
          const satisfied = holds(tree, attributes);
          const gamma = forgeCoefficients(program, labels, currentKeyLabels(attributes, bound));
          if (!satisfied) {
            unsatisfying++;
            assert.equal(gamma, undefined, `${policy} solved for ${keyText(attributes)}`);
            continue;
          }
          assert.ok(gamma, `${policy} not solved for the satisfying ${keyText(attributes)}`);
          if (openedHere) continue;
          // The adversary's γ with a real key for the set opens the real ciphertext through the AEAD.
          const key = abe.keygen(authority.masterKey, keyText(attributes), { maxOccurrences: bound });
          const kem = forgedKey(key.fame, header.encapsulation, labels, gamma);
          const digest = headerDigest(header.bytes);
          const plaintext = openPayload(derivePayloadKey(c.gtToBytes(kem), digest, PAYLOAD_LABEL), digest, ct.subarray(header.bytes.length));
          assert.equal(new TextDecoder().decode(plaintext), 'lab result');
          openedHere = true;
          opened++;
        }
      }),
      { numRuns: 20 },
    );
    assert.ok(unsatisfying > 0 && opened > 0, `${unsatisfying} unsatisfying sets, ${opened} openings`);
  });

  test('linear-algebra-adversary: `a and (a or P)` for random P and a is forged under format-1 labels by every set that satisfies P without a, never under the current ones', () => {
    fc.assert(
      fc.property(policyText, stringAttribute, (inner, a) => {
        const policy = `${a} and (${a} or ${inner})`;
        const tree = parsePolicy(policy);
        const program = abe.compilePolicy(policy);
        const labels = abe.openHeader(abe.encrypt(authority.publicKey, policy, utf8('x'))).labels.map(hex);
        const bound = Math.max(...program.rows.map((row) => row.occurrence));
        const [lead] = universe(parsePolicy(a)).strings;
        for (const attributes of attributeSets(universe(tree), 16)) {
          attributes.strings.delete(lead!);
          if (!holds(parsePolicy(inner), attributes)) continue;
          assert.equal(holds(tree, attributes), false);
          assert.ok(forgeCoefficients(program, legacyRowLabels(program), legacyKeyLabels(attributes)), `format 1: ${policy} forged by ${keyText(attributes)}`);
          assert.equal(forgeCoefficients(program, labels, currentKeyLabels(attributes, bound)), undefined, `${policy} forged by ${keyText(attributes)}`);
        }
      }),
      { numRuns: 10 },
    );
  });

  test("linear-algebra-adversary: the issue's policies are refused to every non-satisfying set under the current labels, and work for satisfying keys", () => {
    const policies = [
      'role:doctor and (role:doctor or dept:cardiology)',
      '(role:doctor and level >= 3) or (role:nurse and level >= 5)',
      'age >= 18 and age < 65',
      '(level >= 3 and role:a) or (level >= 5 and role:b)',
      '2 of (role:a, role:a, dept:b, (role:a and dept:b))',
      '(role:a and role:b) or (role:a and role:c)',
    ];
    for (const policy of policies) {
      const tree = parsePolicy(policy);
      const ct = abe.encrypt(authority.publicKey, policy, utf8('x'));
      const labels = abe.openHeader(ct).labels.map(hex);
      assert.equal(new Set(labels).size, labels.length, `${policy}: one row per label`);
      for (const attributes of attributeSets(universe(tree), 512)) {
        const satisfied = holds(tree, attributes);
        const gamma = forgeCoefficients(abe.compilePolicy(policy), labels, currentKeyLabels(attributes, abe.DEFAULT_MAX_OCCURRENCES));
        assert.equal(gamma !== undefined, satisfied, `${policy} / ${keyText(attributes)}`);
      }
    }
    const readers: Array<[string, string]> = [
      ['(role:doctor and level >= 3) or (role:nurse and level >= 5)', 'role:nurse, level=5'],
      ['age >= 18 and age < 65', 'age=18'],
      ['(level >= 3 and role:a) or (level >= 5 and role:b)', 'role:b, level=7'],
      ['2 of (role:a, role:a, dept:b, (role:a and dept:b))', 'role:a'],
      ['(role:a and role:b) or (role:a and role:c)', 'role:a, role:c'],
    ];
    for (const [policy, attributes] of readers) {
      assert.deepEqual(abe.decrypt(abe.keygen(authority.masterKey, attributes), abe.encrypt(authority.publicKey, policy, utf8('ok'))), utf8('ok'), policy);
    }
  });
});
