import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import * as mcl from 'mcl-wasm';
import * as curve from '../src/curve/bls12381.ts';
import * as por from '../src/por/shacham-waters.ts';
import { LimitExceededError, MalformedInputError, UnsupportedError } from '../src/errors.ts';

before(() => curve.initCurve());

const utf8 = (s: string) => new TextEncoder().encode(s);
/** Small blocks in tests (4 sectors = 124 bytes) so files have many blocks at little cost. */
const S = 4;
const BLOCK = S * por.SECTOR_BYTES;

interface Fixture {
  keys: por.PorSecretKey[];
  files: { name: Uint8Array; data: Uint8Array; key: number; tags: por.TagSet }[];
}

function fixture(sizes: number[], ownerCount: number, keys = Array.from({ length: ownerCount }, () => por.generateKey())): Fixture {
  const files = sizes.map((size, i) => {
    const key = i % ownerCount;
    const name = utf8(`rec-${i}-${randomBytes(4).toString('hex')}`);
    const data = new Uint8Array(randomBytes(size));
    return { name, data, key, tags: por.tagFile(keys[key]!, name, data, S) };
  });
  return { keys, files };
}

function challengeOf(f: Fixture, samples: number, nonce = por.freshNonce()): por.Challenge {
  return { nonce, sectors: S, keys: f.keys.length, samples, files: f.files.map((x) => ({ name: x.name, blocks: x.tags.tags.length, key: x.key })) };
}

const stored = (f: Fixture) => f.files.map((x) => ({ data: x.data, tags: x.tags }));
const publicKeys = (f: Fixture) => f.keys.map((k) => k.publicKey);

/** Runs the audit as the auditor does: aggregate first, then per-file to name the failing files. */
function audit(f: Fixture, challenge: por.Challenge, held: por.StoredFile[]): { ok: boolean; failing: number[] } {
  const aggregate = por.decodeProof(por.encodeProof(por.prove(challenge, held)), challenge) as por.AggregateProof;
  if (por.verifyAggregate(challenge, publicKeys(f), aggregate)) return { ok: true, failing: [] };
  const perFile = por.decodeProof(por.encodeProof(por.prove(challenge, held, 'per-file')), challenge) as por.PerFileProof;
  return { ok: false, failing: por.failingFiles(challenge, publicKeys(f), perFile) };
}

test('honest proofs verify for random files, owners, sector counts and sample sizes (fast-check)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 1500 }), { minLength: 1, maxLength: 5 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 40 }),
      (sizes, owners, samples) => {
        const f = fixture(sizes, owners);
        const challenge = challengeOf(f, samples);
        const proof = por.prove(challenge, stored(f));
        assert.ok(por.verifyAggregate(challenge, publicKeys(f), proof as por.AggregateProof));
        const perFile = por.prove(challenge, stored(f), 'per-file') as por.PerFileProof;
        assert.deepEqual(por.failingFiles(challenge, publicKeys(f), perFile), []);
        f.files.forEach((x, i) => assert.ok(por.verifyTagSet(f.keys[x.key]!.publicKey, x.name, x.data, x.tags), `tag set ${i}`));
      },
    ),
    { numRuns: 12 },
  );
});

test('encodings round-trip: keys, tag sets and both kinds of proof', () => {
  const f = fixture([10, 700], 2);
  const challenge = challengeOf(f, 100);
  const key = f.keys[0]!;
  assert.ok(por.decodePublicKey(por.encodePublicKey(key.publicKey)).v.isEqual(key.publicKey.v));
  assert.ok(por.decodeSecretKey(por.encodeSecretKey(key)).publicKey.v.isEqual(key.publicKey.v));
  const tags = por.decodeTagSet(por.encodeTagSet(f.files[1]!.tags));
  assert.ok(tags.tags.every((t, i) => t.isEqual(f.files[1]!.tags.tags[i]!)));
  for (const kind of ['aggregate', 'per-file'] as const) {
    const bytes = por.encodeProof(por.prove(challenge, stored(f), kind));
    assert.deepEqual(por.encodeProof(por.decodeProof(bytes, challenge)), bytes);
  }
  // The aggregate's size depends on owners and sectors, not on files: 5 + 48 + keys × sectors × 32.
  assert.equal(por.encodeProof(por.prove(challenge, stored(f))).length, 5 + 48 + 2 * S * 32);
});

