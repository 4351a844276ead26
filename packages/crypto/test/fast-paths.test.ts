/**
 * The performance work of issue #21 changes how values are computed, never what they are: each cached or
 * in-wasm path is compared here with the straightforward computation it replaces, on random inputs, and the
 * caches are attacked where a stale or shared entry could change an answer (limits, keys, capsules).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import * as mcl from 'mcl-wasm';
import * as abe from '../src/abe.ts';
import * as pre from '../src/pre.ts';
import * as c from '../src/curve/bls12381.ts';
import * as scheme from '../src/pre/scheme.ts';
import { AccessDeniedError, IntegrityError, LimitExceededError, MalformedInputError } from '../src/errors.ts';
import { DEFAULT_POLICY_LIMITS } from '../src/policy/parser.ts';
import { flatSpanProgram } from '../src/policy/flat.ts';
import { CHUNK_BYTES, openPayload, PayloadOpener, PayloadSealer, sealPayload, SEALED_CHUNK_BYTES } from '../src/hybrid/stream.ts';
import { occurrencesNeeded, policyText } from './arbitraries.ts';

let ta: ReturnType<typeof abe.setup>;
let patient: pre.PatientSecretKey;
let bundle: pre.PatientPublicKeys;

before(async () => {
  await abe.init();
  ta = abe.setup();
  patient = pre.generatePatientKey('patient-fast');
  bundle = pre.publicKeys(patient);
});

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const scalar = fc.bigInt({ min: 1n, max: c.CURVE_ORDER - 1n }).map(c.frFromBigInt);
/** Excludes r − 1 so that k·G + G is never the identity (fast-check favours the bounds; the identity has no affine encoding). */
const scalarNotMinusOne = fc.bigInt({ min: 1n, max: c.CURVE_ORDER - 2n }).map(c.frFromBigInt);

/** The reference encoding: mcl's text output of the normalised point (what the code did before #21). */
function referenceUncompressed(point: c.G1 | c.G2): string {
  const parts = mcl
    .normalize(point)
    .getStr(16)
    .split(' ')
    .slice(1)
    .map((h) => h.padStart(96, '0'));
  // G2's text order is x.c0 x.c1 y.c0 y.c1; the ZCash layout puts c1 first.
  return (parts.length === 2 ? parts : [parts[1], parts[0], parts[3], parts[2]]).join('');
}

describe('binary point coding', () => {
  test('uncompressed G1 and G2 encodings equal the text-based reference and decode back, on random points', () => {
    fc.assert(
      fc.property(scalarNotMinusOne, scalar, (k1, k2) => {
        const p = c.g1Mul(c.g1Generator(), k1);
        const q = c.g2Mul(c.g2Generator(), k2);
        // A point that is not normalised (the sum of two), so the encoder must normalise a copy.
        const sum = c.g1Add(p, c.g1Generator());
        for (const point of [p, sum]) {
          const bytes = c.g1ToBytesUncompressed(point);
          assert.equal(hex(bytes), referenceUncompressed(point));
          assert.ok(c.g1FromBytesOnCurve(bytes).isEqual(point));
          assert.ok(c.g1FromBytesUncompressed(bytes).isEqual(point));
        }
        const bytes = c.g2ToBytesUncompressed(q);
        assert.equal(hex(bytes), referenceUncompressed(q));
        assert.ok(c.g2FromBytesUncompressed(bytes).isEqual(q));
      }),
      { numRuns: 40 },
    );
  });

  test('hostile uncompressed bytes are typed errors: unreduced coordinates, flag bits, off-curve, identity, lengths', () => {
    const good = c.g1ToBytesUncompressed(c.g1Mul(c.g1Generator(), c.randomFr()));
    const p = Buffer.from('1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab', 'hex');
    const withY = (y: Uint8Array) => new Uint8Array([...good.subarray(0, 48), ...y]);
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['y = p', withY(p), /not reduced/],
      [
        'y = p + 1',
        withY(
          (() => {
            const b = Buffer.from(p);
            b[47]! += 1;
            return b;
          })(),
        ),
        /not reduced/,
      ],
      [
        'compression flag',
        (() => {
          const b = good.slice();
          b[0]! |= 0x80;
          return b;
        })(),
        /flag bits/,
      ],
      [
        'infinity flag',
        (() => {
          const b = good.slice();
          b[0]! |= 0x40;
          return b;
        })(),
        /flag bits/,
      ],
      [
        'off the curve',
        (() => {
          const b = good.slice();
          b[95]! ^= 1;
          return b;
        })(),
        /not a point on the curve/,
      ],
      ['the identity (all zero)', new Uint8Array(96), /identity/],
      ['short', good.subarray(0, 95), /expected 96 bytes/],
    ];
    for (const [name, bytes, message] of cases)
      assert.throws(
        () => c.g1FromBytesOnCurve(bytes),
        (e: unknown) => e instanceof MalformedInputError && message.test(e.message),
        name,
      );
    const q = c.g2ToBytesUncompressed(c.g2Generator());
    const offCurve = q.slice();
    offCurve[191]! ^= 1;
    assert.throws(() => c.g2FromBytesUncompressed(offCurve), MalformedInputError);
    assert.throws(() => c.g2FromBytesUncompressed(new Uint8Array(192)), MalformedInputError);
  });

  test('g1Sum (additions inside wasm) equals the sum by separate additions', () => {
    fc.assert(
      fc.property(fc.array(scalar, { minLength: 1, maxLength: 40 }), (ks) => {
        const points = ks.map((k) => c.g1Mul(c.g1Generator(), k));
        const before = points.map((p) => c.g1ToBytes(p));
        assert.ok(c.g1Sum(points).isEqual(points.reduce((a, b) => c.g1Add(a, b))));
        assert.deepEqual(
          points.map((p) => c.g1ToBytes(p)),
          before,
          'the inputs are unchanged',
        );
      }),
      { numRuns: 30 },
    );
    assert.throws(() => c.g1Sum([]), RangeError);
  });
});

