import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { initCurve, frFromBigInt, frAdd, frMul, frToBigInt, type Fr } from '../src/curve/bls12381.ts';
import { LimitExceededError, PolicySyntaxError } from '../src/errors.ts';
import { formatPolicy, type Attribute, type PolicyNode } from '../src/policy/ast.ts';
import { parseAttributes, parsePolicy, DEFAULT_POLICY_LIMITS } from '../src/policy/parser.ts';
import { expandComparisons, integerBits } from '../src/policy/numeric.ts';
import { toSpanProgram, type SpanProgram } from '../src/policy/msp.ts';
import { reconstruct } from '../src/policy/reconstruct.ts';
import { attributeList, policyText } from './arbitraries.ts';

before(() => initCurve());

/** Plain boolean evaluation of a policy: the reference the span program must agree with. */
function evaluate(node: PolicyNode, strings: Set<string>, integers: Map<string, number>): boolean {
  switch (node.kind) {
    case 'leaf':
      return node.attribute.kind === 'string' && strings.has(`${node.attribute.name}:${node.attribute.value}`);
    case 'compare': {
      const v = integers.get(node.name);
      if (v === undefined) return false;
      return { '<': v < node.value, '<=': v <= node.value, '>': v > node.value, '>=': v >= node.value, '==': v === node.value }[node.op];
    }
    case 'gate':
      return node.children.filter((c) => evaluate(c, strings, integers)).length >= node.threshold;
  }
}

function heldAttributes(list: string): { strings: Set<string>; integers: Map<string, number>; expanded: Attribute[] } {
  const parsed = parseAttributes(list);
  const strings = new Set<string>();
  const integers = new Map<string, number>();
  const expanded: Attribute[] = [];
  for (const a of parsed) {
    if (a.kind === 'integer') {
      integers.set(a.name, a.value);
      expanded.push(...integerBits(a.name, a.value));
    } else {
      strings.add(`${a.name}:${a.value}`);
      expanded.push(a);
    }
  }
  return { strings, integers, expanded };
}

/** Σ γ_i M_i, as integers mod r per column. */
function combination(program: SpanProgram, coefficients: Map<number, Fr | undefined>): bigint[] {
  const sums: Fr[] = Array.from({ length: program.columns }, () => frFromBigInt(0n));
  for (const [row, gamma] of coefficients) {
    for (const [col, x] of program.rows[row]!.entries) {
      sums[col] = frAdd(sums[col]!, frMul(gamma ?? frFromBigInt(1n), frFromBigInt(x)));
    }
  }
  return sums.map(frToBigInt);
}

describe('policy parsing', () => {
  test('parses the mission example with the right structure', () => {
    const p = parsePolicy('(role:doctor and dept:cardiology) or role:emergency');
    assert.equal(formatPolicy(p), '(role:doctor and dept:cardiology) or role:emergency');
    assert.equal(p.kind, 'gate');
  });

  test('keywords are case-insensitive, values may be quoted, and = means ==', () => {
    const p = parsePolicy('dept:"internal medicine" AND level = 3 Or 2 OF (a:x, b:y, c:z)');
    assert.equal(formatPolicy(p), '(dept:"internal medicine" and level == 3) or 2 of (a:x, b:y, c:z)');
  });

  test('and/or chains and nested same-kind gates flatten into one gate', () => {
    const p = parsePolicy('a:1 and (b:2 and c:3) and d:4');
    assert.ok(p.kind === 'gate' && p.threshold === 4 && p.children.length === 4);
  });

  test('format then parse is the identity on random policies', () => {
    fc.assert(
      fc.property(policyText, (text) => {
        const once = formatPolicy(parsePolicy(text));
        assert.equal(formatPolicy(parsePolicy(once)), once);
      }),
    );
  });

  test('syntax errors name the position and what was expected', () => {
    const cases: Array<[string, RegExp, number]> = [
      ['role:doctor and', /expected an attribute, a comparison, a threshold or '\(', found end of input/, 15],
      ['role doctor', /expected ':' or a comparison operator after attribute name 'role'/, 5],
      ['(role:doctor', /expected '\)', found end of input/, 12],
      ['role:doctor or or', /expected an attribute/, 15],
      ['3 of (a:1, b:2)', /threshold 3 must be between 1 and the number of operands \(2\)/, 0],
      ['level >= x', /expected a non-negative integer, found 'x'/, 9],
      ['role:"doc', /unterminated quoted string/, 5],
      ['role:doc $ x', /unexpected character '\$'/, 9],
      ['1abc:x', /expected an attribute name/, 0],
      ['level < 0', /can never be satisfied/, 0],
      ['level >= 4294967296', /out of range/, 9],
    ];
    for (const [text, message, position] of cases) {
      assert.throws(
        () => expandComparisons(parsePolicy(text)),
        (e: unknown) => e instanceof PolicySyntaxError && message.test(e.message) && e.position === position,
        text,
      );
    }
  });

  test('attribute lists: duplicates and a second value of an integer attribute are rejected', () => {
    assert.deepEqual(parseAttributes('role:doctor, level=3'), [
      { kind: 'string', name: 'role', value: 'doctor' },
      { kind: 'integer', name: 'level', value: 3 },
    ]);
    assert.throws(() => parseAttributes('role:doctor, role:doctor'), /duplicate attribute 'role:doctor'/);
    assert.throws(() => parseAttributes('level=1, level=2'), /given more than one value/);
    assert.throws(() => parseAttributes(''), /at least one attribute/);
    assert.throws(() => parseAttributes('role'), /':' or '=' after attribute name 'role'/);
  });

  test('values are NFC-normalised so visually identical text is the same attribute', () => {
    const composed = parseAttributes('dept:"caf\u00e9"')[0]!;
    const decomposed = parseAttributes('dept:"cafe\u0301"')[0]!;
    assert.deepEqual(composed, decomposed);
  });

  test('limits: length, depth, operands and leaves are bounded with a clear error', () => {
    assert.throws(() => parsePolicy('a:1 or '.repeat(5000) + 'a:1'), LimitExceededError);
    assert.throws(() => parsePolicy('('.repeat(40) + 'a:1' + ')'.repeat(40)), /nesting deeper than 32/);
    const wide = Array.from({ length: 300 }, (_, i) => `a:${i}`).join(' or ');
    assert.throws(() => parsePolicy(wide), /more than 256 operands of 'or'/);
    const small = { ...DEFAULT_POLICY_LIMITS, maxChildren: 3 };
    assert.throws(() => parsePolicy('2 of (a:1, a:2, a:3, a:4)', small), /more than 3 operands in a threshold gate/);
  });
});

