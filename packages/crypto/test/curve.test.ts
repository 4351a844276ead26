import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as curve from '../src/curve/bls12381.ts';
import { MalformedInputError } from '../src/errors.ts';

before(() => curve.initCurve());

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

// RFC 9380 Appendix J.9.1, suite BLS12381G1_XMD:SHA-256_SSWU_RO_.
const RFC9380_DST = 'QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_';
const RFC9380_VECTORS = [
  {
    msg: '',
    x: '052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a1',
    y: '08ba738453bfed09cb546dbb0783dbb3a5f1f566ed67bb6be0e8c67e2e81a4cc68ee29813bb7994998f3eae0c9c6a265',
  },
  {
    msg: 'abc',
    x: '03567bc5ef9c690c2ab2ecdf6a96ef1c139cc0b2f284dca0a9a7943388a49a3aee664ba5379a7655d3c68900be2f6903',
    y: '0b9c15f3fe6e5cf4211f346271d7b01c8f3b28be689c8429c85b67af215533311f0b8dfaaa154fa6b88176c229f2885d',
  },
];

test('hashToG1 matches the RFC 9380 test vectors', () => {
  for (const v of RFC9380_VECTORS) {
    const p = curve.hashToG1(new TextEncoder().encode(v.msg), RFC9380_DST);
    p.normalize();
    assert.equal(p.getX().serializeToHexStr(), v.x, `x for msg "${v.msg}"`);
    assert.equal(p.getY().serializeToHexStr(), v.y, `y for msg "${v.msg}"`);
  }
});

test('hashing is domain separated: the same message under two DSTs gives unrelated points', () => {
  const msg = new TextEncoder().encode('role:doctor');
  assert.ok(!curve.hashToG1(msg, 'A').isEqual(curve.hashToG1(msg, 'B')));
  assert.ok(!curve.hashToG2(msg, 'A').isEqual(curve.hashToG2(msg, 'B')));
});

test('the pairing is bilinear and non-degenerate', () => {
  const a = curve.randomFr();
  const b = curve.randomFr();
  const lhs = curve.pairing(curve.g1Mul(curve.g1Generator(), a), curve.g2Mul(curve.g2Generator(), b));
  const rhs = curve.gtPow(curve.pairing(curve.g1Generator(), curve.g2Generator()), curve.frMul(a, b));
  assert.ok(lhs.isEqual(rhs));
  assert.ok(!curve.pairing(curve.g1Generator(), curve.g2Generator()).isOne());
});

test('multiPairing (one vectorised Miller loop, one final exponentiation) equals the product of separate pairings', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 7 }), (n) => {
      const ps = Array.from({ length: n }, () => curve.g1Mul(curve.g1Generator(), curve.randomFr()));
      const qs = Array.from({ length: n }, () => curve.g2Mul(curve.g2Generator(), curve.randomFr()));
      let expected = curve.gtOne();
      for (let i = 0; i < n; i++) expected = curve.gtMul(expected, curve.pairing(ps[i]!, qs[i]!));
      assert.ok(curve.multiPairing(ps, qs).isEqual(expected));
      assert.ok(curve.multiPairingSeparate(ps, qs).isEqual(expected));
    }),
    { numRuns: 10 },
  );
});

test('a pairing with precomputed G2 lines equals the pairing, before and after destroy', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 }), (uses) => {
      const q = curve.g2Mul(curve.g2Generator(), curve.randomFr());
      const precomputed = new curve.PrecomputedG2(q);
      const ps = Array.from({ length: uses }, () => curve.g1Mul(curve.g1Generator(), curve.randomFr()));
      for (const p of ps) assert.ok(precomputed.pairing(p).isEqual(curve.pairing(p, q)));
      precomputed.destroy();
      precomputed.destroy();
      // Without its lines it still pairs correctly: mcl's own precomputedMillerLoop would read freed memory.
      for (const p of ps) assert.ok(precomputed.pairing(p).isEqual(curve.pairing(p, q)));
    }),
    { numRuns: 30 },
  );
});

