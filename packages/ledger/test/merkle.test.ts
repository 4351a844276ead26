import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EMPTY_ROOT, hashLeaf } from '../src/hashing.ts';
import { IntegrityError } from '@medshare/crypto';
import { MerkleTree, type TreeChunk } from '../src/tree.ts';
import { verifyConsistency, verifyInclusion } from '../src/proofs.ts';

// RFC 6962/9162 reference vectors, as published by transparency-dev/merkle (testonly/constants.go).
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const INCLUSION = [
  {
    index: 0,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];
const CONSISTENCY = [
  {
    first: 2,
    second: 8,
    proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'],
  },
  {
    first: 6,
    second: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    first: 2,
    second: 5,
    proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'],
  },
];

const hex = (proof: Buffer[]) => proof.map((h) => h.toString('hex'));
const unhex = (hashes: string[]) => hashes.map((h) => Buffer.from(h, 'hex'));

function treeOf(leafHashes: Buffer[]): MerkleTree {
  const tree = new MerkleTree();
  for (const hash of leafHashes) tree.append(hash);
  return tree;
}

const reference = treeOf(LEAVES.map((l) => hashLeaf(Buffer.from(l, 'hex'))));

test('roots of sizes 0..8 match the RFC 6962 reference vectors', () => {
  assert.equal(EMPTY_ROOT.toString('hex'), ROOTS[0]);
  for (let size = 0; size <= 8; size++) assert.equal(reference.rootHash(size).toString('hex'), ROOTS[size], `size ${size}`);
});

test('inclusion proofs match the reference vectors and verify', () => {
  for (const { index, size, proof } of INCLUSION) {
    assert.deepEqual(hex(reference.inclusionProof(index, size)), proof);
    assert.ok(verifyInclusion(reference.leafHash(index), index, size, unhex(proof), Buffer.from(ROOTS[size]!, 'hex')));
  }
});

test('consistency proofs match the reference vectors and verify', () => {
  for (const { first, second, proof } of CONSISTENCY) {
    assert.deepEqual(hex(reference.consistencyProof(first, second)), proof);
    assert.ok(verifyConsistency(first, second, unhex(proof), Buffer.from(ROOTS[first]!, 'hex'), Buffer.from(ROOTS[second]!, 'hex')));
  }
});

// A tree of 80 distinct leaves covers every shape of the recursion for sizes up to 80.
const leaves = Array.from({ length: 80 }, (_, i) => hashLeaf(Buffer.from(`entry ${i}`)));
const big = treeOf(leaves);

/** A proof altered in one of the ways an attacker could: flip a bit, drop, add, swap or replace a hash. */
const alteration = fc.record({ kind: fc.constantFrom('flip', 'drop', 'add', 'swap'), at: fc.nat(), bit: fc.nat(255) });
function alter(proof: Buffer[], { kind, at, bit }: { kind: string; at: number; bit: number }): Buffer[] | undefined {
  const copy = proof.map((h) => Buffer.from(h));
  const i = at % Math.max(copy.length, 1);
  if (kind === 'add') return [...copy, Buffer.alloc(32, 7)];
  if (copy.length === 0) return undefined;
  if (kind === 'flip') copy[i]![bit >> 3]! ^= 1 << (bit & 7);
  if (kind === 'drop') copy.splice(i, 1);
  if (kind === 'swap') {
    const j = (i + 1) % copy.length;
    if (copy[i]!.equals(copy[j]!)) return undefined;
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

test('property: every inclusion proof verifies, and any altered proof, index or size fails', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 80 }), fc.nat(), alteration, (size, pick, change) => {
      const index = pick % size;
      const proof = big.inclusionProof(index, size);
      const root = big.rootHash(size);
      assert.ok(verifyInclusion(leaves[index]!, index, size, proof, root));
      const altered = alter(proof, change);
      if (altered !== undefined) assert.ok(!verifyInclusion(leaves[index]!, index, size, altered, root));
      if (size > 1) assert.ok(!verifyInclusion(leaves[index]!, (index + 1) % size, size, proof, root));
      assert.ok(!verifyInclusion(leaves[(index + 1) % 80]!, index, size, proof, root));
    }),
    { numRuns: 400 },
  );
});

test('property: every consistency proof between any two sizes verifies, and any altered proof fails', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 80 }), alteration, (a, b, change) => {
      const [first, second] = a <= b ? [a, b] : [b, a];
      const proof = big.consistencyProof(first, second);
      const firstRoot = big.rootHash(first);
      const secondRoot = big.rootHash(second);
      assert.ok(verifyConsistency(first, second, proof, firstRoot, secondRoot));
      const altered = alter(proof, change);
      if (altered !== undefined) assert.ok(!verifyConsistency(first, second, altered, firstRoot, secondRoot));
      if (first < second && first > 0) {
        assert.ok(!verifyConsistency(first, second, proof, big.rootHash(first - 1), secondRoot));
        assert.ok(!verifyConsistency(first, second, proof, firstRoot, big.rootHash(second - 1)));
      }
    }),
    { numRuns: 600 },
  );
});

