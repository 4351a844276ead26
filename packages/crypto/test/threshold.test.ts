import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as mcl from 'mcl-wasm';
import * as curve from '../src/curve/bls12381.ts';
import * as th from '../src/threshold.ts';
import { AccessDeniedError, IntegrityError, LimitExceededError, MalformedInputError, MedShareError, UnsupportedError } from '../src/errors.ts';
import { lagrangeCoefficients } from '../src/threshold/scalars.ts';

before(() => curve.initCurve());

const sum = (vectors: number[][]) => vectors[0]!.map((_, k) => vectors.reduce((acc, v) => acc + BigInt(v[k]!), 0n));
const g = () => curve.g1Generator();

/** Every participant decrypts; returns the partials in index order. */
function partialsOf(dkg: th.DkgResult, ct: th.Ciphertext, who: number[]): th.PartialDecryption[] {
  return who.map((j) => th.partialDecrypt(dkg.shares[j - 1]!, dkg.publicKey.verificationKeys[j - 1]!, ct));
}

test('totals equal the plaintext oracle for random hospitals, histograms and quorums (fast-check)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          t: fc.integer({ min: 1, max: n }),
          cells: fc.integer({ min: 1, max: 6 }),
          seed: fc.array(fc.array(fc.integer({ min: -50, max: 5000 }), { minLength: 6, maxLength: 6 }), { minLength: n, maxLength: n }),
          quorum: fc.shuffledSubarray(
            Array.from({ length: n }, (_, i) => i + 1),
            { minLength: n, maxLength: n },
          ),
        }),
      ),
      ({ n, t, cells, seed, quorum }) => {
        const dkg = th.runDkg({ n, t });
        const histograms = seed.map((row) => row.slice(0, cells));
        const [first, ...rest] = histograms.map((h) => th.encrypt(dkg.publicKey, h));
        const aggregate = th.addCiphertexts(first!, ...rest);
        const result = th.combine(dkg.publicKey, aggregate, partialsOf(dkg, aggregate, quorum.slice(0, t)));
        assert.deepEqual(result.values, sum(histograms));
        assert.deepEqual(result.rejected, []);
      },
    ),
    { numRuns: 12 },
  );
});

test('the DKG key is consistent: any t shares interpolate to log_G(y), and Y_j = x_j·G', () => {
  const dkg = th.runDkg({ n: 5, t: 3 });
  for (const j of [1, 2, 3, 4, 5]) assert.ok(curve.g1Mul(g(), dkg.shares[j - 1]!.secret).isEqual(dkg.publicKey.verificationKeys[j - 1]!));
  for (const set of [
    [1, 2, 3],
    [2, 4, 5],
    [1, 3, 5],
  ]) {
    const lambdas = lagrangeCoefficients(set);
    const x = set.reduce((acc, j, k) => curve.frAdd(acc, curve.frMul(lambdas[k]!, dkg.shares[j - 1]!.secret)), curve.frFromBigInt(0n));
    assert.ok(curve.g1Mul(g(), x).isEqual(dkg.publicKey.y));
  }
  assert.deepEqual(dkg.qualified, [1, 2, 3, 4, 5]);
  assert.deepEqual(dkg.faults, []);
});

test('a wrong partial decryption is detected and its participant named; the others still decrypt', () => {
  const dkg = th.runDkg({ n: 4, t: 2 });
  const ct = th.encrypt(dkg.publicKey, [3, 0, 7]);
  const [p1, p2, p3] = partialsOf(dkg, ct, [1, 2, 3]);
  const cheat = { ...p2!, d: p2!.d.map((d, k) => (k === 1 ? curve.g1Add(d, g()) : d)) }; // shifts cell 1's total by −1
  assert.equal(th.verifyPartial(dkg.publicKey, ct, cheat), false);
  const result = th.combine(dkg.publicKey, ct, [cheat, p1!, p3!]);
  assert.deepEqual(result.values, [3n, 0n, 7n]);
  assert.deepEqual(result.rejected, [2]);
  assert.deepEqual(result.used, [1, 3]);
  assert.throws(
    () => th.combine(dkg.publicKey, ct, [p1!, cheat]),
    (e: unknown) => e instanceof AccessDeniedError && /participant\(s\) 2 gave invalid/.test(e.message),
  );
  // Garbage posted first under participant 3's index does not shut out participant 3's valid partial.
  const garbage = { ...p3!, d: p3!.d.map((d) => curve.g1Add(d, g())) };
  const mixed = th.combine(dkg.publicKey, ct, [garbage, p3!, cheat, p1!]);
  assert.deepEqual([mixed.used, mixed.rejected, mixed.values], [[1, 3], [2], [3n, 0n, 7n]]);
});