test('msmG1 equals the sum of separate multiplications', () => {
  const ps = Array.from({ length: 5 }, () => curve.hashToG1(curve.frToBytes(curve.randomFr()), 'msm-test'));
  const ks = ps.map(() => curve.randomFr());
  let expected = curve.g1Mul(ps[0]!, ks[0]!);
  for (let i = 1; i < ps.length; i++) expected = curve.g1Add(expected, curve.g1Mul(ps[i]!, ks[i]!));
  assert.ok(curve.msmG1(ps, ks).isEqual(expected));
});

test("8 MiB upload stackAlloc (regression): MSMs and sums longer than mcl-wasm's stack holds (9,000 G1, 3,000 G2 points) equal the grouped result", () => {
  // Three distinct points repeated: Σ k_i·P_(i mod 3) = Σ_j P_j·(Σ_(i ≡ j) k_i), computed with three multiplications.
  const check = <P extends curve.G1 | curve.G2>(
    n: number,
    base: P[],
    msm: (ps: P[], ks: curve.Fr[]) => P,
    mul: (p: P, k: curve.Fr) => P,
    add: (a: P, b: P) => P,
  ) => {
    const ks = Array.from({ length: n }, () => curve.randomFr());
    const sums = base.map((_, j) => ks.filter((_, i) => i % base.length === j).reduce((a, b) => curve.frAdd(a, b)));
    const expected = base.map((p, j) => mul(p, sums[j]!)).reduce(add);
    assert.equal(
      msm(
        ks.map((_, i) => base[i % base.length]!),
        ks,
      ).serializeToHexStr(),
      expected.serializeToHexStr(),
    );
  };
  const g1 = [1n, 2n, 3n].map((x) => curve.g1Mul(curve.g1Generator(), curve.frFromBigInt(x)));
  const g2 = [1n, 2n, 3n].map((x) => curve.g2Mul(curve.g2Generator(), curve.frFromBigInt(x)));
  check(9_000, g1, curve.msmG1, curve.g1Mul, curve.g1Add);
  check(3_000, g2, curve.msmG2, curve.g2Mul, curve.g2Add);
  // Σ of 9,000 copies of the generator is 9,000·G.
  assert.ok(curve.g1Sum(Array.from({ length: 9_000 }, () => curve.g1Generator())).isEqual(curve.g1Mul(curve.g1Generator(), curve.frFromBigInt(9_000n))));
});

test('encodings round-trip for every group', () => {
  const k = curve.randomFr();
  const p = curve.g1Mul(curve.g1Generator(), k);
  const q = curve.g2Mul(curve.g2Generator(), k);
  const x = curve.randomGT();
  assert.ok(curve.g1FromBytes(curve.g1ToBytes(p)).isEqual(p));
  assert.ok(curve.g2FromBytes(curve.g2ToBytes(q)).isEqual(q));
  assert.ok(curve.gtFromBytes(curve.gtToBytes(x)).isEqual(x));
  assert.ok(curve.frFromBytes(curve.frToBytes(k)).isEqual(k));
  assert.equal(hex(curve.g1ToBytes(curve.g1Generator())).slice(0, 8), '97f1d3a7');
});

