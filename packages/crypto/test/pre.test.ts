import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import * as abe from '../src/abe.ts';
import * as pre from '../src/pre.ts';
import * as c from '../src/curve/bls12381.ts';
import * as scheme from '../src/pre/scheme.ts';
import { AccessDeniedError, IntegrityError, MalformedInputError, MedShareError } from '../src/errors.ts';
import { attributeList, policyText, occurrencesNeeded } from './arbitraries.ts';
import { nonSubgroupG1, reseal, utf8 } from './helpers.ts';

let ta: ReturnType<typeof abe.setup>;
let patient: pre.PatientSecretKey;
let bundle: pre.PatientPublicKeys;
const POLICY = '(role:doctor and dept:cardiology) or role:emergency';
let cardiologist: abe.UserKey;
let dermatologist: abe.UserKey;

before(async () => {
  await abe.init();
  ta = abe.setup();
  patient = pre.generatePatientKey('patient-7f3a');
  bundle = pre.decodePublicKeys(pre.encodePublicKeys(patient));
  cardiologist = abe.keygen(ta.masterKey, 'role:doctor, dept:cardiology');
  dermatologist = abe.keygen(ta.masterKey, 'role:doctor, dept:dermatology');
});

describe('PRE correctness', () => {
  test('every path round-trips: patient decrypt, convert + reader, on random payloads, policies and keys', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 70_000 }),
        fc.constantFrom(...pre.DEFAULT_CATEGORIES),
        policyText,
        attributeList,
        (plaintext, category, policy, attributes) => {
          const ct = pre.encrypt(bundle, category, `rec-${category}`, plaintext);
          assert.deepEqual(pre.decrypt(patient, ct), plaintext);
          const converted = pre.convert(pre.delegate(patient, category, ta.publicKey, policy), ct);
          const reader = pre.createReader(abe.keygen(ta.masterKey, attributes, { maxOccurrences: occurrencesNeeded(policy) }));
          if (abe.satisfies(attributes, policy)) assert.deepEqual(reader.decrypt(converted), plaintext);
          else assert.throws(() => reader.decrypt(converted), AccessDeniedError);
        },
      ),
      { numRuns: 25 },
    );
  });

  test('a reader runs FAME once per delegation and reuses it for every record', () => {
    const rk = pre.delegate(patient, 'lab', ta.publicKey, POLICY);
    const reader = pre.createReader(cardiologist);
    for (let i = 0; i < 5; i++) {
      const record = randomBytes(100);
      assert.deepEqual(Buffer.from(reader.decrypt(pre.convert(rk, pre.encrypt(bundle, 'lab', `r${i}`, record)))), record);
    }
    assert.equal(reader.cachedDelegations, 1);
  });

  test('a precomputed key converts to exactly the same bytes, also after release; a record grant is left as it is', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5_000 }), fc.constantFrom(...pre.DEFAULT_CATEGORIES), (plaintext, category) => {
        const rk = pre.decodeReEncryptionKey(pre.encodeReEncryptionKey(pre.delegate(patient, category, ta.publicKey, POLICY)));
        const fast = pre.precompute(rk);
        assert.deepEqual(pre.encodeReEncryptionKey(fast), pre.encodeReEncryptionKey(rk));
        const cts = [0, 1, 2].map((i) => pre.encrypt(bundle, category, `r${i}`, plaintext));
        for (const ct of cts) assert.deepEqual(pre.convert(fast, ct), pre.convert(rk, ct));
        pre.release(fast);
        assert.deepEqual(pre.convert(fast, cts[0]!), pre.convert(rk, cts[0]!));
      }),
      { numRuns: 10 },
    );
    const ct = pre.encrypt(bundle, 'lab', 'one', randomBytes(10));
    const grant = pre.delegateRecord(patient, pre.openRecordHeader(ct), ta.publicKey, POLICY);
    assert.equal(pre.precompute(grant), grant);
  });

  test('keys and bundles survive encode → decode → encode; a bundle is signed and checked', () => {
    const encoded = pre.encodePatientKey(patient);
    assert.deepEqual(pre.encodePatientKey(pre.decodePatientKey(encoded)), encoded);
    const rk = pre.encodeReEncryptionKey(pre.delegate(patient, 'notes', ta.publicKey, POLICY));
    assert.deepEqual(pre.encodeReEncryptionKey(pre.decodeReEncryptionKey(rk)), rk);
    const signed = pre.encodePublicKeys(patient);
    assert.deepEqual(
      pre.decodePublicKeys(signed, bundle.signingKey).categories.map((k) => k.category),
      [...pre.DEFAULT_CATEGORIES],
    );
    const stranger = pre.publicKeys(pre.generatePatientKey('someone-else'));
    assert.throws(
      () => pre.decodePublicKeys(signed, stranger.signingKey),
      (e: unknown) => e instanceof IntegrityError && /unexpected key/.test(e.message),
    );
    // A category key swapped in (checksum recomputed) breaks the signature.
    const swapped = reseal(signed, (body) => {
      const copy = body.slice();
      copy[copy.length - 64 - 10]! ^= 1;
      return copy;
    });
    assert.throws(() => pre.decodePublicKeys(swapped), MedShareError);
  });
});

