import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BrowserProvider, Wallet, type Signer } from 'ethers';
import { IntegrityError, MalformedInputError } from '@medshare/crypto';
import { openDatabase, type Database } from '@medshare/db';
import {
  AnchorClient, AuditLog, compileAnchorContract, formatArtifact, formatCheckpoint, generateCheckpointKey, hashLeaf,
  MerkleTree, signNote, verifyCheckpointNote, anchorClientFromEnv,
} from '../src/index.ts';
import { accessEvent, hashName } from './fixtures.ts';

// Hardhat 2's in-process EVM (Hardhat 3 needs Node 22); it finds its config through HARDHAT_CONFIG.
process.env['HARDHAT_CONFIG'] = fileURLToPath(new URL('./hardhat.config.cjs', import.meta.url));
process.env['HARDHAT_NETWORK'] = 'hardhat';
const { default: hre } = await import('hardhat');
// cacheTimeout -1: ethers otherwise answers an identical request within 250 ms from a cache, which hides
// state changes between two quick calls (a refused anchor, then the same anchor after authorisation).
const provider = new BrowserProvider(hre.network.provider as never, undefined, { cacheTimeout: -1 });
const admin: Signer = await provider.getSigner(0);
const hospital: Signer = await provider.getSigner(1);

const logKey = generateCheckpointKey('medshare.test/audit');
let db: Database;
let log: AuditLog;
before(async () => {
  db = await openDatabase();
  log = await AuditLog.open(db, logKey.signer);
});
after(() => db.close());

test('recompiling LedgerAnchor.sol with solc reproduces the committed artifact', async () => {
  const committed = readFileSync(new URL('../contracts/LedgerAnchor.json', import.meta.url), 'utf8');
  assert.equal(formatArtifact(await compileAnchorContract()), committed);
});

test('checkpoints are anchored with consistency proofs, and an anchored checkpoint is proven from the chain', async () => {
  const anchor = await AnchorClient.deploy(admin);
  for (let i = 0; i < 5; i++) await log.append(accessEvent(`p${i}`));
  const first = await anchor.anchorLatest(log, logKey.signer.verifier);
  assert.equal(first.treeSize, 5);
  for (let i = 0; i < 6; i++) await log.append(accessEvent(`q${i}`));
  const second = await anchor.anchorLatest(log, logKey.signer.verifier);
  assert.equal(second.treeSize, 11);
  assert.ok(second.blockNumber > first.blockNumber);
  // Anyone holding the signed checkpoint can check it against the chain, read-only.
  const reader = AnchorClient.connect(await anchor.address(), provider);
  const proven = await reader.proveAnchored(await log.checkpoint(5), logKey.signer.verifier);
  assert.equal(proven.blockNumber, first.blockNumber);
  assert.equal((await reader.proveAnchored(await log.checkpoint(), logKey.signer.verifier)).treeSize, 11);
  await assert.rejects(reader.proveAnchored(await log.checkpoint(7), logKey.signer.verifier), /never anchored/);
  assert.deepEqual(await anchor.anchorLatest(log, logKey.signer.verifier), await reader.proveAnchored(await log.checkpoint(), logKey.signer.verifier));
});

test('the contract refuses a forked history, an old size and an unauthorised account', async () => {
  const anchor = await AnchorClient.deploy(admin);
  for (let i = 0; i < 3; i++) await log.append(accessEvent(`r${i}`));
  await anchor.anchorLatest(log, logKey.signer.verifier);
  const anchoredSize = log.size;
  // A different history, larger, signed with the genuine key (a misbehaving log operator).
  const forged = new MerkleTree();
  for (let i = 0; i < anchoredSize + 4; i++) forged.append(hashLeaf(Buffer.from(`forged ${i}`)));
  const body = formatCheckpoint({ origin: 'medshare.test/audit', size: forged.size, rootHash: forged.rootHash() });
  const forgedCheckpoint = verifyCheckpointNote(signNote(body, [logKey.signer], 1), logKey.signer.verifier);
  await assert.rejects(anchor.anchorCheckpoint(forgedCheckpoint, forged.consistencyProof(anchoredSize)), IntegrityError);
  const current = verifyCheckpointNote(await log.checkpoint(), logKey.signer.verifier);
  await assert.rejects(anchor.anchorCheckpoint(current, []), MalformedInputError);
  const asHospital = AnchorClient.connect(await anchor.address(), hospital);
  await log.append(accessEvent('s'));
  await assert.rejects(asHospital.anchorLatest(log, logKey.signer.verifier), /may not anchor/);
  await anchor.setAnchorer(await hospital.getAddress(), true);
  assert.equal((await asHospital.anchorLatest(log, logKey.signer.verifier)).treeSize, log.size);
});