describe('numeric comparisons (bit decomposition)', () => {
  test('agree with integer comparison for every operator on random values', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('<', '<=', '>', '>=', '=='),
        fc.integer({ min: 1, max: 2 ** 32 - 2 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (op, k, v) => {
          const program = toSpanProgram(expandComparisons(parsePolicy(`x ${op} ${k}`)));
          const held = new Set(integerBits('x', v).map((a) => JSON.stringify(a)));
          const ok = reconstruct(program, (row) => held.has(JSON.stringify(row.attribute))) !== undefined;
          const expected = { '<': v < k, '<=': v <= k, '>': v > k, '>=': v >= k, '==': v === k }[op]!;
          assert.equal(ok, expected, `${v} ${op} ${k}`);
          assert.ok(program.rows.length <= 32);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('always-true comparisons require only that the attribute is present', () => {
    const program = toSpanProgram(expandComparisons(parsePolicy('x >= 0')));
    const holds = (v: number) => {
      const held = new Set(integerBits('x', v).map((a) => JSON.stringify(a)));
      return reconstruct(program, (row) => held.has(JSON.stringify(row.attribute))) !== undefined;
    };
    assert.ok(holds(0) && holds(12345));
    assert.equal(
      reconstruct(program, () => false),
      undefined,
    );
  });
});

describe('span programs', () => {
  test('reconstruction exists exactly when the policy is satisfied, and Σγ_i·M_i = e_0', () => {
    fc.assert(
      fc.property(policyText, attributeList, (text, list) => {
        const tree = parsePolicy(text);
        const program = toSpanProgram(expandComparisons(tree));
        const { strings, integers, expanded } = heldAttributes(list);
        const held = new Set(expanded.map((a) => JSON.stringify(a)));
        const coefficients = reconstruct(program, (row) => held.has(JSON.stringify(row.attribute)));
        assert.equal(coefficients !== undefined, evaluate(tree, strings, integers), `${text} | ${list}`);
        if (coefficients) {
          const sum = combination(program, coefficients);
          assert.deepEqual(sum, [1n, ...Array(program.columns - 1).fill(0n)]);
          for (const row of coefficients.keys()) assert.ok(held.has(JSON.stringify(program.rows[row]!.attribute)));
        }
      }),
      { numRuns: 300 },
    );
  });

  test('and/or policies reconstruct with coefficients that are all 1 (decryption by additions only)', () => {
    const program = toSpanProgram(expandComparisons(parsePolicy('(a:1 and (b:1 or c:1) and d:1) or (e:1 and f:1)')));
    const coefficients = reconstruct(program, ({ attribute: a }) => a.kind === 'string' && ['a', 'c', 'd'].includes(a.name))!;
    assert.equal(coefficients.size, 3);
    assert.ok([...coefficients.values()].every((g) => g === undefined));
  });

  test('a t-of-n gate adds t-1 columns; an n-input and adds n-1', () => {
    assert.equal(toSpanProgram(expandComparisons(parsePolicy('3 of (a:1, a:2, a:3, a:4, a:5)'))).columns, 3);
    assert.equal(toSpanProgram(expandComparisons(parsePolicy('a:1 and a:2 and a:3'))).columns, 3);
    assert.equal(toSpanProgram(expandComparisons(parsePolicy('a:1 or a:2 or a:3'))).columns, 1);
  });
});