/** One damaged block of one file, as a cloud that lost or altered data would hold it. */
const damages = ['lose-block', 'flip-byte', 'truncate', 'swap-within', 'swap-across', 'drop-tag', 'forge-tag'] as const;

function damage(f: Fixture, kind: (typeof damages)[number], file: number, block: number): por.StoredFile[] {
  const held = stored(f).map((x) => ({ data: new Uint8Array(x.data), tags: { sectors: S, tags: [...x.tags.tags] } }));
  const target = held[file]!;
  const blocks = target.tags.tags.length;
  const at = block * BLOCK;
  switch (kind) {
    case 'lose-block':
      target.data.fill(0, at, at + BLOCK);
      if (f.files[file]!.data.subarray(at, at + BLOCK).every((b) => b === 0)) target.data[at] = 1;
      break;
    case 'flip-byte':
      target.data[Math.min(at + 7, target.data.length - 1)]! ^= 0x40;
      break;
    case 'truncate':
      held[file] = { data: target.data.subarray(0, at), tags: { sectors: S, tags: target.tags.tags.slice(0, block) } };
      break;
    case 'swap-within': {
      // Swap block `block` with another block of the same file, data and tags together.
      const other = (block + 1) % blocks;
      const a = target.data.slice(at, at + BLOCK);
      const b = target.data.slice(other * BLOCK, other * BLOCK + BLOCK);
      target.data.set(b.subarray(0, Math.min(b.length, target.data.length - at)), at);
      target.data.set(a.subarray(0, Math.min(a.length, target.data.length - other * BLOCK)), other * BLOCK);
      [target.tags.tags[block], target.tags.tags[other]] = [target.tags.tags[other]!, target.tags.tags[block]!];
      break;
    }
    case 'swap-across': {
      // Replace the block with block 0 of another file of the same owner, its tag included.
      const donor = f.files.findIndex((x, i) => i !== file && x.key === f.files[file]!.key);
      const src = f.files[donor]!;
      const bytes = new Uint8Array(BLOCK);
      bytes.set(src.data.subarray(0, BLOCK));
      if (target.data.length < at + BLOCK) held[file] = { data: new Uint8Array([...target.data.subarray(0, at), ...bytes]), tags: target.tags };
      else target.data.set(bytes, at);
      held[file]!.tags.tags[block] = src.tags.tags[0]!;
      break;
    }
    case 'drop-tag':
      target.tags.tags.splice(block, 1);
      break;
    case 'forge-tag':
      // A tag under a key the cloud made up, on the genuine data: the cloud cannot tag for the hospital.
      target.tags.tags[block] = por.tagFile(por.generateKey(), f.files[file]!.name, target.data, S).tags[block]!;
      break;
  }
  return held;
}

test('a cloud that lost, altered or swapped one block of one record is caught, and the audit names that record (fast-check)', () => {
  // Six files of two owners (3 to 12 blocks each); the sample covers every block, so one damaged block is always hit.
  const f = fixture([400, 1500, 900, 1000, 373, 1200], 2);
  const total = f.files.reduce((n, x) => n + x.tags.tags.length, 0);
  fc.assert(
    fc.property(fc.constantFrom(...damages), fc.integer({ min: 0, max: f.files.length - 1 }), fc.nat(), (kind, file, blockSeed) => {
      const blocks = f.files[file]!.tags.tags.length;
      const block = kind === 'swap-across' ? blockSeed % Math.max(1, blocks - 1) : blockSeed % blocks;
      const challenge = challengeOf(f, total);
      const result = audit(f, challenge, damage(f, kind, file, block));
      assert.equal(result.ok, false, `${kind} of block ${block} of file ${file} passed the audit`);
      assert.deepEqual(result.failing, [file], kind);
    }),
    { numRuns: 30 },
  );
  assert.deepEqual(audit(f, challengeOf(f, total), stored(f)), { ok: true, failing: [] });
});