test("attack: a cheater proving with its own share for a shifted D, or borrowing another participant's partial, is rejected", () => {
  const dkg = th.runDkg({ n: 3, t: 2 });
  const ct = th.encrypt(dkg.publicKey, [10, 20]);
  const [p1, p2] = partialsOf(dkg, ct, [1, 2]);
  // Relabel participant 1's honest partial as participant 2's.
  assert.equal(th.verifyPartial(dkg.publicKey, ct, { ...p1!, index: 2 }), false);
  // A partial of another ciphertext (replay across queries).
  const other = th.encrypt(dkg.publicKey, [10, 20]);
  assert.equal(th.verifyPartial(dkg.publicKey, ct, partialsOf(dkg, other, [1])[0]!), false);
  // A random proof on correct D values.
  assert.equal(th.verifyPartial(dkg.publicKey, ct, { ...p2!, proof: { challenge: curve.randomFr(), response: curve.randomFr() } }), false);
  // Out-of-range index.
  assert.equal(th.verifyPartial(dkg.publicKey, ct, { ...p2!, index: 9 }), false);
  // Wrong length.
  assert.equal(th.verifyPartial(dkg.publicKey, ct, { ...p2!, d: p2!.d.slice(1) }), false);
  // Tampering the aggregate after the partials were made invalidates them (the statement covers every c1).
  const tampered = { ...ct, c1: [curve.g1Add(ct.c1[0]!, g()), ct.c1[1]!] };
  assert.equal(th.verifyPartial(dkg.publicKey, tampered, p1!), false);
});

test('fewer than t participants learn nothing: combine refuses, and their own Lagrange combination is no plaintext', () => {
  const dkg = th.runDkg({ n: 5, t: 3 });
  const ct = th.encrypt(dkg.publicKey, [42]);
  const two = partialsOf(dkg, ct, [1, 4]);
  assert.throws(() => th.combine(dkg.publicKey, ct, two), AccessDeniedError);
  // Duplicates do not count twice.
  assert.throws(() => th.combine(dkg.publicKey, ct, [two[0]!, two[0]!, two[1]!]), AccessDeniedError);
  // Coalition of 2: interpolating their partials at 0 as if t were 2 yields a point that is no small multiple of G.
  assert.throws(() => th.combineUnchecked(ct, two, 2 ** 16), IntegrityError);
  // Their shares interpolated at 0 are not the key either (the linear algebra has one unknown too many).
  const lambdas = lagrangeCoefficients([1, 4]);
  const guess = curve.frAdd(curve.frMul(lambdas[0]!, dkg.shares[0]!.secret), curve.frMul(lambdas[1]!, dkg.shares[3]!.secret));
  assert.ok(!curve.g1Mul(g(), guess).isEqual(dkg.publicKey.y));
});

test('DKG: a dealer sending a bad share is accused; an honest answer keeps it, a bad or missing answer disqualifies it by name', () => {
  const corrupt = (s: th.DealtShare): th.DealtShare =>
    s.dealer === 2 && s.recipient === 3 ? { ...s, share: curve.frAdd(s.share, curve.frFromBigInt(1n)) } : s;
  const answered = th.runDkg({ n: 4, t: 2 }, { share: corrupt });
  assert.deepEqual(answered.qualified, [1, 2, 3, 4]);
  const bad = th.runDkg({ n: 4, t: 2 }, { share: corrupt, answer: (s) => corrupt(s) });
  assert.deepEqual(bad.qualified, [1, 3, 4]);
  assert.deepEqual(bad.faults, [{ dealer: 2, fault: 'bad-answer', accusers: [3] }]);
  const silent = th.runDkg({ n: 4, t: 2 }, { share: corrupt, answer: (s) => (s.dealer === 2 ? undefined : s) });
  assert.deepEqual(
    silent.faults.map((f) => [f.dealer, f.fault]),
    [[2, 'no-answer']],
  );
  for (const dkg of [answered, bad, silent]) {
    const ct = th.encrypt(dkg.publicKey, [5, 6]);
    assert.deepEqual(th.combine(dkg.publicKey, ct, partialsOf(dkg, ct, [3, 4])).values, [5n, 6n]);
  }
});