test('the on-chain RFC 9162 consistency check agrees with the TypeScript one', async () => {
  const anchor = await AnchorClient.deploy(admin);
  const tree = new MerkleTree();
  for (let i = 0; i < 40; i++) tree.append(hashLeaf(Buffer.from([i])));
  const verify = anchor.contract.getFunction('verifyConsistency');
  const hex = (b: Buffer) => `0x${b.toString('hex')}`;
  for (const [first, second] of [[1, 2], [3, 7], [4, 8], [6, 8], [5, 40], [16, 33], [39, 40], [12, 12]] as const) {
    const proof = tree.consistencyProof(first, second).map(hex);
    assert.equal(await verify(first, second, hex(tree.rootHash(first)), hex(tree.rootHash(second)), proof), true, `${first}->${second}`);
    if (proof.length > 0) {
      const altered = [...proof];
      altered[0] = hex(Buffer.alloc(32, 1));
      assert.equal(await verify(first, second, hex(tree.rootHash(first)), hex(tree.rootHash(second)), altered), false);
    }
  }
});

test('consent grants and revocations are recorded by hash only', async () => {
  const anchor = await AnchorClient.deploy(admin);
  const consent = hashName('re-encryption key for lab → (role:doctor and dept:cardiology)');
  assert.equal(await anchor.consentGranted(consent), false);
  await anchor.recordConsent(consent, true, 3);
  assert.equal(await anchor.consentGranted(consent), true);
  await assert.rejects(anchor.recordConsent(consent, true, 4), /already in that state/);
  await anchor.recordConsent(consent, false, 5);
  assert.equal(await anchor.consentGranted(consent), false);
  await assert.rejects(anchor.recordConsent('not a hash', true, 1), MalformedInputError);
});

test('consent entries of the log go on the chain as hashes, grant then revoke', async () => {
  const anchor = await AnchorClient.deploy(admin);
  const policyHash = hashName('policy: role:emergency');
  const grant = await log.append({ ...accessEvent('consenting'), type: 'consent-grant', policyHash, records: [] });
  const revoke = await log.append({ ...accessEvent('consenting'), type: 'consent-revoke', policyHash, records: [] });
  await anchor.recordConsentEntry(await log.entry(grant.index));
  assert.equal(await anchor.consentGranted(policyHash), true);
  await anchor.recordConsentEntry(await log.entry(revoke.index));
  assert.equal(await anchor.consentGranted(policyHash), false);
  const access = await log.append(accessEvent('not-consent'));
  await assert.rejects(anchor.recordConsentEntry(await log.entry(access.index)), /not a consent event/);
});

test('a real chain is configured through LEDGER_RPC_URL; missing settings are a clear error', () => {
  assert.throws(() => anchorClientFromEnv({}), /LEDGER_RPC_URL/);
  const client = anchorClientFromEnv({ LEDGER_RPC_URL: 'http://127.0.0.1:1', LEDGER_ANCHOR_ADDRESS: '0x5FbDB2315678afecb367f032d93F642f64180aa3' });
  assert.ok(client instanceof AnchorClient);
  client.contract.runner?.provider?.destroy();
});

test('LEDGER_RPC_URL: the same client over a JSON-RPC HTTP endpoint on 127.0.0.1 anchors and proves', async () => {
  const { JsonRpcServer } = await import('hardhat/internal/hardhat-network/jsonrpc/server.js');
  const server = new JsonRpcServer({ hostname: '127.0.0.1', port: 0, provider: hre.network.provider });
  const { port } = await server.listen();
  try {
    const deployed = await AnchorClient.deploy(admin);
    const env = {
      LEDGER_RPC_URL: `http://127.0.0.1:${port}`,
      // Hardhat's first development account, derived from its public test mnemonic.
      LEDGER_PRIVATE_KEY: Wallet.fromPhrase(HARDHAT_MNEMONIC).privateKey,
      LEDGER_ANCHOR_ADDRESS: await deployed.address(),
    };
    const remote = anchorClientFromEnv(env);
    await log.append(accessEvent('over-http'));
    const receipt = await remote.anchorLatest(log, logKey.signer.verifier);
    assert.equal(receipt.treeSize, log.size);
    const readOnly = anchorClientFromEnv({ ...env, LEDGER_PRIVATE_KEY: '' });
    assert.equal((await readOnly.proveAnchored(await log.checkpoint(), logKey.signer.verifier)).blockNumber, receipt.blockNumber);
    remote.contract.runner?.provider?.destroy();
    readOnly.contract.runner?.provider?.destroy();
  } finally {
    await server.close();
  }
});

const HARDHAT_MNEMONIC = 'test test test test test test test test test test test junk';