describe('PRE refusal', () => {
  test('a dermatologist is refused; a cardiologist reads', () => {
    const converted = pre.convert(pre.delegate(patient, 'lab', ta.publicKey, POLICY), pre.encrypt(bundle, 'lab', 'r1', utf8('glucose 5.1')));
    assert.deepEqual(pre.createReader(cardiologist).decrypt(converted), utf8('glucose 5.1'));
    assert.throws(() => pre.createReader(dermatologist).decrypt(converted), AccessDeniedError);
  });

  test("a lab delegation converts nothing of imaging, nor another patient's lab records", () => {
    const rk = pre.delegate(patient, 'lab', ta.publicKey, POLICY);
    assert.throws(() => pre.convert(rk, pre.encrypt(bundle, 'imaging', 'x', utf8('x'))), /for category 'lab', the record is 'imaging'/);
    const other = pre.publicKeys(pre.generatePatientKey('patient-other'));
    assert.throws(() => pre.convert(rk, pre.encrypt(other, 'lab', 'x', utf8('x'))), AccessDeniedError);
    assert.throws(() => pre.decrypt(pre.generatePatientKey('patient-other'), pre.encrypt(bundle, 'lab', 'x', utf8('x'))), /different patient key/);
  });

  test('a single-record grant converts that record only', () => {
    const first = pre.encrypt(bundle, 'notes', 'note-1', utf8('first'));
    const second = pre.encrypt(bundle, 'notes', 'note-2', utf8('second'));
    const grant = pre.delegateRecord(patient, pre.openRecordHeader(first), ta.publicKey, 'role:emergency');
    const er = pre.createReader(abe.keygen(ta.masterKey, 'role:emergency'));
    assert.deepEqual(er.decrypt(pre.convert(grant, first)), utf8('first'));
    assert.throws(() => pre.convert(grant, second), /shares record 'note-1' only/);
  });

  test('after rotation, an old-epoch key converts nothing new, and the patient still reads both epochs', () => {
    const oldRk = pre.delegate(patient, 'medication', ta.publicKey, POLICY);
    const rotated = pre.rotate(patient, 'medication');
    const newBundle = pre.publicKeys(rotated);
    const fresh = pre.encrypt(newBundle, 'medication', 'm2', utf8('new'));
    assert.throws(() => pre.convert(oldRk, fresh), /another key of category 'medication' \(epoch 1, record epoch 2\)/);
    assert.deepEqual(pre.decrypt(rotated, fresh), utf8('new'));
    assert.deepEqual(pre.decrypt(rotated, pre.encrypt(bundle, 'medication', 'm1', utf8('old'))), utf8('old'));
  });
});

describe('PRE collusion boundary', () => {
  test('proxy + authorised reader recover g2^{a_lab}: it opens lab records only, never imaging or a new lab epoch', () => {
    const rk = pre.delegate(patient, 'lab', ta.publicKey, POLICY);
    assert.equal(rk.scope.kind, 'category');
    // The reader learns X from rk2; with the proxy's rk1 the pair computes rk1 − H(X) = g2^{a_lab}.
    const x = abe.decapsulate(cardiologist, abe.openHeader(rk.rk2));
    const stolen = c.g2Add(
      rk.scope.kind === 'category' ? rk.scope.rk1 : c.g2Generator(),
      c.g2Mul(scheme.delegationHash(x, rk.delegationId, rk.rk2), c.frFromBigInt(-1n)),
    );
    const openWith = (ct: Uint8Array) => {
      const header = pre.openRecordHeader(ct);
      return scheme.decapsulate(stolen, header.core.c1, header.c2).isEqual(pre.recordSecret(patient, header));
    };
    assert.equal(openWith(pre.encrypt(bundle, 'lab', 'l', utf8('x'))), true, 'lab: already authorised');
    assert.equal(openWith(pre.encrypt(bundle, 'imaging', 'i', utf8('x'))), false, 'imaging stays closed');
    const rotated = pre.rotate(patient, 'lab');
    const header = pre.openRecordHeader(pre.encrypt(pre.publicKeys(rotated), 'lab', 'l2', utf8('x')));
    assert.equal(scheme.decapsulate(stolen, header.core.c1, header.c2).isEqual(pre.recordSecret(rotated, header)), false, 'new epoch stays closed');
  });

  test('public-g2-key-decrypts-anything: the construction with pk = g2^a is decryptable from public data; ours is not', () => {
    const a = c.randomFr();
    const r = c.randomFr();
    const R = c.randomGT();
    const g1 = c.g1Generator();
    // As first proposed: pk = g2^a, c1 = g1^r, c2 = R·e(g1, pk)^r — and e(c1, pk) is computable by anyone.
    const naivePk = c.g2Mul(c.g2Generator(), a);
    const naive = { c1: c.g1Mul(g1, r), c2: c.gtMul(R, c.gtPow(c.pairing(g1, naivePk), r)) };
    assert.ok(c.gtDiv(naive.c2, c.pairing(naive.c1, naivePk)).isEqual(R));
    // MedShare publishes e(g1,g2)^a in GT: there is no G2 element to pair c1 with, and the published key
    // raised to nothing public gives R (the best public pairing, e(c1, g2), lacks the secret a).
    const ours = scheme.encapsulate(scheme.categoryPublicKey(a));
    assert.ok(!c.gtDiv(ours.c2, c.pairing(ours.c1, c.g2Generator())).isEqual(ours.R));
    assert.ok(bundle.categories.every((k) => k.key.serialize().length === c.GT_BYTES));
  });
});