test('DKG: a dealer whose Feldman commitments do not match its shares is named and its contribution reconstructed', () => {
  const dkg = th.runDkg({ n: 4, t: 3 }, { feldman: (dealer, honest) => (dealer === 1 ? honest.map((a) => curve.g1Add(a, g())) : honest) });
  assert.equal(dkg.faults.length, 1);
  assert.equal(dkg.faults[0]!.dealer, 1);
  assert.equal(dkg.faults[0]!.fault, 'feldman-mismatch');
  assert.deepEqual(dkg.qualified, [1, 2, 3, 4]);
  const ct = th.encrypt(dkg.publicKey, [9]);
  assert.deepEqual(th.combine(dkg.publicKey, ct, partialsOf(dkg, ct, [2, 3, 4])).values, [9n]);
});

test('DKG: t false complaints disqualify, fewer do not; malformed commitments disqualify; too few qualified dealers is an error', () => {
  const falsely = th.runDkg({ n: 4, t: 3 }, { falseComplaints: (j) => (j === 1 ? [4] : []) });
  assert.deepEqual(falsely.qualified, [1, 2, 3, 4]);
  const many = th.runDkg({ n: 4, t: 2 }, { falseComplaints: (j) => (j <= 2 ? [4] : []) });
  assert.deepEqual(
    many.faults.map((f) => [f.dealer, f.fault]),
    [[4, 'too-many-complaints']],
  );
  const short = th.runDkg({ n: 3, t: 2 }, { commitments: (i, c) => (i === 3 ? c.slice(1) : c) });
  assert.deepEqual(
    short.faults.map((f) => [f.dealer, f.fault]),
    [[3, 'bad-commitments']],
  );
  assert.throws(() => th.runDkg({ n: 3, t: 3 }, { commitments: (i, c) => (i === 3 ? c.slice(1) : c) }), /only 2 dealers qualified/);
  assert.throws(() => th.runDkg({ n: 2, t: 3 }), RangeError);
});

test('keys and ciphertexts do not mix', () => {
  const a = th.runDkg({ n: 2, t: 1 });
  const b = th.runDkg({ n: 2, t: 1 });
  const ctA = th.encrypt(a.publicKey, [1]);
  assert.throws(() => th.addCiphertexts(ctA, th.encrypt(b.publicKey, [1])), MalformedInputError);
  assert.throws(() => th.addCiphertexts(ctA, th.encrypt(a.publicKey, [1, 2])), MalformedInputError);
  assert.throws(() => th.partialDecrypt(b.shares[0]!, b.publicKey.verificationKeys[0]!, ctA), AccessDeniedError);
  assert.throws(() => th.combine(b.publicKey, ctA, []), AccessDeniedError);
});

test('decoding is bounded: out-of-bound values and non-multiples are IntegrityError, absurd bounds LimitExceededError', () => {
  assert.equal(th.decodeSmall(curve.g1Mul(g(), curve.frFromBigInt(-123456n)), 2 ** 20), -123456n);
  assert.equal(th.decodeSmall(curve.g1Mul(g(), curve.frFromBigInt(0n))), 0n);
  assert.throws(() => th.decodeSmall(curve.g1Mul(g(), curve.frFromBigInt(5000n)), 4000), IntegrityError);
  assert.throws(() => th.decodeSmall(curve.g1Mul(g(), curve.randomFr()), 2 ** 15), IntegrityError);
  assert.throws(() => th.decodeSmall(g(), 2 ** 41), LimitExceededError);
});