test('sampling: 460 blocks catch the deletion of 1 % of 10,000 blocks in >= 99 % of challenges (formula) and in practice', () => {
  assert.ok(por.detectionProbability(10_000, 100, 460) >= 0.99);
  assert.ok(por.detectionProbability(10_000, 100, 440) < 0.99, 'c = 460 is about the smallest sample that reaches 99 %');
  // The real sampler over 1,000 files of 10 blocks (names only: no tags are needed to choose blocks).
  const files = Array.from({ length: 1000 }, (_, i) => ({ name: utf8(`r${i}`), blocks: 10, key: i % 3 }));
  let caught = 0;
  const trials = 300;
  for (let t = 0; t < trials; t++) {
    const deleted = new Set<number>();
    while (deleted.size < 100) deleted.add(Math.floor(Math.random() * 10_000));
    const samples = por.expandChallenge({ nonce: por.freshNonce(), sectors: S, keys: 3, samples: 460, files });
    assert.equal(new Set(samples.map((s) => s.file * 10 + s.block)).size, 460, 'samples are distinct');
    if (t === 0) {
      // Coefficients come from B = [0, 2^128) (docs/crypto.md § 13), distinct, and use the whole range.
      const nus = samples.map((s) => curve.frToBigInt(s.coefficient));
      assert.ok(
        nus.every((nu) => nu < 1n << 128n),
        'coefficients below 2^128',
      );
      assert.equal(new Set(nus).size, 460, 'coefficients are distinct');
      assert.ok(
        nus.some((nu) => nu >= 1n << 127n),
        'coefficients use the top bit',
      );
    }
    if (samples.some((s) => deleted.has(s.file * 10 + s.block))) caught++;
  }
  // Expected 99 % (297 of 300); below 96 % would happen with probability < 1e-4 if the sampler were uniform.
  assert.ok(caught / trials >= 0.96, `caught ${caught} of ${trials}`);
});

test('sampled audit end to end: a cloud that deleted a tenth of the blocks fails a challenge of 60 of 300 blocks', () => {
  const f = fixture(
    Array.from({ length: 30 }, () => 10 * BLOCK),
    3,
  );
  const lost = (file: number) => (file * 7) % 10;
  const held = stored(f).map((x, i) => {
    const data = new Uint8Array(x.data);
    data.fill(0, lost(i) * BLOCK, (lost(i) + 1) * BLOCK);
    return { data, tags: x.tags };
  });
  // P(miss) = C(270,60)/C(300,60) < 1e-3; each sampled damaged block names its file.
  const challenge = challengeOf(f, 60);
  const result = audit(f, challenge, held);
  assert.equal(result.ok, false);
  const hitFiles = [
    ...new Set(
      por
        .expandChallenge(challenge)
        .filter((s) => s.block === lost(s.file))
        .map((s) => s.file),
    ),
  ].sort((a, b) => a - b);
  assert.deepEqual(result.failing, hitFiles);
});

test('replay: a proof for an earlier challenge fails against a fresh nonce', () => {
  const f = fixture([600, 900], 1);
  const old = challengeOf(f, 5);
  const oldProof = por.prove(old, stored(f)) as por.AggregateProof;
  assert.ok(por.verifyAggregate(old, publicKeys(f), oldProof));
  const fresh = challengeOf(f, 5);
  assert.equal(por.verifyAggregate(fresh, publicKeys(f), oldProof), false);
  // Even a challenge over the very same blocks (every block) has fresh coefficients.
  const all = challengeOf(f, 100);
  const replay = por.prove(all, stored(f)) as por.AggregateProof;
  assert.equal(por.verifyAggregate({ ...all, nonce: por.freshNonce() }, publicKeys(f), replay), false);
  const perFile = por.prove(all, stored(f), 'per-file') as por.PerFileProof;
  assert.deepEqual(por.failingFiles({ ...all, nonce: por.freshNonce() }, publicKeys(f), perFile), [0, 1]);
});