test('uncompressed encodings follow the ZCash layout (checked against @noble/curves for the generators)', () => {
  const g1 =
    '17f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb' +
    '08b3f481e3aaa0f1a09e30ed741d8ae4fcf5e095d5d00af600db18cb2c04b3edd03cc744a2888ae40caa232946c5e7e1';
  const g2 =
    '13e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e' +
    '024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8' +
    '0606c4a02ea734cc32acd2b02bc28b99cb3e287e85a763af267492ab572e99ab3f370d275cec1da1aaa9075ff05f79be' +
    '0ce5d527727d6e118cc9cdc6da2e351aadfd9baa8cbdd3a76d429a695160d12c923ac9cc3baca289e193548608b82801';
  assert.equal(hex(curve.g1ToBytesUncompressed(curve.g1Generator())), g1);
  assert.equal(hex(curve.g2ToBytesUncompressed(curve.g2Generator())), g2);
  assert.ok(curve.g1FromBytesOnCurve(unhex(g1)).isEqual(curve.g1Generator()));
  assert.ok(curve.g2FromBytesUncompressed(unhex(g2)).isEqual(curve.g2Generator()));
  // A coordinate ≥ p is refused (here x = p, which would reduce to 0).
  const unreduced = '1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab' + g1.slice(96);
  assert.throws(() => curve.g1FromBytesOnCurve(unhex(unreduced)), /not reduced modulo p/);
  const offCurve = unhex(g1);
  offCurve[95]! ^= 1;
  assert.throws(() => curve.g1FromBytesOnCurve(offCurve), /not a point on the curve/);
});

test('frFromBigInt reduces modulo r and wraps negatives', () => {
  assert.equal(curve.frToBigInt(curve.frFromBigInt(-1n)), curve.CURVE_ORDER - 1n);
  assert.equal(curve.frToBigInt(curve.frFromBigInt(curve.CURVE_ORDER + 5n)), 5n);
});

test('decoders reject wrong lengths, the identity, off-curve and non-subgroup points', () => {
  const reject = (f: () => unknown, pattern: RegExp) => assert.throws(f, (e: unknown) => e instanceof MalformedInputError && pattern.test(e.message));
  reject(() => curve.g1FromBytes(new Uint8Array(47)), /expected 48 bytes/);
  reject(() => curve.g2FromBytes(new Uint8Array(97)), /expected 96 bytes/);
  // Compressed identity: flag bits 0xc0 then zeros.
  const infinity = new Uint8Array(48);
  infinity[0] = 0xc0;
  reject(() => curve.g1FromBytes(infinity), /identity/);
  // Compressed points with small x: each is off the curve or, when it decompresses, outside the r-order
  // subgroup (the cofactors are huge, so a point found this way is essentially never in G1/G2).
  const reasons = (size: number, decode: (b: Uint8Array) => unknown) => {
    const seen = new Set<string>();
    for (let x = 1; x < 30; x++) {
      const bytes = new Uint8Array(size);
      bytes[0] = 0x80;
      bytes[size - 1] = x;
      try {
        decode(bytes);
        seen.add('accepted');
      } catch (e) {
        assert.ok(e instanceof MalformedInputError);
        seen.add(e.message.replace(/^.*: /, ''));
      }
    }
    return seen;
  };
  const g1Reasons = reasons(48, (b) => curve.g1FromBytes(b));
  assert.ok(g1Reasons.has('not in the prime-order subgroup'), [...g1Reasons].join('; '));
  assert.ok(!g1Reasons.has('accepted'));
  const g2Reasons = reasons(96, (b) => curve.g2FromBytes(b));
  assert.ok(g2Reasons.has('not in the prime-order subgroup'), [...g2Reasons].join('; '));
  assert.ok(!g2Reasons.has('accepted'));
  // Scalars must be below r and non-zero.
  reject(() => curve.frFromBytes(unhex(curve.CURVE_ORDER.toString(16).padStart(64, '0'))), /valid encoding|non-canonical/);
  reject(() => curve.frFromBytes(new Uint8Array(32)), /zero/);
});

test('gtFromBytes rejects elements outside the order-r subgroup', () => {
  // The Miller loop output before the final exponentiation is (overwhelmingly) not in GT.
  const f = curve.millerLoop(curve.g1Generator(), curve.g2Generator());
  assert.throws(() => curve.gtFromBytes(curve.gtToBytes(f)), /order-r subgroup/);
  assert.throws(() => curve.gtFromBytes(curve.gtToBytes(curve.gtOne())), /degenerate/);
});