describe('cached pairing values', () => {
  test('the cached e(g1, g2) is the pairing of the generators, and a caller cannot change it', () => {
    const base = c.gtBase();
    assert.ok(base.isEqual(c.pairing(c.g1Generator(), c.g2Generator())));
    const mutated = c.gtMul(base, base);
    assert.ok(!mutated.isEqual(c.gtBase()));
    assert.ok(c.gtBase().isEqual(c.pairing(c.g1Generator(), c.g2Generator())));
  });

  test('e(g1, g2)^x from the fixed-base table equals the exponentiation, for random and edge exponents, and records still open', () => {
    // Digits at the window edges (0, 255, 256, r − 1), zero, then random scalars; before the table and after it.
    const edges = [0n, 1n, 255n, 256n, 257n, 65535n, 1n << 248n, c.CURVE_ORDER - 1n].map(c.frFromBigInt);
    const reference = (x: c.Fr) => mcl.pow(c.gtBase(), x);
    for (const x of edges) assert.ok(c.gtBasePow(x).isEqual(reference(x)));
    c.precomputeGtBase();
    c.precomputeGtBase(); // idempotent
    for (const x of edges) assert.ok(c.gtBasePow(x).isEqual(reference(x)));
    fc.assert(
      fc.property(scalar, (x) => c.gtBasePow(x).isEqual(reference(x))),
      { numRuns: 40 },
    );
    // The record key R comes from the table now: the patient still recovers every record.
    const record = randomBytes(300);
    assert.deepEqual(pre.decrypt(patient, pre.encrypt(bundle, 'lab', 'rec-table', record)), new Uint8Array(record));
  });

  test('a grant by GT exponentiation equals the grant by pairing: R / e(g1, H)^r = R / e(g1^r, H)', () => {
    fc.assert(
      fc.property(scalar, fc.uint8Array({ minLength: 1, maxLength: 64 }), (r, msg) => {
        const h = c.hashToG2(msg, 'MEDSHARE-TEST');
        const R = c.randomGT();
        const c1 = c.g1Mul(c.g1Generator(), r);
        assert.ok(scheme.recordGrantWithExponent(R, r, scheme.grantBase(h)).isEqual(scheme.recordGrant(R, c1, h)));
      }),
      { numRuns: 25 },
    );
  });

  test('every grant of an upload (one capsule, its e(g1, H(X)) cached) equals the grant computed by pairing', () => {
    const capsule = pre.emergencyCapsule(ta.publicKey, 'role:emergency');
    const reader = pre.createReader(abe.keygen(ta.masterKey, 'role:emergency', { maxOccurrences: 1 }));
    for (let i = 0; i < 6; i++) {
      const record = randomBytes(200 + i);
      const { ciphertext, emergencyGrant } = pre.encryptWithEmergencyGrant(bundle, 'notes', `r${i}`, record, capsule);
      const header = pre.openRecordHeader(ciphertext);
      const expected = scheme.recordGrant(pre.recordSecret(patient, header), header.core.c1, capsule.hashOfX);
      assert.ok(pre.decodeEmergencyGrant(emergencyGrant!).c2Converted.isEqual(expected), `record ${i}`);
      const info = pre.decodeEmergencyCapsule(pre.encodeEmergencyCapsule(capsule));
      assert.deepEqual(Buffer.from(reader.decrypt(pre.convert(pre.emergencyGrantKey(info, emergencyGrant!), ciphertext))), record);
    }
  });

  test("a second capsule does not reuse the first one's cached value (each grant opens only under its own capsule)", () => {
    const first = pre.emergencyCapsule(ta.publicKey, 'role:emergency');
    const second = pre.emergencyCapsule(ta.publicKey, 'role:emergency');
    pre.encryptWithEmergencyGrant(bundle, 'notes', 'warm', randomBytes(10), first);
    const { ciphertext, emergencyGrant } = pre.encryptWithEmergencyGrant(bundle, 'notes', 'r', randomBytes(10), second);
    const header = pre.openRecordHeader(ciphertext);
    const expected = scheme.recordGrant(pre.recordSecret(patient, header), header.core.c1, second.hashOfX);
    assert.ok(pre.decodeEmergencyGrant(emergencyGrant!).c2Converted.isEqual(expected));
  });
});