test('tamper: an altered σ or μ, μ moved between owners, a proof checked under another key, a challenge edited after the fact', () => {
  const f = fixture([500, 800, 300], 2);
  const challenge = challengeOf(f, 100);
  const proof = por.prove(challenge, stored(f)) as por.AggregateProof;
  const keys = publicKeys(f);
  assert.ok(por.verifyAggregate(challenge, keys, proof));
  const one = curve.frFromBigInt(1n);
  assert.equal(por.verifyAggregate(challenge, keys, { ...proof, sigma: curve.g1Add(proof.sigma, curve.g1Generator()) }), false);
  const bumped = proof.mu.map((m, k) => m.map((x, j) => (k === 1 && j === 2 ? curve.frAdd(x, one) : x)));
  assert.equal(por.verifyAggregate(challenge, keys, { ...proof, mu: bumped }), false);
  assert.equal(por.verifyAggregate(challenge, keys, { ...proof, mu: [proof.mu[1]!, proof.mu[0]!] }), false);
  assert.equal(por.verifyAggregate(challenge, [keys[1]!, keys[0]!], proof), false);
  assert.equal(por.verifyAggregate(challenge, [por.generateKey().publicKey, keys[1]!], proof), false);
  // Re-attribute a file to the other owner, or claim a file is shorter: the coefficients change with the challenge.
  const moved = { ...challenge, files: challenge.files.map((x, i) => (i === 2 ? { ...x, key: 1 - x.key } : x)) };
  assert.equal(por.verifyAggregate(moved, keys, proof), false);
  const shorter = { ...challenge, files: challenge.files.map((x, i) => (i === 1 ? { ...x, blocks: x.blocks - 1 } : x)) };
  assert.equal(por.verifyAggregate(shorter, keys, proof), false);
  // The cloud's upload check refuses tags that do not match the data, or that were made under another key.
  const x = f.files[1]!;
  const altered = new Uint8Array(x.data);
  altered[3]! ^= 1;
  assert.equal(por.verifyTagSet(f.keys[x.key]!.publicKey, x.name, altered, x.tags), false);
  assert.equal(por.verifyTagSet(f.keys[1 - x.key]!.publicKey, x.name, x.data, x.tags), false);
  assert.equal(por.verifyTagSet(f.keys[x.key]!.publicKey, utf8('another-record'), x.data, x.tags), false);
  assert.equal(por.verifyTagSet(f.keys[x.key]!.publicKey, x.name, x.data, { sectors: S, tags: x.tags.tags.slice(1) }), false);
  // The batched upload check over many files of one owner: one altered file among them is enough to fail it.
  const mine = f.files.filter((y) => y.key === 0).map((y) => ({ name: y.name, data: y.data, tags: y.tags }));
  assert.equal(por.verifyTagSets(f.keys[0]!.publicKey, mine), true);
  const oneBad = mine.map((y, i) => (i === mine.length - 1 ? { ...y, data: Uint8Array.from(y.data, (b, j) => (j === 5 ? b ^ 1 : b)) } : y));
  assert.equal(por.verifyTagSets(f.keys[0]!.publicKey, oneBad), false);
  const swappedTags = [
    { ...mine[0]!, tags: mine[1]!.tags },
    { ...mine[1]!, tags: mine[0]!.tags },
  ];
  assert.equal(por.verifyTagSets(f.keys[0]!.publicKey, swappedTags), false);
});

test('rogue keys: a public key without a valid proof of possession is refused', () => {
  const honest = por.generateKey().publicKey;
  // v' = g2^y · v^{-1}: the classic rogue key, whose discrete log the attacker does not know.
  const y = curve.randomFr();
  const rogue = curve.g2Add(curve.g2Mul(curve.g2Generator(), y), curve.g2Mul(honest.v, curve.frFromBigInt(-1n)));
  const bytes = por.encodePublicKey({ v: rogue, u: honest.u, pop: curve.g1Mul(curve.g1Generator(), y) });
  assert.throws(
    () => por.decodePublicKey(bytes),
    (e: unknown) => e instanceof MalformedInputError && /proof of possession/.test(e.message),
  );
  // Another key's proof of possession does not transfer.
  assert.throws(() => por.decodePublicKey(por.encodePublicKey({ v: honest.v, u: honest.u, pop: por.generateKey().publicKey.pop })), MalformedInputError);
});

/** A compressed G1 encoding of an on-curve point outside the r-order subgroup. */
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

