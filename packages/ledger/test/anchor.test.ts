/**
 * The LedgerAnchor contract on a real JSON-RPC node (one ganache process for this file), driven through the same
 * ethers client a consortium chain is reached with. Each griefing attack of issue #13 is a regression test by name.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import Fastify from 'fastify';
import { SigningKey, Wallet } from 'ethers';
import { AccessDeniedError, IntegrityError, MalformedInputError, NotFoundError } from '@medshare/crypto';
import { openDatabase, type Database } from '@medshare/db';
import {
  AnchorClient,
  AuditLog,
  anchorClientFromEnv,
  chainCosignatureDigest,
  checkChainCosignature,
  checkpointBodyHash,
  collectCosignatures,
  originHash,
  formatCheckpoint,
  generateCheckpointKey,
  hashChildren,
  hashLeaf,
  HttpChainCosigner,
  HttpCosigner,
  MerkleTree,
  signNote,
  verifyCheckpointNote,
  Witness,
  witnessPlugin,
  WitnessConflictError,
  type ChainCosigner,
} from '../src/index.ts';
import { accessEvent, hashName } from './fixtures.ts';
import { startGanache, type GanacheNode } from './ganache.ts';

// solc-js takes seconds: it recompiles in a child process from the start, beside the chain tests.
const recompiled = new Promise<string>((resolve, reject) => {
  const script = fileURLToPath(new URL('../../../scripts/compile-ledger-contract.ts', import.meta.url));
  execFile(process.execPath, ['--import', 'tsx', script, '--stdout'], { maxBuffer: 64 << 20 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
});
const ORIGIN = 'medshare.test/audit';
const logKey = generateCheckpointKey(ORIGIN);
let node: GanacheNode;
let db: Database;
let log: AuditLog;
let witnesses: Witness[];
const chainKeys = ['a', 'b', 'c'].map(() => new SigningKey(randomBytes(32)));
let admin: Wallet;
let anchorer: Wallet;
let attacker: Wallet;

before(async () => {
  node = await startGanache();
  [admin, anchorer, attacker] = [node.wallet(0), node.wallet(1), node.wallet(2)];
  db = await openDatabase();
  witnesses = await Promise.all(
    ['a', 'b', 'c'].map((h, i) =>
      Witness.open(db, generateCheckpointKey(`hospital-${h}.test/witness`).signer, logKey.signer.verifier, { chainKey: chainKeys[i]! }),
    ),
  );
  log = await AuditLog.open(db, logKey.signer, { cosigners: witnesses });
});
after(async () => {
  await log.flush();
  await db.close();
  await node.stop();
});

/** A contract with the log registered: `anchorer` anchors it with 2 of the 3 witnesses' cosignatures. */
async function registeredContract(): Promise<{ asAdmin: AnchorClient; asAnchorer: AnchorClient }> {
  const asAdmin = await AnchorClient.deploy(admin);
  await asAdmin.configureLog(
    ORIGIN,
    anchorer.address,
    witnesses.map((w) => w.address),
    2,
  );
  return { asAdmin, asAnchorer: asAdmin.as(anchorer) };
}

/** Appends `n` entries and has the witnesses cosign the new checkpoint (their C2SP checks run first). */
async function grow(n: number, label: string): Promise<string> {
  for (let i = 0; i < n; i++) await log.append(accessEvent(`${label}${i}`));
  return collectCosignatures(log, witnesses);
}