describe('patient and reader caches', () => {
  test("the patient's cached category keys give the same R as the derivation from scratch, epoch by epoch", () => {
    let key = pre.generatePatientKey('patient-rotating', ['lab']);
    for (let epoch = 1; epoch <= 3; epoch++) {
      const ct = pre.encrypt(pre.publicKeys(key), 'lab', `r${epoch}`, randomBytes(50));
      const header = pre.openRecordHeader(ct);
      const a = scheme.categorySecret(key.masterSecret, 'lab', epoch);
      const fromScratch = scheme.decapsulate(scheme.categoryDecryptionKey(a), header.core.c1, header.c2);
      assert.ok(pre.recordSecret(key, header).isEqual(fromScratch));
      assert.ok(pre.recordSecret(key, header).isEqual(fromScratch), 'second call, from the cache');
      key = pre.rotate(key, 'lab');
      // The rotated key still opens the older epoch.
      assert.ok(pre.recordSecret(key, header).isEqual(fromScratch));
    }
  });

  test('a patient key with the same id but another master secret is refused, after the genuine key filled its cache', () => {
    const ct = pre.encrypt(bundle, 'lab', 'r', randomBytes(20));
    pre.decrypt(patient, ct);
    const impostor: pre.PatientSecretKey = { ...patient, masterSecret: new Uint8Array(randomBytes(32)) };
    assert.throws(() => pre.decrypt(impostor, ct), AccessDeniedError);
  });

  test("a reader's precomputed H(X) recovers the same R as the plain pairing, before and after clear()", () => {
    const POLICY = 'role:doctor and dept:cardiology';
    const key = abe.keygen(ta.masterKey, 'role:doctor, dept:cardiology', { maxOccurrences: 1 });
    const rk = pre.delegate(patient, 'lab', ta.publicKey, POLICY);
    const reader = pre.createReader(key);
    for (let i = 0; i < 3; i++) {
      const converted = pre.openConvertedHeader(pre.convert(rk, pre.encrypt(bundle, 'lab', `r${i}`, randomBytes(30))));
      const x = abe.decapsulate(key, abe.openHeader(converted.rk2));
      const plain = scheme.recover(scheme.delegationHash(x, converted.delegationId, converted.rk2), converted.core.c1, converted.c2Converted);
      assert.ok(reader.recordSecret(converted).isEqual(plain));
      if (i === 1) reader.clear();
    }
    assert.equal(reader.cachedDelegations, 1);
  });
});

describe('compiled-policy cache', () => {
  test('decryption with a warm policy cache equals decryption with a cold one, on random policies and keys', () => {
    // A few keys issued once (keygen costs K copies of every bit of an integer attribute); random policies over them.
    const holders = ['role:doctor, dept:cardiology, level=7', 'role:nurse, hospital:a, age=40', 'role:emergency, site:b, uid:c'];
    const keys = holders.map((attributes) => abe.keygen(ta.masterKey, attributes, { maxOccurrences: 4 }));
    fc.assert(
      fc.property(policyText, fc.integer({ min: 0, max: holders.length - 1 }), fc.uint8Array({ maxLength: 2000 }), (policy, who, plaintext) => {
        fc.pre(occurrencesNeeded(policy) <= 4);
        const ct = abe.encrypt(ta.publicKey, policy, plaintext);
        const outcome = () => {
          try {
            return hex(abe.decrypt(keys[who]!, ct));
          } catch (error) {
            return error instanceof AccessDeniedError ? 'denied' : `unexpected ${String(error)}`;
          }
        };
        abe.clearPolicyCache();
        const cold = outcome();
        const warm = outcome();
        assert.equal(warm, cold);
        assert.equal(cold, abe.satisfies(holders[who]!, policy) ? hex(plaintext) : 'denied');
        assert.deepEqual(abe.openHeader(ct).program, abe.compilePolicy(policy));
      }),
      { numRuns: 25 },
    );
  });

  test('a policy cached under the default limits is still refused under stricter limits (no cache poisoning)', () => {
    const ct = abe.encrypt(ta.publicKey, 'role:a and role:b and role:c', new Uint8Array(1));
    abe.openHeader(ct);
    assert.throws(() => abe.openHeader(ct, { ...DEFAULT_POLICY_LIMITS, maxLeaves: 2 }), LimitExceededError);
    // The refusal is not cached either: the default limits still accept it.
    assert.equal(abe.openHeader(ct).program.rows.length, 3);
  });
});