test('encodings round-trip', () => {
  const dkg = th.runDkg({ n: 3, t: 2 });
  const pk = th.decodePublicKey(th.encodePublicKey(dkg.publicKey));
  assert.equal(th.keyFingerprint(pk), th.keyFingerprint(dkg.publicKey));
  const share = th.decodeKeyShare(th.encodeKeyShare(dkg.shares[1]!));
  const ct = th.decodeCiphertext(th.encodeCiphertext(th.encrypt(pk, [4, 5])));
  const partials = [th.partialDecrypt(share, pk.verificationKeys[1]!, ct), th.partialDecrypt(dkg.shares[2]!, pk.verificationKeys[2]!, ct)];
  assert.deepEqual(
    th.combine(
      pk,
      ct,
      partials.map((p) => th.decodePartial(th.encodePartial(p))),
    ).values,
    [4n, 5n],
  );
});

/** A compressed encoding of an on-curve point outside the prime-order subgroup. */
function nonSubgroupCompressed(): Uint8Array {
  for (let x = 1; ; x++) {
    const bytes = new Uint8Array(48);
    bytes[0] = 0x80;
    bytes[47] = x;
    const p = new mcl.G1();
    try {
      p.deserialize(bytes);
    } catch {
      continue;
    }
    if (!p.isValidOrder()) return bytes;
  }
}

test('hostile input: truncated, oversized, wrong version or kind, non-subgroup, identity, trailing bytes → typed errors', () => {
  const dkg = th.runDkg({ n: 2, t: 2 });
  const ct = th.encodeCiphertext(th.encrypt(dkg.publicKey, [1, 2]));
  const partial = th.encodePartial(th.partialDecrypt(dkg.shares[0]!, dkg.publicKey.verificationKeys[0]!, th.decodeCiphertext(ct)));
  const pk = th.encodePublicKey(dkg.publicKey);
  for (let cut = 0; cut < ct.length; cut += 7) assert.throws(() => th.decodeCiphertext(ct.subarray(0, cut)), MalformedInputError);
  for (let cut = 0; cut < partial.length; cut += 11) assert.throws(() => th.decodePartial(partial.subarray(0, cut)), MalformedInputError);
  for (let cut = 0; cut < pk.length; cut += 5) assert.throws(() => th.decodePublicKey(pk.subarray(0, cut)), MalformedInputError);
  const edit = (bytes: Uint8Array, at: number, value: ArrayLike<number>) => {
    const copy = new Uint8Array(bytes);
    copy.set(value, at);
    return copy;
  };
  assert.throws(() => th.decodeCiphertext(edit(ct, 4, [2])), UnsupportedError);
  assert.throws(() => th.decodeCiphertext(partial), /this is partial decryption/);
  assert.throws(() => th.decodeCiphertext(edit(ct, 38, [0xff, 0xff, 0xff, 0xff])), LimitExceededError);
  assert.throws(() => th.decodeCiphertext(edit(ct, 38, [0, 0, 0, 0])), /no cells/);
  assert.throws(() => th.decodeCiphertext(edit(ct, 38, [0, 0, 0, 3])), /truncated/);
  assert.throws(() => th.decodeCiphertext(new Uint8Array([...ct, 0])), /trailing/);
  assert.throws(() => th.decodeCiphertext(edit(ct, 42, nonSubgroupCompressed())), /prime-order subgroup/);
  const identity = new Uint8Array(48);
  identity[0] = 0xc0;
  assert.throws(() => th.decodeCiphertext(edit(ct, 42, identity)), /identity/);
  assert.throws(() => th.decodePublicKey(edit(pk, 6, [0, 1, 0, 2])), /invalid threshold 2 of 1/);
  assert.throws(() => th.decodePartial(edit(partial, 38, [0, 0])), /index 0 out of range/);
  assert.throws(() => th.decodePartial(edit(partial, partial.length - 32, new Uint8Array(32).fill(0xff))), MalformedInputError);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.constantFrom(th.decodeCiphertext, th.decodePartial, th.decodePublicKey, th.decodeKeyShare),
      (bytes, decode) => {
        const framed = new Uint8Array([0x4d, 0x53, 0x54, 0x48, 1, ...bytes]);
        for (const input of [bytes, framed]) {
          try {
            decode(input);
          } catch (error) {
            assert.ok(error instanceof MedShareError, String(error));
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});