const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`;

test('the registered anchorer anchors witnessed checkpoints with consistency proofs; anyone proves them from the chain', async () => {
  const { asAnchorer } = await registeredContract();
  await grow(5, 'p');
  const first = await asAnchorer.anchorLatest(log, logKey.signer.verifier, witnesses);
  assert.equal(first.treeSize, log.size);
  const firstSize = log.size;
  await grow(6, 'q');
  const second = await asAnchorer.anchorLatest(log, logKey.signer.verifier, witnesses);
  assert.equal(second.treeSize, firstSize + 6);
  assert.ok(second.blockNumber > first.blockNumber);
  const reader = AnchorClient.connect(await asAnchorer.address(), node.provider);
  assert.equal((await reader.proveAnchored(await log.checkpoint(firstSize), logKey.signer.verifier)).blockNumber, first.blockNumber);
  assert.equal((await reader.proveAnchored(await log.checkpoint(), logKey.signer.verifier)).treeSize, log.size);
  await assert.rejects(reader.proveAnchored(await log.checkpoint(firstSize + 1), logKey.signer.verifier), /never anchored/);
  // Anchoring again is a no-op that proves the existing anchor.
  assert.equal((await asAnchorer.anchorLatest(log, logKey.signer.verifier, witnesses)).blockNumber, second.blockNumber);
});

test('griefing: a made-up 64-hash consistency proof to size 2^63 cannot freeze the log', async () => {
  const { asAnchorer } = await registeredContract();
  await grow(Math.max(1, 21 - log.size), 'g');
  await asAnchorer.anchorLatest(log, logKey.signer.verifier, witnesses);
  const anchored = log.size;
  // The attack: a tree whose first `anchored` leaves are the real ones and whose every other subtree is made up.
  // Its consistency proof is valid RFC 9162 math, which the contract's verifier alone accepts.
  const fake = new MerkleTree();
  for (let i = 0; i < anchored; i++) fake.append((await log.entry(i)).leafHash);
  const width = 2 ** Math.ceil(Math.log2(anchored + 1));
  for (let i = anchored; i < width; i++) fake.append(randomBytes(32));
  const proof = fake.consistencyProof(anchored, width);
  let root = fake.rootHash(width);
  for (let w = width; w < 2 ** 63; w *= 2) {
    const madeUp = randomBytes(32);
    proof.push(madeUp);
    root = hashChildren(root, madeUp);
  }
  const huge = 2n ** 63n;
  const verify = asAnchorer.contract.getFunction('verifyConsistency');
  assert.equal(await verify(anchored, huge, hex(log.rootHash(anchored)), hex(root), proof.map(hex)), true, 'the crafted proof is valid math');
  // Sent by the registered anchorer itself: no witness quorum cosigned such a checkpoint.
  await assert.rejects(
    asAnchorer.contract
      .getFunction('anchorCheckpoint')(ORIGIN, huge, hex(root), proof.map(hex), [])
      .then((tx: { wait(): Promise<unknown> }) => tx.wait()),
    /QuorumNotMet|revert/,
  );
  // The witnesses refuse to cosign it: it is not signed by the log (their C2SP checks).
  const unsigned = signNote(formatCheckpoint({ origin: ORIGIN, size: 2 ** 40, rootHash: root }), [generateCheckpointKey(ORIGIN).signer], 0);
  await assert.rejects(witnesses[0]!.chainCosign(unsigned), IntegrityError);
  // Honest anchoring goes on.
  await grow(2, 'h');
  assert.equal((await asAnchorer.anchorLatest(log, logKey.signer.verifier, witnesses)).treeSize, log.size);
});

test('griefing: squatting the first anchor of a log is refused (unregistered origin, unregistered account, no quorum)', async () => {
  const asAdmin = await AnchorClient.deploy(admin);
  const note = await grow(1, 's');
  const checkpoint = verifyCheckpointNote(note, logKey.signer.verifier);
  const cosignatures = await Promise.all(witnesses.map((w) => w.chainCosign(note)));
  // Nobody, not even the admin, anchors a log the admin has not registered.
  await assert.rejects(asAdmin.as(attacker).anchorCheckpoint(checkpoint, [], cosignatures), NotFoundError);
  await assert.rejects(asAdmin.anchorCheckpoint(checkpoint, [], cosignatures), NotFoundError);
  await asAdmin.configureLog(
    ORIGIN,
    anchorer.address,
    witnesses.map((w) => w.address),
    2,
  );
  // Registered: only its anchorer, and only with the quorum, even for the first anchor.
  await assert.rejects(asAdmin.as(attacker).anchorCheckpoint(checkpoint, [], cosignatures), AccessDeniedError);
  await assert.rejects(asAdmin.as(anchorer).anchorCheckpoint(checkpoint, [], cosignatures.slice(0, 1)), /quorum/);
  // One witness signing twice is one witness.
  await assert.rejects(asAdmin.as(anchorer).anchorCheckpoint(checkpoint, [], [cosignatures[0]!, cosignatures[0]!]), /quorum/);
  // A signature by a key the contract does not list does not count.
  const stranger = new SigningKey(randomBytes(32)).sign(chainCosignatureDigest(checkpoint)).serialized;
  await assert.rejects(asAdmin.as(anchorer).anchorCheckpoint(checkpoint, [], [cosignatures[0]!, stranger]), /quorum/);
  assert.equal((await asAdmin.as(anchorer).anchorCheckpoint(checkpoint, [], cosignatures.slice(1))).treeSize, checkpoint.size);
});

test('griefing: checkpointHash is computed on chain from origin, size and root, so no false fork alarm can be planted', async () => {
  const { asAnchorer } = await registeredContract();
  const note = await grow(1, 'c');
  await asAnchorer.anchorLatest(log, logKey.signer.verifier, witnesses);
  const checkpoint = verifyCheckpointNote(note, logKey.signer.verifier);
  const anchor = await asAnchorer.contract.getFunction('anchorOf')(originHash(ORIGIN), checkpoint.size);
  assert.equal(anchor.checkpointHash, checkpointBodyHash(checkpoint));
  // The anchor call takes no checkpoint hash at all; a same-size checkpoint with another root is a real fork.
  const forged = signNote(formatCheckpoint({ origin: ORIGIN, size: checkpoint.size, rootHash: randomBytes(32) }), [logKey.signer], 0);
  await assert.rejects(asAnchorer.proveAnchored(forged, logKey.signer.verifier), /fork/);
  // On-chain and off-chain checkpoint hashes agree on arbitrary origins, sizes and roots.
  const onChain = asAnchorer.contract.getFunction('checkpointHashOf');
  await fc.assert(
    fc.asyncProperty(
      fc.stringMatching(/^[a-z0-9.\-/]{1,40}$/),
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      async (origin, size, root) => {
        assert.equal(await onChain(origin, size, hex(root)), checkpointBodyHash({ origin, size, rootHash: Buffer.from(root) }));
      },
    ),
    { numRuns: 25 },
  );
});

test('griefing: consent records are tied to (origin, entry index) by an inclusion proof, and cannot be replayed', async () => {
  const { asAdmin, asAnchorer } = await registeredContract();
  const policyHash = hashName('policy: role:emergency');
  const grant = await log.append({ ...accessEvent('consenting'), type: 'consent-grant', policyHash, records: [] });
  const revoke = await log.append({ ...accessEvent('consenting'), type: 'consent-revoke', policyHash, records: [] });
  await collectCosignatures(log, witnesses);
  // Not before the entry is in an anchored checkpoint.
  await assert.rejects(asAnchorer.recordConsentEntry(log, await log.entry(grant.index)), /not in an anchored checkpoint/);
  await asAnchorer.anchorLatest(log, logKey.signer.verifier, witnesses);
  // Only the log's anchorer records its consents.
  await assert.rejects(asAdmin.as(attacker).recordConsentEntry(log, await log.entry(grant.index)), AccessDeniedError);
  await asAnchorer.recordConsentEntry(log, await log.entry(grant.index));
  assert.equal(await asAnchorer.consentGranted(ORIGIN, policyHash), true);
  // Scoped to the log: the same consent hash is not granted in another log.
  assert.equal(await asAnchorer.consentGranted('other.test/audit', policyHash), false);
  const record = await asAnchorer.consentRecord(ORIGIN, grant.index);
  assert.deepEqual(record && { consentHash: record.consentHash, leafHash: record.leafHash, granted: record.granted }, {
    consentHash: `0x${policyHash.slice(7)}`,
    leafHash: hex(grant.leafHash),
    granted: true,
  });
  await asAnchorer.recordConsentEntry(log, await log.entry(revoke.index));
  assert.equal(await asAnchorer.consentGranted(ORIGIN, policyHash), false);
  // Replaying the earlier grant after the revocation is refused.
  await assert.rejects(asAnchorer.recordConsentEntry(log, await log.entry(grant.index)), /already recorded/);
  // A leaf hash that is not the entry's (a made-up consent) fails the on-chain inclusion check.
  const anchored = await asAnchorer.latestSize(ORIGIN);
  const made = asAnchorer.contract.getFunction('recordConsent');
  await assert.rejects(
    made(
      originHash(ORIGIN),
      revoke.index + 1 < anchored ? revoke.index + 1 : 0,
      hex(randomBytes(32)),
      anchored,
      log.inclusionProof(0, anchored).map(hex),
      hex(randomBytes(32)),
      true,
    ).then((tx: { wait(): Promise<unknown> }) => tx.wait()),
    /NotIncluded|revert/,
  );
  const access = await log.append(accessEvent('not-consent'));
  await assert.rejects(asAnchorer.recordConsentEntry(log, await log.entry(access.index)), /not a consent event/);
});

test('griefing: the admin is rotated in two steps, and the anchorer by the admin', async () => {
  const { asAdmin } = await registeredContract();
  const next = node.wallet(3);
  await assert.rejects(asAdmin.as(attacker).transferAdmin(attacker.address), AccessDeniedError);
  await asAdmin.transferAdmin(next.address);
  await assert.rejects(asAdmin.as(attacker).acceptAdmin(), AccessDeniedError);
  assert.equal(await asAdmin.admin(), admin.address);
  await asAdmin.as(next).acceptAdmin();
  assert.equal(await asAdmin.admin(), next.address);
  // The old admin lost every right; the new one rotates the log's anchorer.
  const addresses = witnesses.map((w) => w.address);
  await assert.rejects(asAdmin.configureLog(ORIGIN, attacker.address, addresses, 1), AccessDeniedError);
  const newAnchorer = node.wallet(4);
  await asAdmin.as(next).configureLog(ORIGIN, newAnchorer.address, addresses, 2);
  await grow(1, 'r');
  await assert.rejects(asAdmin.as(anchorer).anchorLatest(log, logKey.signer.verifier, witnesses), AccessDeniedError);
  assert.equal((await asAdmin.as(newAnchorer).anchorLatest(log, logKey.signer.verifier, witnesses)).treeSize, log.size);
  assert.deepEqual((await asAdmin.registration(ORIGIN)).anchorer, newAnchorer.address);
  // Configurations that would give no protection are refused.
  await assert.rejects(asAdmin.as(next).configureLog(ORIGIN, newAnchorer.address, addresses, 0), MalformedInputError);
  await assert.rejects(asAdmin.as(next).configureLog(ORIGIN, newAnchorer.address, [addresses[0]!, addresses[0]!], 1), MalformedInputError);
});

test('the contract refuses a forked history signed with the genuine log key and an old size', async () => {
  const { asAnchorer } = await registeredContract();
  await grow(1, 'f');
  await asAnchorer.anchorLatest(log, logKey.signer.verifier, witnesses);
  const anchoredSize = log.size;
  // A misbehaving log operator signs another history; a witness quorum shown only it (split view) cosigns it.
  {
    const split = await Promise.all(
      chainKeys.map((chainKey, i) => Witness.open(db, generateCheckpointKey(`split-${i}.test/witness`).signer, logKey.signer.verifier, { chainKey })),
    );
    const forged = new MerkleTree();
    for (let i = 0; i < anchoredSize + 4; i++) forged.append(hashLeaf(Buffer.from(`forged ${i}`)));
    const note = signNote(formatCheckpoint({ origin: ORIGIN, size: forged.size, rootHash: forged.rootHash() }), [logKey.signer], 1);
    const cosignatures: string[] = [];
    for (const w of split) {
      await w.addCheckpoint({ oldSize: 0, consistencyProof: [], note });
      cosignatures.push(await w.chainCosign(note));
    }
    await assert.rejects(
      asAnchorer.anchorCheckpoint(verifyCheckpointNote(note, logKey.signer.verifier), forged.consistencyProof(anchoredSize), cosignatures),
      /fork/,
    );
  }
  const current = verifyCheckpointNote(await log.checkpoint(), logKey.signer.verifier);
  await assert.rejects(asAnchorer.anchorCheckpoint(current, [], []), MalformedInputError);
});

test('the on-chain RFC 9162 consistency and inclusion checks agree with the TypeScript ones', async () => {
  const { asAnchorer } = await registeredContract();
  const tree = new MerkleTree();
  for (let i = 0; i < 40; i++) tree.append(hashLeaf(Buffer.from([i])));
  const consistency = asAnchorer.contract.getFunction('verifyConsistency');
  const inclusion = asAnchorer.contract.getFunction('verifyInclusion');
  for (const [first, second] of [
    [1, 2],
    [3, 7],
    [4, 8],
    [6, 8],
    [5, 40],
    [16, 33],
    [39, 40],
    [12, 12],
  ] as const) {
    const proof = tree.consistencyProof(first, second).map(hex);
    assert.equal(await consistency(first, second, hex(tree.rootHash(first)), hex(tree.rootHash(second)), proof), true, `${first}->${second}`);
    if (proof.length > 0) {
      const altered = [...proof];
      altered[0] = hex(Buffer.alloc(32, 1));
      assert.equal(await consistency(first, second, hex(tree.rootHash(first)), hex(tree.rootHash(second)), altered), false);
    }
  }
  for (const [index, size] of [
    [0, 1],
    [0, 2],
    [1, 2],
    [5, 7],
    [6, 7],
    [31, 40],
    [39, 40],
    [16, 33],
  ] as const) {
    const proof = tree.inclusionProof(index, size).map(hex);
    assert.equal(await inclusion(index, size, hex(tree.leafHash(index)), proof, hex(tree.rootHash(size))), true, `${index}@${size}`);
    assert.equal(
      await inclusion(index, size, hex(tree.leafHash((index + 1) % size)), proof, hex(tree.rootHash(size))),
      size === 1,
      `wrong leaf ${index}@${size}`,
    );
    assert.equal(await inclusion(size, size, hex(tree.leafHash(index)), proof, hex(tree.rootHash(size))), false);
  }
});

test('witnesses give chain cosignatures over HTTP only for the checkpoint they last cosigned', async () => {
  const app = Fastify();
  await app.register(witnessPlugin, { witnesses: [witnesses[0]!], prefix: '/witness' });
  await app.register(witnessPlugin, {
    witnesses: [await Witness.open(db, generateCheckpointKey('keyless.test/witness').signer, logKey.signer.verifier)],
    prefix: '/keyless',
  });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const note = await grow(1, 'w');
    const remote: ChainCosigner = new HttpChainCosigner(`${base}/witness`, witnesses[0]!.address);
    const signature = await remote.chainCosign(note);
    checkChainCosignature(verifyCheckpointNote(note, logKey.signer.verifier), signature, witnesses[0]!.address);
    assert.throws(() => checkChainCosignature(verifyCheckpointNote(note, logKey.signer.verifier), signature, witnesses[1]!.address), IntegrityError);
    // An older checkpoint than the one it cosigned: 409 with its size.
    const older = await log.checkpoint(log.size - 1);
    await assert.rejects(remote.chainCosign(older), (e: unknown) => e instanceof WitnessConflictError && e.witnessSize === log.size);
    await assert.rejects(new HttpChainCosigner(`${base}/keyless`, witnesses[0]!.address).chainCosign(note), NotFoundError);
    // The add-checkpoint route is unchanged beside it.
    assert.ok(new HttpCosigner(`${base}/witness`, witnesses[0]!.verifier) instanceof HttpCosigner);
  } finally {
    await app.close();
  }
});

test('LEDGER_RPC_URL: the client from the environment anchors and proves; missing settings are a clear error', async () => {
  await assert.rejects(anchorClientFromEnv({}), /LEDGER_RPC_URL/);
  const good = { LEDGER_RPC_URL: node.url, LEDGER_ANCHOR_ADDRESS: anchorer.address, LEDGER_PRIVATE_KEY: anchorer.privateKey };
  const refusals: Array<[Record<string, string>, RegExp]> = [
    [{ LEDGER_RPC_URL: 'ftp://127.0.0.1:9' }, /LEDGER_RPC_URL is not an http\(s\) URL/],
    [{ LEDGER_ANCHOR_ADDRESS: 'the-contract' }, /LEDGER_ANCHOR_ADDRESS is not a contract address/],
    [{ LEDGER_PRIVATE_KEY: 'not-a-key-but-a-secret-4711' }, /LEDGER_PRIVATE_KEY is not a secp256k1 private key/],
    // An account, not a contract: a mistyped address.
    [{}, /no contract is deployed there/],
    [{ LEDGER_RPC_URL: 'http://127.0.0.1:9/key-in-path-4711' }, /the chain node at http:\/\/127\.0\.0\.1:9 does not answer JSON-RPC/],
  ];
  for (const [change, expected] of refusals) {
    await assert.rejects(anchorClientFromEnv({ ...good, ...change }), (error: Error) => expected.test(error.message) && !error.message.includes('4711'));
  }
  const { asAnchorer } = await registeredContract();
  const env = { LEDGER_RPC_URL: node.url, LEDGER_PRIVATE_KEY: anchorer.privateKey, LEDGER_ANCHOR_ADDRESS: await asAnchorer.address() };
  const remote = await anchorClientFromEnv(env);
  const readOnly = await anchorClientFromEnv({ ...env, LEDGER_PRIVATE_KEY: '' });
  try {
    await grow(1, 'e');
    const receipt = await remote.anchorLatest(log, logKey.signer.verifier, witnesses);
    assert.equal(receipt.treeSize, log.size);
    assert.equal((await readOnly.proveAnchored(await log.checkpoint(), logKey.signer.verifier)).blockNumber, receipt.blockNumber);
  } finally {
    remote.contract.runner?.provider?.destroy();
    readOnly.contract.runner?.provider?.destroy();
  }
});

test('recompiling LedgerAnchor.sol with solc reproduces the committed artifact', async () => {
  const committed = readFileSync(new URL('../contracts/LedgerAnchor.json', import.meta.url), 'utf8');
  assert.equal(await recompiled, committed);
});