describe('flat policy compilation', () => {
  /** The outcome of a compiler: its program, or the class and message of its error. */
  const outcome = (compile: () => unknown) => {
    try {
      return compile();
    } catch (error) {
      return `${(error as Error).constructor.name}: ${(error as Error).message}`;
    }
  };
  // Names and values close to the grammar's edges: keywords, threshold words, digits, every word character.
  const word = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('role', 'dept', 'of', '_x', 'a.b-c', 'x') },
    fc.constantFrom('and', 'or', 'AND', 'Or', '3', 'v@h/1+2', '-', ''),
  );
  const term = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(word, word).map(([n, v]) => `${n}:${v}`) },
    fc.constantFrom('level >= 3', '"q":x', 'a:"b c"', '(a:b)', 'a : b', 'é:x', 'a:b,'),
  );
  const flatish = fc
    .tuple(
      fc.array(term, { minLength: 1, maxLength: 8 }),
      fc.oneof({ weight: 4, arbitrary: fc.constantFrom(' and ', ' or ') }, fc.constantFrom(' AND ', '  or ', ' and  ')),
    )
    .map(([terms, joiner]) => terms.join(joiner));
  const limits = fc.record({
    maxLength: fc.integer({ min: 1, max: 200 }),
    maxDepth: fc.integer({ min: 0, max: 3 }),
    maxChildren: fc.integer({ min: 1, max: 12 }),
    maxLeaves: fc.integer({ min: 1, max: 12 }),
    maxOccurrences: fc.integer({ min: 1, max: 3 }),
  });

  test('compilePolicy (flat path first) and the general compiler give the same program or the same error, on near-flat policies and random limits', () => {
    let flatTaken = 0;
    fc.assert(
      fc.property(fc.oneof(flatish, policyText), fc.oneof(fc.constant(DEFAULT_POLICY_LIMITS), limits), (policy, lim) => {
        assert.deepStrictEqual(
          outcome(() => abe.compilePolicy(policy, lim)),
          outcome(() => abe.compileGeneral(policy, lim)),
        );
        if (flatSpanProgram(policy, lim) !== undefined) flatTaken++;
      }),
      { numRuns: 600 },
    );
    // The comparison is not vacuous: the flat path answered a good share of the cases itself.
    assert.ok(flatTaken > 30, `flat path taken ${flatTaken} times`);
  });

  test('at every limit the flat path leaves the refusal to the general compiler: the same error, word for word', () => {
    const cases: Array<[string, Partial<typeof DEFAULT_POLICY_LIMITS>]> = [
      ['a:b and a:b', { maxOccurrences: 1 }],
      ['a:b or c:d or a:b or a:b', { maxOccurrences: 2 }],
      ['a:b and c:d and e:f', { maxChildren: 2 }],
      ['a:b or c:d or e:f', { maxLeaves: 2 }],
      ['a:b and c:d', { maxLength: 10 }],
      ['and:b and c:d', {}],
      ['a:b or OR:d', {}],
    ];
    for (const [policy, limits] of cases) {
      const lim = { ...DEFAULT_POLICY_LIMITS, ...limits };
      const general = outcome(() => abe.compileGeneral(policy, lim));
      assert.match(String(general), /Error: /, policy);
      assert.equal(
        outcome(() => abe.compilePolicy(policy, lim)),
        general,
        policy,
      );
    }
  });

  test('the flat path answers the canonical flat AND and OR of 1 to 256 attributes with the general program', () => {
    for (const n of [1, 2, 3, 50, 100, 256]) {
      for (const shape of [' and ', ' or ']) {
        const policy = Array.from({ length: n }, (_, i) => `attr:f${i % 97}`).join(shape);
        const flat = flatSpanProgram(policy, { ...DEFAULT_POLICY_LIMITS, maxOccurrences: 3 });
        assert.ok(flat, `${n}${shape}`);
        assert.deepStrictEqual(flat, abe.compileGeneral(policy, { ...DEFAULT_POLICY_LIMITS, maxOccurrences: 3 }));
      }
    }
  });
});