test('hostile input: truncated, oversized, wrong-version and non-subgroup proofs, tags, keys and challenges get typed errors', () => {
  const f = fixture([300, 200], 1);
  const challenge = challengeOf(f, 10);
  const bytes = por.encodeProof(por.prove(challenge, stored(f)));
  const perFile = por.encodeProof(por.prove(challenge, stored(f), 'per-file'));
  const throwsA = (fn: () => unknown, type: new (...args: never[]) => Error, pattern?: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof type && (pattern === undefined || pattern.test((e as Error).message)));
  for (const cut of [0, 3, 4, 52, bytes.length - 1]) throwsA(() => por.decodeProof(bytes.subarray(0, cut), challenge), MalformedInputError);
  throwsA(() => por.decodeProof(new Uint8Array([...bytes, 0]), challenge), MalformedInputError, /expected/);
  throwsA(
    () =>
      por.decodeProof(
        Uint8Array.from(bytes, (b, i) => (i === 0 ? 2 : b)),
        challenge,
      ),
    UnsupportedError,
  );
  throwsA(
    () =>
      por.decodeProof(
        Uint8Array.from(bytes, (b, i) => (i === 1 ? 9 : b)),
        challenge,
      ),
    UnsupportedError,
  );
  throwsA(
    () =>
      por.decodeProof(
        Uint8Array.from(bytes, (b, i) => (i === 2 ? S + 1 : b)),
        challenge,
      ),
    MalformedInputError,
    /sectors/,
  );
  throwsA(
    () =>
      por.decodeProof(
        Uint8Array.from(bytes, (b, i) => (i === 4 ? 2 : b)),
        challenge,
      ),
    MalformedInputError,
    /keys/,
  );
  const badSigma = new Uint8Array(bytes);
  badSigma.set(nonSubgroupCompressed(), 5);
  throwsA(() => por.decodeProof(badSigma, challenge), MalformedInputError, /subgroup/);
  const offCurve = new Uint8Array(bytes);
  offCurve.set(new Uint8Array(48).fill(0x9f), 5);
  throwsA(() => por.decodeProof(offCurve, challenge), MalformedInputError);
  const bigScalar = new Uint8Array(bytes);
  bigScalar.set(new Uint8Array(32).fill(0xff), 53);
  throwsA(() => por.decodeProof(bigScalar, challenge), MalformedInputError, /modulo r/);
  // Per-file: more entries than files, an entry outside the challenge.
  const many = new Uint8Array(perFile);
  new DataView(many.buffer).setUint32(3, 1000);
  throwsA(() => por.decodeProof(many, challenge), LimitExceededError);
  const outside = new Uint8Array(perFile);
  new DataView(outside.buffer).setUint32(7, 7);
  throwsA(() => por.decodeProof(outside, challenge), MalformedInputError, /outside/);
  // Tag sets and keys.
  const tags = por.encodeTagSet(f.files[0]!.tags);
  throwsA(() => por.decodeTagSet(tags.subarray(0, 5)), MalformedInputError);
  throwsA(() => por.decodeTagSet(tags.subarray(0, tags.length - 1)), MalformedInputError);
  throwsA(() => por.decodeTagSet(Uint8Array.from(tags, (b, i) => (i === 0 ? 7 : b))), UnsupportedError);
  throwsA(() => por.decodeTagSet(Uint8Array.from(tags, (b, i) => (i === 2 ? 0xff : b))), LimitExceededError);
  const badTag = new Uint8Array(tags);
  badTag.set(nonSubgroupCompressed(), 6);
  throwsA(() => por.decodeTagSet(badTag), MalformedInputError, /subgroup/);
  // The prover's partial decoding checks the header the same way and every tag it decodes.
  throwsA(() => por.decodeTagsAt(badTag, [0]), MalformedInputError, /subgroup/);
  throwsA(() => por.decodeTagsAt(tags.subarray(0, tags.length - 1), [0]), MalformedInputError);
  const encoded = por.encodeTagSet(f.files[1]!.tags);
  const partial = por.decodeTagsAt(encoded, [1]);
  assert.ok(partial.tags[1]!.isEqual(f.files[1]!.tags.tags[1]!));
  assert.equal(partial.tags[0], undefined);
  const key = por.encodePublicKey(f.keys[0]!.publicKey);
  throwsA(() => por.decodePublicKey(key.subarray(0, key.length - 1)), MalformedInputError);
  throwsA(() => por.decodePublicKey(key.subarray(0, 1)), MalformedInputError);
  throwsA(() => por.decodePublicKey(Uint8Array.from(key, (b, i) => (i === 0 ? 9 : b))), UnsupportedError);
  throwsA(() => por.decodeSecretKey(new Uint8Array(32)), MalformedInputError);
  // Challenges: bad nonce, sizes beyond the limits, a file naming a missing key.
  throwsA(() => por.expandChallenge({ ...challenge, nonce: new Uint8Array(5) }), MalformedInputError, /nonce/);
  throwsA(() => por.expandChallenge({ ...challenge, samples: por.MAX_SAMPLES + 1 }), LimitExceededError);
  throwsA(() => por.expandChallenge({ ...challenge, keys: por.MAX_CHALLENGE_KEYS + 1 }), LimitExceededError);
  throwsA(() => por.expandChallenge({ ...challenge, files: [] }), MalformedInputError);
  throwsA(() => por.expandChallenge({ ...challenge, files: [{ name: utf8('x'), blocks: 1, key: 1 }] }), MalformedInputError, /key/);
  throwsA(() => por.expandChallenge({ ...challenge, files: [{ name: new Uint8Array(256), blocks: 1, key: 0 }] }), MalformedInputError);
  throwsA(() => por.expandChallenge({ ...challenge, files: [{ name: utf8('x'), blocks: 0, key: 0 }] }), MalformedInputError);
  throwsA(() => por.expandChallenge({ ...challenge, sectors: 0 }), MalformedInputError);
  throwsA(() => por.verifyAggregate(challenge, [], por.prove(challenge, stored(f)) as por.AggregateProof), MalformedInputError);
});

