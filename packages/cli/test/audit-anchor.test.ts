import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { BrowserProvider, Wallet } from 'ethers';
import { openDatabase } from '@medshare/db';
import { AnchorClient, AuditLog, generateCheckpointKey } from '@medshare/ledger';
import { runCli } from './run-cli.ts';

// An in-process Hardhat 2 chain served over JSON-RPC on 127.0.0.1: the CLI reaches it exactly as it would reach a
// consortium node, through LEDGER_RPC_URL.
process.env['HARDHAT_CONFIG'] = fileURLToPath(new URL('../../ledger/test/hardhat.config.cjs', import.meta.url));
process.env['HARDHAT_NETWORK'] = 'hardhat';
const { default: hre } = await import('hardhat');
const { JsonRpcServer } = await import('hardhat/internal/hardhat-network/jsonrpc/server.js');

const dir = mkdtempSync(join(tmpdir(), 'medshare-anchor-'));
const dataDir = join(dir, 'data');
const logKey = generateCheckpointKey('medshare.test/audit');
const server = new JsonRpcServer({ hostname: '127.0.0.1', port: 0, provider: hre.network.provider });
let env: NodeJS.ProcessEnv;

before(async () => {
  const { port } = await server.listen();
  const provider = new BrowserProvider(hre.network.provider as never, undefined, { cacheTimeout: -1 });
  const contract = await AnchorClient.deploy(await provider.getSigner(0));
  env = {
    ...process.env,
    LEDGER_RPC_URL: `http://127.0.0.1:${port}`,
    LEDGER_ANCHOR_ADDRESS: await contract.address(),
    // Hardhat's first development account, derived from its public test mnemonic.
    LEDGER_PRIVATE_KEY: Wallet.fromPhrase('test test test test test test test test test test test junk').privateKey,
  };
  const db = await openDatabase({ dataDir });
  const log = await AuditLog.open(db, logKey.signer);
  const psn = `psn:${createHash('sha256').update('alice').digest('base64url').slice(0, 22)}`;
  for (let i = 0; i < 3; i++) await log.append({ type: 'record-access', patient: psn, agents: [{ who: psn, role: 'patient' }], source: 'hospital-a' });
  writeFileSync(join(dir, 'checkpoint.txt'), await log.checkpoint());
  await db.close();
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('audit anchor puts the latest checkpoint on the chain; audit anchored proves it from the chain', async () => {
  const vkey = logKey.signer.verifier.vkey;
  const anchored = await runCli(['audit', 'anchor', '--data', dataDir, '--log-key', vkey], { env });
  assert.equal(anchored.code, 0, anchored.stderr);
  const receipt = JSON.parse(anchored.stdout);
  assert.equal(receipt.treeSize, 3);
  const { LEDGER_PRIVATE_KEY: _secret, ...readOnly } = env;
  const proven = await runCli(['audit', 'anchored', '--checkpoint', join(dir, 'checkpoint.txt'), '--log-key', vkey], { env: readOnly });
  assert.equal(proven.code, 0, proven.stderr);
  assert.equal(JSON.parse(proven.stdout).blockNumber, receipt.blockNumber);
  assert.doesNotMatch(anchored.stdout + anchored.stderr, new RegExp(env['LEDGER_PRIVATE_KEY']!.slice(2)));
});

test('without LEDGER_RPC_URL the anchoring commands are usage errors', async () => {
  const { LEDGER_RPC_URL: _url, ...noChain } = env;
  const result = await runCli(['audit', 'anchored', '--checkpoint', join(dir, 'checkpoint.txt'), '--log-key', logKey.signer.verifier.vkey], { env: noChain });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /LEDGER_RPC_URL/);
});
