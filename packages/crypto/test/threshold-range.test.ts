import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as curve from '../src/curve/bls12381.ts';
import * as th from '../src/threshold.ts';
import { LimitExceededError, MalformedInputError, MedShareError, UnsupportedError } from '../src/errors.ts';

before(() => curve.initCurve());

const context = (who: string) => new TextEncoder().encode(who);
let key: th.DkgResult | undefined;
const dkg = () => (key ??= th.runDkg({ n: 3, t: 2 }));

test('range proofs: values within their ranges verify, and the proven cells still add and decrypt to the plaintext total (fast-check)', () => {
  const { publicKey, shares } = dkg();
  fc.assert(
    fc.property(
      fc
        .array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 })
        .chain((bits) =>
          fc.tuple(
            fc.constant(bits),
            fc.tuple(...bits.map((k) => fc.integer({ min: -(2 ** (k - 1)), max: 2 ** (k - 1) - 1 }))),
            fc.array(fc.integer({ min: -100, max: 100 }), { minLength: bits.length, maxLength: bits.length }),
          ),
        ),
      ([bits, values, other]) => {
        const { ciphertext, proof } = th.encryptInRange(publicKey, values, bits, context('st-marys'));
        assert.deepEqual(th.rangeFailures(publicKey, ciphertext, th.decodeRangeProof(th.encodeRangeProof(proof)), context('st-marys')), []);
        const total = th.addCiphertexts(ciphertext, th.encrypt(publicKey, other));
        const partials = [1, 3].map((j) => th.partialDecrypt(shares[j - 1]!, publicKey.verificationKeys[j - 1]!, total));
        assert.deepEqual(
          th.combine(publicKey, total, partials).values,
          values.map((v, k) => BigInt(v + other[k]!)),
        );
      },
    ),
    { numRuns: 8 },
  );
});

test("attack: a cheating hospital inflating a cell, or encrypting a bit of 2, fails that cell's proof; out-of-range values cannot be proven", () => {
  const { publicKey } = dkg();
  const g = curve.g1Generator();
  const { ciphertext, proof } = th.encryptInRange(publicKey, [3, -2, 0], [4, 4, 4], context('riverside'));
  // Inflate cell 1 by 1,000 after proving: the cell no longer matches its bits.
  const inflated = { ...ciphertext, c2: ciphertext.c2.map((c, k) => (k === 1 ? curve.g1Add(c, curve.g1Mul(g, curve.frFromBigInt(1000n))) : c)) };
  assert.deepEqual(th.rangeFailures(publicKey, inflated, proof, context('riverside')), [1]);
  // A bit encrypting 2 (so that the cell adds 2^i more than its range allows), with a consistent cell: the OR proof fails.
  const bit = proof.cells[2]![3]!;
  const forged = { ...bit, b: curve.g1Add(bit.b, g) };
  const cells = proof.cells.map((c, k) => (k === 2 ? c.map((p, i) => (i === 3 ? forged : p)) : c));
  const shifted = { ...ciphertext, c2: ciphertext.c2.map((c, k) => (k === 2 ? curve.g1Add(c, curve.g1Mul(g, curve.frFromBigInt(8n))) : c)) };
  assert.deepEqual(th.rangeFailures(publicKey, shifted, { ...proof, cells }, context('riverside')), [2]);
  // Claiming a wider range for a cell than it was proven in, or a proof of fewer bits, fails too.
  assert.deepEqual(th.rangeFailures(publicKey, ciphertext, { ...proof, bits: [4, 5, 4] }, context('riverside')), [1]);
  assert.throws(
    () => th.encryptInRange(publicKey, [8], [4], context('x')),
    (e: unknown) => e instanceof LimitExceededError && /outside ±2\^3/.test(e.message),
  );
  assert.throws(() => th.encryptInRange(publicKey, [-9], [4], context('x')), LimitExceededError);
  assert.throws(() => th.encryptInRange(publicKey, [1], [33], context('x')), RangeError);
});

test("attack: another hospital's contribution replayed as one's own fails every cell (the proof is bound to its context and key)", () => {
  const { publicKey } = dkg();
  const { ciphertext, proof } = th.encryptInRange(publicKey, [5, 6], [8, 8], context('query-1/st-marys'));
  assert.deepEqual(th.rangeFailures(publicKey, ciphertext, proof, context('query-1/riverside')), [0, 1]);
  assert.deepEqual(th.rangeFailures(publicKey, ciphertext, proof, context('query-2/st-marys')), [0, 1]);
  const other = th.runDkg({ n: 2, t: 1 }).publicKey;
  assert.deepEqual(th.rangeFailures(other, ciphertext, proof, context('query-1/st-marys')), [0, 1]);
  assert.deepEqual(th.rangeFailures(publicKey, th.encrypt(publicKey, [5, 6, 7]), proof, context('query-1/st-marys')), [0, 1, 2]);
});

test('range proof encoding: tampered bytes fail decoding or the proof; truncated, wrong version, bad widths, oversized → typed errors', () => {
  const { publicKey } = dkg();
  const { ciphertext, proof } = th.encryptInRange(publicKey, [1, -1], [2, 3], context('c'));
  const bytes = th.encodeRangeProof(proof);
  assert.equal(bytes.length, 4 + 1 + 1 + 32 + 4 + 2 + 5 * 224);
  const edit = (at: number, value: ArrayLike<number>) => {
    const copy = new Uint8Array(bytes);
    copy.set(value, at);
    return copy;
  };
  // Tamper with every scalar of the first bit (the challenges and responses): decoding refuses or the proof fails.
  for (let at = 44 + 96; at < 44 + 224; at += 32) {
    const tampered = edit(at + 31, [bytes[at + 31]! ^ 1]);
    let failures: number[];
    try {
      failures = th.rangeFailures(publicKey, ciphertext, th.decodeRangeProof(tampered), context('c'));
    } catch (error) {
      assert.ok(error instanceof MalformedInputError);
      continue;
    }
    assert.deepEqual(failures, [0]);
  }
  for (let cut = 0; cut < bytes.length; cut += 37) assert.throws(() => th.decodeRangeProof(bytes.subarray(0, cut)), MalformedInputError);
  assert.throws(() => th.decodeRangeProof(edit(4, [2])), UnsupportedError);
  assert.throws(() => th.decodeRangeProof(edit(42, [0])), /cell 0 has 0 bits/);
  assert.throws(() => th.decodeRangeProof(edit(43, [33])), /cell 1 has 33 bits/);
  assert.throws(() => th.decodeRangeProof(new Uint8Array([...bytes, 0])), MalformedInputError);
  const huge = new Uint8Array([...bytes.subarray(0, 38), 0, 0, 0x08, 0x01, ...new Array(2049).fill(32)]);
  assert.throws(() => th.decodeRangeProof(huge), LimitExceededError);
  assert.throws(() => th.decodeRangeProof(th.encodeCiphertext(ciphertext)), /this is threshold ciphertext/);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (random) => {
      for (const input of [random, new Uint8Array([0x4d, 0x53, 0x54, 0x48, 1, 5, ...random])]) {
        try {
          th.decodeRangeProof(input);
        } catch (error) {
          assert.ok(error instanceof MedShareError, String(error));
        }
      }
    }),
    { numRuns: 200 },
  );
});
