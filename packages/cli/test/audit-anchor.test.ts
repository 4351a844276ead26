import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { SigningKey } from 'ethers';
import { openDatabase, type Database } from '@medshare/db';
import { AnchorClient, AuditLog, collectCosignatures, generateCheckpointKey, Witness, witnessPlugin } from '@medshare/ledger';
import { startGanache, type GanacheNode } from '../../ledger/test/ganache.ts';
import { runCli } from './run-cli.ts';

// A ganache JSON-RPC node process on 127.0.0.1: the CLI reaches it exactly as it would reach a consortium node,
// through LEDGER_RPC_URL; the hospitals' witnesses answer chain cosignatures over HTTP.
const dir = mkdtempSync(join(tmpdir(), 'medshare-anchor-'));
const dataDir = join(dir, 'data');
const logKey = generateCheckpointKey('medshare.test/audit');
const app = Fastify();
let node: GanacheNode;
let witnessDb: Database;
let env: NodeJS.ProcessEnv;
let chainWitnesses: string[];

before(async () => {
  node = await startGanache();
  witnessDb = await openDatabase();
  const witnesses = await Promise.all(
    ['a', 'b'].map((h) =>
      Witness.open(witnessDb, generateCheckpointKey(`hospital-${h}.test/witness`).signer, logKey.signer.verifier, {
        chainKey: new SigningKey(randomBytes(32)),
      }),
    ),
  );
  for (const [i, w] of witnesses.entries()) await app.register(witnessPlugin, { witnesses: [w], prefix: `/witness/${i}` });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  chainWitnesses = witnesses.map((w, i) => `${w.address}=${base}/witness/${i}`);
  const contract = await AnchorClient.deploy(node.wallet(0));
  const anchorer = node.wallet(1);
  await contract.configureLog(
    'medshare.test/audit',
    anchorer.address,
    witnesses.map((w) => w.address),
    2,
  );
  env = { ...process.env, LEDGER_RPC_URL: node.url, LEDGER_ANCHOR_ADDRESS: await contract.address(), LEDGER_PRIVATE_KEY: anchorer.privateKey };
  const db = await openDatabase({ dataDir });
  const log = await AuditLog.open(db, logKey.signer, { cosigners: witnesses });
  const psn = `psn:${createHash('sha256').update('alice').digest('base64url').slice(0, 22)}`;
  for (let i = 0; i < 3; i++) await log.append({ type: 'record-access', patient: psn, agents: [{ who: psn, role: 'patient' }], source: 'hospital-a' });
  writeFileSync(join(dir, 'checkpoint.txt'), await collectCosignatures(log, witnesses));
  await db.close();
});
after(async () => {
  await app.close();
  await witnessDb.close();
  await node.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('audit anchor needs the witness quorum: one chain witness is refused (exit 4), a malformed one is a usage error', async () => {
  const vkey = logKey.signer.verifier.vkey;
  const short = await runCli(['audit', 'anchor', '--data', dataDir, '--log-key', vkey, '--chain-witness', chainWitnesses[0]!], { env });
  assert.equal(short.code, 4, short.stderr);
  assert.match(short.stderr, /quorum/);
  const malformed = await runCli(['audit', 'anchor', '--data', dataDir, '--log-key', vkey, '--chain-witness', 'nobody'], { env });
  assert.equal(malformed.code, 2);
  assert.match(malformed.stderr, /--chain-witness nobody/);
});

test('audit anchor puts the latest checkpoint on the chain; audit anchored proves it from the chain', async () => {
  const vkey = logKey.signer.verifier.vkey;
  const anchored = await runCli(['audit', 'anchor', '--data', dataDir, '--log-key', vkey, '--chain-witness', ...chainWitnesses], { env });
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

test('serve cloud with bad anchoring settings: one clear line and a non-zero exit, before anything is opened', async () => {
  const data = join(dir, 'cloud-data');
  const serve = (ledger: Record<string, string>) =>
    runCli(['serve', 'cloud', '--data', data, '--port', '0', '--hospital-url', 'st-marys=http://127.0.0.1:9'], {
      env: { ...process.env, DATABASE_URL: '', LEDGER_RPC_URL: '', LEDGER_ANCHOR_ADDRESS: '', LEDGER_PRIVATE_KEY: '', ...ledger },
    });
  const address = env['LEDGER_ANCHOR_ADDRESS']!;
  const key = env['LEDGER_PRIVATE_KEY']!;
  const cases: Array<[Record<string, string>, RegExp]> = [
    [
      { LEDGER_RPC_URL: 'http://127.0.0.1:9', LEDGER_ANCHOR_ADDRESS: address, LEDGER_PRIVATE_KEY: key },
      /the chain node at http:\/\/127\.0\.0\.1:9 does not answer JSON-RPC/,
    ],
    // An account with no code: a mistyped contract address.
    [{ LEDGER_RPC_URL: node.url, LEDGER_ANCHOR_ADDRESS: node.wallet(7).address, LEDGER_PRIVATE_KEY: key }, /no contract is deployed there/],
    // (Malformed settings are refused the same way: packages/ledger/test/anchor.test.ts, in process.)
    [{ LEDGER_RPC_URL: node.url, LEDGER_ANCHOR_ADDRESS: address }, /needs all of LEDGER_RPC_URL, LEDGER_ANCHOR_ADDRESS and LEDGER_PRIVATE_KEY/],
  ];
  for (const [ledger, expected] of cases) {
    const result = await serve(ledger);
    assert.equal(result.code, 2, `${JSON.stringify(Object.keys(ledger))}: ${result.stderr}`);
    assert.match(result.stderr, expected);
    assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, new RegExp(`${key.slice(2)}|at .*\\.ts:\\d+`), 'neither the key nor a stack trace');
  }
});

test('audit verify: chain flags need --url and both settings', async () => {
  const onData = await runCli(['audit', 'verify', '--data', dataDir, '--rpc-url', node.url, '--anchor-address', env['LEDGER_ANCHOR_ADDRESS']!]);
  assert.equal(onData.code, 2);
  assert.match(onData.stderr, /give --url/);
  const half = await runCli(['audit', 'verify', '--url', 'http://127.0.0.1:9/ledger', '--rpc-url', node.url], {
    env: { ...process.env, LEDGER_ANCHOR_ADDRESS: '' },
  });
  assert.equal(half.code, 2);
  assert.match(half.stderr, /needs both --rpc-url and --anchor-address/);
});