test('exhaustively: all inclusion and consistency proofs up to size 40 verify', () => {
  for (let second = 0; second <= 40; second++) {
    for (let index = 0; index < second; index++) {
      assert.ok(verifyInclusion(leaves[index]!, index, second, big.inclusionProof(index, second), big.rootHash(second)));
    }
    for (let first = 0; first <= second; first++) {
      assert.ok(verifyConsistency(first, second, big.consistencyProof(first, second), big.rootHash(first), big.rootHash(second)));
    }
  }
});

test('out-of-range requests are refused with a typed error; verifiers reject malformed input', () => {
  assert.throws(() => big.inclusionProof(80, 80), /not in a tree/);
  assert.throws(() => big.rootHash(81), /not between/);
  assert.throws(() => big.consistencyProof(5, 3), /first ≤ second/);
  assert.throws(() => new MerkleTree().append(Buffer.alloc(31)), /32 bytes/);
  const proof = big.inclusionProof(3, 10);
  assert.ok(!verifyInclusion(leaves[3]!, 3, 10, [Buffer.alloc(31), ...proof.slice(1)], big.rootHash(10)));
  assert.ok(!verifyInclusion(leaves[3]!, -1, 10, proof, big.rootHash(10)));
  assert.ok(!verifyInclusion(leaves[3]!, 3, Number.NaN, proof, big.rootHash(10)));
  assert.ok(!verifyConsistency(3, 10, [], big.rootHash(3), big.rootHash(10)));
  assert.ok(!verifyConsistency(10, 3, big.consistencyProof(3, 10), big.rootHash(10), big.rootHash(3)));
  assert.ok(!verifyConsistency(0, 10, [], big.rootHash(1), big.rootHash(10)));
});

test('the persisted chunks of a tree, written batch by batch, rebuild the same tree (proofs and roots)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 6 }), (batches) => {
      const tree = new MerkleTree();
      const stored = new Map<string, TreeChunk>();
      for (const batch of batches) {
        const before = tree.size;
        for (let i = 0; i < batch; i++) tree.append(hashLeaf(Buffer.from(`leaf ${tree.size}`)));
        for (const chunk of tree.chunksSince(before)) stored.set(`${chunk.level}/${chunk.chunk}`, { ...chunk, hashes: Uint8Array.from(chunk.hashes) });
      }
      const rebuilt = MerkleTree.fromChunks([...stored.values()].reverse());
      assert.equal(rebuilt.size, tree.size);
      assert.equal(rebuilt.firstDifference(tree), undefined);
      assert.deepEqual(rebuilt.rootHash(), tree.rootHash());
      const index = tree.size - 1;
      assert.deepEqual(rebuilt.inclusionProof(index), tree.inclusionProof(index));
      assert.deepEqual(rebuilt.consistencyProof(1), tree.consistencyProof(1));
      // It keeps growing like the original.
      rebuilt.append(hashLeaf(Buffer.from('next')));
      tree.append(hashLeaf(Buffer.from('next')));
      assert.deepEqual(rebuilt.rootHash(), tree.rootHash());
    }),
    { numRuns: 30 },
  );
});

test('chunks that do not form a tree are refused with IntegrityError; a changed node is found by firstDifference', () => {
  const tree = new MerkleTree();
  for (let i = 0; i < 2100; i++) tree.append(hashLeaf(Buffer.from([i & 255, i >> 8])));
  const chunks = tree.chunksSince(0);
  assert.throws(() => MerkleTree.fromChunks(chunks.filter((c) => !(c.level === 0 && c.chunk === 1))), IntegrityError);
  assert.throws(() => MerkleTree.fromChunks(chunks.filter((c) => c.level !== 3)), IntegrityError);
  assert.throws(() => MerkleTree.fromChunks(chunks.filter((c) => c.level < 11)), IntegrityError, 'top level missing');
  assert.throws(
    () => MerkleTree.fromChunks(chunks.map((c) => (c.level === 0 && c.chunk === 2 ? { ...c, hashes: c.hashes.subarray(0, 31) } : c))),
    IntegrityError,
  );
  const edited = chunks.map((c) => (c.level === 2 && c.chunk === 0 ? { ...c, hashes: Uint8Array.from(c.hashes).fill(1, 64 * 32, 65 * 32) } : c));
  assert.deepEqual(MerkleTree.fromChunks(edited).firstDifference(tree), { level: 2, index: 64 });
});