test('attack: published u_j^x would let a cloud that deleted the data answer with μ = 0 (why u_j^x stay at the gateway)', () => {
  // docs/crypto.md § 13: the hospitals' u-terms cannot share one pairing by publishing u_j^x. Given them, the cloud
  // strips H(name ‖ i)^x from each tag while it still holds the block, deletes the data, and passes every audit.
  const f = fixture([3 * BLOCK], 1);
  const x = curve.frFromBytes(por.encodeSecretKey(f.keys[0]!));
  const published = f.keys[0]!.publicKey.u.slice(0, S).map((u) => curve.g1Mul(u, x));
  const file = f.files[0]!;
  const stripped = file.tags.tags.map((tag, i) => curve.g1Add(tag, curve.g1Neg(curve.msmG1(published, sectorScalars(file.data, i)))));
  const challenge = challengeOf(f, 3);
  const samples = por.expandChallenge(challenge);
  const forged: por.AggregateProof = {
    kind: 'aggregate',
    sigma: curve.msmG1(
      samples.map((s) => stripped[s.block]!),
      samples.map((s) => s.coefficient),
    ),
    mu: [Array.from({ length: S }, () => new mcl.Fr())],
  };
  assert.ok(por.verifyAggregate(challenge, publicKeys(f), forged), 'the forgery passes: publishing u_j^x breaks soundness');
  // Without u_j^x (what the public key actually carries: v, the u_j and the proof of possession), the same zero-μ
  // answer built from the intact tags fails.
  assert.equal(por.encodePublicKey(f.keys[0]!.publicKey).length, 2 + curve.G2_BYTES + (por.DEFAULT_SECTORS + 1) * curve.G1_BYTES);
  const honestTags: por.AggregateProof = {
    ...forged,
    sigma: curve.msmG1(
      samples.map((s) => file.tags.tags[s.block]!),
      samples.map((s) => s.coefficient),
    ),
  };
  assert.equal(por.verifyAggregate(challenge, publicKeys(f), honestTags), false);
});