describe('payload opening without copies', () => {
  test('end() seals and opens in place exactly what push() in random pieces and finish() do, whatever came before', () => {
    const key = new Uint8Array(randomBytes(32));
    const aad = new Uint8Array(randomBytes(32));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 * CHUNK_BYTES + 1 }), fc.array(fc.integer({ min: 1, max: 2 * CHUNK_BYTES }), { maxLength: 6 }), (size, cuts) => {
        const plaintext = new Uint8Array(randomBytes(size));
        const streamed = new PayloadSealer(key, aad);
        const pieces: Uint8Array[] = [];
        let offset = 0;
        for (const cut of cuts) {
          pieces.push(...streamed.push(plaintext.subarray(offset, offset + cut)));
          offset = Math.min(size, offset + cut);
        }
        pieces.push(...streamed.push(plaintext.subarray(offset)), ...streamed.finish());
        const sealed = Buffer.concat(new PayloadSealer(key, aad).end(plaintext));
        assert.deepEqual(Buffer.concat(pieces), sealed);
        // end() after some pushes (a streaming writer's last piece) seals the same bytes too.
        const half = new PayloadSealer(key, aad);
        const cut = Math.floor(size / 2);
        assert.deepEqual(Buffer.concat([...half.push(plaintext.subarray(0, cut)), ...half.end(plaintext.subarray(cut))]), sealed);
        assert.deepEqual(Buffer.concat(new PayloadOpener(key, aad).end(sealed)), Buffer.from(plaintext));
        const opener = new PayloadOpener(key, aad);
        assert.deepEqual(Buffer.concat([...opener.push(sealed.subarray(0, cut)), ...opener.end(sealed.subarray(cut))]), Buffer.from(plaintext));
      }),
      { numRuns: 30 },
    );
  });

  test('end() refuses a payload cut anywhere or extended, as push() and finish() do', () => {
    const key = new Uint8Array(randomBytes(32));
    const aad = new Uint8Array(randomBytes(32));
    const sealed = sealPayload(key, aad, new Uint8Array(randomBytes(2 * CHUNK_BYTES + 10)));
    for (const length of [0, 15, SEALED_CHUNK_BYTES, SEALED_CHUNK_BYTES + 15, 2 * SEALED_CHUNK_BYTES, sealed.length - 1]) {
      assert.throws(() => new PayloadOpener(key, aad).end(sealed.subarray(0, length)), IntegrityError, `cut to ${length}`);
    }
    assert.throws(() => new PayloadOpener(key, aad).end(Buffer.concat([sealed, new Uint8Array(1)])), IntegrityError);
  });

  test('opening in random pieces (full chunks in place, partial ones buffered) equals the one-shot opening', () => {
    const key = new Uint8Array(randomBytes(32));
    const aad = new Uint8Array(randomBytes(32));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 * SEALED_CHUNK_BYTES }),
        fc.array(fc.integer({ min: 1, max: 2 * SEALED_CHUNK_BYTES }), { maxLength: 8 }),
        (size, cuts) => {
          const plaintext = new Uint8Array(randomBytes(size));
          const sealed = sealPayload(key, aad, plaintext);
          assert.deepEqual(openPayload(key, aad, sealed), plaintext);
          const opener = new PayloadOpener(key, aad);
          const out: Uint8Array[] = [];
          let offset = 0;
          for (const cut of cuts) {
            // The caller reuses its buffer after each push: the opener must have copied what it kept.
            const piece = Buffer.from(sealed.subarray(offset, offset + cut));
            out.push(...opener.push(piece));
            piece.fill(0);
            offset = Math.min(sealed.length, offset + cut);
          }
          out.push(...opener.push(sealed.subarray(offset)), opener.finish());
          assert.deepEqual(new Uint8Array(Buffer.concat(out)), plaintext);
          // Pieces handed over (`owned`, as received from the network): kept as views, chunks opened across them.
          const owning = new PayloadOpener(key, aad);
          const owned: Uint8Array[] = [];
          let at = 0;
          for (const cut of [...cuts, sealed.length]) {
            owned.push(...owning.push(sealed.subarray(at, at + cut), { owned: true }));
            at = Math.min(sealed.length, at + cut);
          }
          owned.push(owning.finish());
          assert.deepEqual(new Uint8Array(Buffer.concat(owned)), plaintext);
        },
      ),
      { numRuns: 30 },
    );
  });
});