describe('PRE tamper and hostile input', () => {
  test('flipping any byte of a record ciphertext or a converted one is detected', () => {
    const rk = pre.delegate(patient, 'lab', ta.publicKey, 'role:emergency');
    const er = pre.createReader(abe.keygen(ta.masterKey, 'role:emergency'));
    const ct = pre.encrypt(bundle, 'lab', 'r', randomBytes(30));
    const converted = pre.convert(rk, ct);
    for (const [bytes, open] of [
      [ct, (b: Uint8Array) => pre.decrypt(patient, b)],
      [converted, (b: Uint8Array) => er.decrypt(b)],
    ] as const) {
      for (let i = 4; i < bytes.length; i += 3) {
        const bad = bytes.slice();
        bad[i]! ^= 0x10;
        assert.throws(() => open(bad), IntegrityError, `byte ${i}`);
      }
    }
  });

  test('each component tampered behind a valid checksum is caught: c1, c2, header fields, payload, rk', () => {
    const ct = pre.encrypt(bundle, 'lab', 'rec-42', utf8('payload'));
    const header = pre.openRecordHeader(ct);
    const coreLength = header.core.bytes.length;
    // c2 multiplied by a GT element: R changes, the AEAD fails.
    const c2Tampered = reseal(ct, (body) => {
      const copy = body.slice();
      copy.set(c.gtToBytes(c.gtMul(header.c2, c.randomGT())), coreLength);
      return copy;
    });
    assert.throws(() => pre.decrypt(patient, c2Tampered), IntegrityError);
    // c1 replaced by another valid point: R changes, the AEAD fails.
    const c1Tampered = reseal(ct, (body) => {
      const copy = body.slice();
      copy.set(c.g1ToBytesUncompressed(c.g1Mul(c.g1Generator(), c.randomFr())), coreLength - 4 - 96);
      return copy;
    });
    assert.throws(() => pre.decrypt(patient, c1Tampered), IntegrityError);
    // The record id rewritten (same length): bound into the payload key, so the AEAD fails.
    const idTampered = reseal(ct, (body) => new Uint8Array(Buffer.from(Buffer.from(body).toString('latin1').replace('rec-42', 'rec-43'), 'latin1')));
    assert.throws(() => pre.decrypt(patient, idTampered), IntegrityError);
    // A tampered rk1 converts to garbage that the reader's AEAD rejects.
    const rk = pre.delegate(patient, 'lab', ta.publicKey, 'role:emergency');
    const forged: pre.ReEncryptionKey = { ...rk, scope: { kind: 'category', rk1: c.g2Mul(c.g2Generator(), c.randomFr()) } };
    assert.throws(() => pre.createReader(abe.keygen(ta.masterKey, 'role:emergency')).decrypt(pre.convert(forged, ct)), IntegrityError);
  });

  test('a c1 outside the prime-order subgroup (checksum recomputed) is refused before any pairing', () => {
    const ct = pre.encrypt(bundle, 'lab', 'rec-9', utf8('x'));
    const coreLength = pre.openRecordHeader(ct).core.bytes.length;
    const rogue = nonSubgroupG1();
    const forged = reseal(ct, (body) => {
      const copy = body.slice();
      copy.set(rogue, coreLength - 4 - 96);
      return copy;
    });
    assert.throws(
      () => pre.decrypt(patient, forged),
      (e: unknown) => e instanceof MalformedInputError && /c1: not in the prime-order subgroup/.test(e.message),
    );
    assert.throws(() => pre.convert(pre.delegate(patient, 'lab', ta.publicKey, POLICY), forged), /c1: not in the prime-order subgroup/);
  });

  test('truncated, random, wrong-type and oversized inputs are typed errors', () => {
    const rk = pre.encodeReEncryptionKey(pre.delegate(patient, 'lab', ta.publicKey, POLICY));
    for (let n = 0; n < rk.length; n += 11) assert.throws(() => pre.decodeReEncryptionKey(rk.subarray(0, n)), MedShareError);
    assert.throws(() => pre.decodePatientKey(rk), /expected a patient secret key, got a re-encryption key/);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => void assert.throws(() => pre.openRecordHeader(bytes), MedShareError)));
    assert.throws(() => pre.encrypt(bundle, 'LAB', 'x', utf8('x')), MalformedInputError);
    assert.throws(() => pre.encrypt(bundle, 'lab', 'x'.repeat(300), utf8('x')), /record id must be 1 to 256 bytes/);
    assert.throws(() => pre.generatePatientKey('p', ['lab', 'lab']), /distinct/);
  });
});