/** The sectors of block i computed independently of the scheme: big-endian 31-byte integers, zero-padded. */
function sectorScalars(data: Uint8Array, block: number, sectors = S): mcl.Fr[] {
  return Array.from({ length: sectors }, (_, j) => {
    const sector = new Uint8Array(por.SECTOR_BYTES);
    const at = (block * sectors + j) * por.SECTOR_BYTES;
    if (at < data.length) sector.set(data.subarray(at, Math.min(at + por.SECTOR_BYTES, data.length)));
    return curve.frFromBigInt(BigInt('0x' + Buffer.from(sector).toString('hex')));
  });
}

test('owner generators: tags equal (H(name ‖ i) · Π u_j^{m_ij})^x computed with explicit multiplications (fast-check)', () => {
  const key = por.generateKey(8);
  const x = curve.frFromBytes(por.encodeSecretKey(key));
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 700 }), fc.integer({ min: 1, max: 8 }), (data, sectors) => {
      const name = utf8(`slow-${data.length}-${sectors}`);
      const set = por.tagFile(key, name, data, sectors);
      set.tags.forEach((tag, i) => {
        const m = sectorScalars(data, i, sectors);
        let base = curve.hashToG1(blockMessage(name, i), 'MEDSHARE-POR-V01-BLOCK-BLS12381G1_XMD:SHA-256_SSWU_RO_');
        for (let j = 0; j < sectors; j++) base = curve.g1Add(base, curve.g1Mul(key.publicKey.u[j]!, m[j]!));
        assert.ok(tag.isEqual(curve.g1Mul(base, x)), `block ${i}`);
      });
    }),
    { numRuns: 12 },
  );
});

/** name length ‖ name ‖ block (4, big-endian): the message H binds, as the paper's name ‖ i. */
function blockMessage(name: Uint8Array, block: number): Uint8Array {
  const out = new Uint8Array(1 + name.length + 4);
  out[0] = name.length;
  out.set(name, 1);
  new DataView(out.buffer).setUint32(1 + name.length, block);
  return out;
}

test('attack: a cloud holding only the owner public key (its u_j included) cannot make an altered block pass', () => {
  // The cloud sees v, the u_j = g1^{α_j}, the proof of possession and the honest tags. Its best algebraic moves with
  // that view: keep the old tag for altered data, or adjust the tag by Π u_j^{Δm_j} (it lacks x, so the adjustment
  // is not raised to x). Both fail at upload and in an audit.
  const f = fixture([2 * BLOCK], 1);
  const file = f.files[0]!;
  const key = f.keys[0]!.publicKey;
  const altered = new Uint8Array(file.data);
  altered[3] = altered[3]! ^ 0x40;
  const delta = sectorScalars(altered, 0).map((m, j) => curve.frSub(m, sectorScalars(file.data, 0)[j]!));
  const adjusted = curve.g1Add(file.tags.tags[0]!, curve.msmG1(key.u.slice(0, S), delta));
  for (const tag0 of [file.tags.tags[0]!, adjusted]) {
    const tags = { sectors: S, tags: [tag0, file.tags.tags[1]!] };
    assert.equal(por.verifyTagSet(key, file.name, altered, tags), false);
    const challenge = challengeOf(f, 2);
    const proof = por.prove(challenge, [{ data: altered, tags }]) as por.AggregateProof;
    assert.equal(por.verifyAggregate(challenge, [key], proof), false);
  }
  // The honest data with its tags passes, and the exponent e = Σ x·α_j m_j is not public: the key carries no
  // multiple of x in G1 beyond the proof of possession, which signs another message.
  assert.equal(por.verifyTagSet(key, file.name, file.data, file.tags), true);
});

test('attack: the α_j leaked would let a cloud keep one scalar per block instead of the data (why α_j stay with x)', () => {
  // docs/crypto.md § 13: Π u_j^{μ_j} = g1^{Σ α_j μ_j}, so a cloud that knows the α_j may keep e_i = Σ_j α_j m_ij
  // per block, delete the data, and answer any μ with Σ α_j μ_j = Σ ν_i e_i.
  const f = fixture([3 * BLOCK], 1);
  const x = curve.frFromBytes(por.encodeSecretKey(f.keys[0]!));
  const alphas = f.keys[0]!.xAlpha.slice(0, S).map((xa) => curve.frMul(xa, curve.frInv(x)));
  const file = f.files[0]!;
  const kept = file.tags.tags.map((_, i) => sectorScalars(file.data, i).reduce((e, m, j) => curve.frAdd(e, curve.frMul(alphas[j]!, m)), new mcl.Fr()));
  const challenge = challengeOf(f, 3);
  const samples = por.expandChallenge(challenge);
  const target = samples.reduce((e, s) => curve.frAdd(e, curve.frMul(s.coefficient, kept[s.block]!)), new mcl.Fr());
  const mu = Array.from({ length: S }, (_, j) => (j === 0 ? curve.frMul(target, curve.frInv(alphas[0]!)) : new mcl.Fr()));
  const forged: por.AggregateProof = {
    kind: 'aggregate',
    sigma: curve.msmG1(
      samples.map((s) => file.tags.tags[s.block]!),
      samples.map((s) => s.coefficient),
    ),
    mu: [mu],
  };
  assert.ok(por.verifyAggregate(challenge, publicKeys(f), forged), 'the forgery passes: the α_j are as secret as x');
  // The public key carries the u_j only: the α_j are derived from x at the owner and never encoded.
  assert.equal(por.encodeSecretKey(f.keys[0]!).length, curve.FR_BYTES);
});

test('owner keys: version-1 keys are refused naming the version; repeated, identity or too few generators are refused', () => {
  const key = por.generateKey(4);
  const bytes = por.encodePublicKey(key.publicKey);
  assert.equal(bytes.length, 2 + curve.G2_BYTES + 5 * curve.G1_BYTES);
  assert.ok(por.decodePublicKey(bytes).u.every((u, j) => u.isEqual(key.publicKey.u[j]!)));
  // A version-1 key (version ‖ v ‖ proof of possession, global generators).
  const v1 = new Uint8Array(1 + curve.G2_BYTES + curve.G1_BYTES);
  v1[0] = 1;
  v1.set(curve.g2ToBytes(key.publicKey.v), 1);
  v1.set(curve.g1ToBytes(key.publicKey.pop), 1 + curve.G2_BYTES);
  assert.throws(
    () => por.decodePublicKey(v1),
    (e: unknown) => e instanceof UnsupportedError && /version 1 /.test((e as Error).message),
  );
  const at = (j: number) => 2 + curve.G2_BYTES + j * curve.G1_BYTES;
  const repeated = new Uint8Array(bytes);
  repeated.copyWithin(at(1), at(0), at(1));
  assert.throws(
    () => por.decodePublicKey(repeated),
    (e: unknown) => e instanceof MalformedInputError && /repeats/.test((e as Error).message),
  );
  const identity = new Uint8Array(bytes);
  identity.set(curve.g1ToBytes(new mcl.G1()), at(2));
  assert.throws(() => por.decodePublicKey(identity), MalformedInputError);
  const nonSubgroup = new Uint8Array(bytes);
  nonSubgroup.set(nonSubgroupCompressed(), at(3));
  assert.throws(
    () => por.decodePublicKey(nonSubgroup),
    (e: unknown) => e instanceof MalformedInputError && /subgroup/.test((e as Error).message),
  );
  // A generator replaced by another valid point: the proof of possession covers the u_j.
  const swapped = new Uint8Array(bytes);
  swapped.set(curve.g1ToBytes(curve.g1Generator()), at(0));
  assert.throws(
    () => por.decodePublicKey(swapped),
    (e: unknown) => e instanceof MalformedInputError && /proof of possession/.test((e as Error).message),
  );
  for (const count of [0, 5]) {
    const wrongCount = Uint8Array.from(bytes, (b, i) => (i === 1 ? count : b));
    assert.throws(() => por.decodePublicKey(wrongCount), MalformedInputError);
  }
  // Tags and challenges with more sectors than the key has generators.
  assert.throws(() => por.tagFile(key, utf8('n'), new Uint8Array(10), 5), MalformedInputError);
  const six = por.tagFile(por.generateKey(6), utf8('n'), new Uint8Array(10), 6);
  assert.equal(por.verifyTagSet(key.publicKey, utf8('n'), new Uint8Array(10), six), false);
});
