/**
 * A gateway's upload receipts are checked against witnesses the hospital trusts by its own configuration (issue #13),
 * not against the list the cloud publishes: a cloud that names witnesses it made up (and cosigns with their keys)
 * gets no receipt accepted, and a receipt kept pending is never completed by a cloud that cannot get its checkpoint
 * cosigned. The cloud is a plain HTTP server on 127.0.0.1 serving /ledger/keys and /ledger/bundle/N as the attacker likes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IntegrityError } from '@medshare/crypto';
import { migrate, openDatabase, randomKeyEncryptionKey, type Database } from '@medshare/db';
import {
  buildAuditEvent,
  canonicalBytes,
  formatCheckpoint,
  generateCheckpointKey,
  hashLeaf,
  LedgerClient,
  parseVerifierKey,
  signNote,
  verifyInclusionBundle,
  type CheckpointSigner,
  type InclusionBundle,
} from '@medshare/ledger';
import { openHospitalWitness, verifyReceipt, witnessKeyName } from '../src/index.ts';
import { GATEWAY_MIGRATIONS } from '../src/migrations.ts';
import { publicBundles, ReceiptBook } from '../src/gateway/receipts.ts';

const kek = randomKeyEncryptionKey();
const logKey = generateCheckpointKey('medshare.cloud/audit', 'ed25519');
const riverside = generateCheckpointKey(witnessKeyName('riverside'));
const fakes = [generateCheckpointKey(witnessKeyName('fake-a')), generateCheckpointKey(witnessKeyName('fake-b'))];
let listed: string[] = [];
/** What the cloud serves at /ledger/bundle/0 (none: 503, not yet witnessed). */
let served: InclusionBundle | undefined;
let server: Server;
let cloudUrl: URL;
let db: Database;

before(async () => {
  db = await openDatabase();
  server = createServer((request, response) => {
    if (request.url === '/ledger/bundle/0') {
      if (served === undefined) return void response.writeHead(503, { 'content-type': 'application/json' }).end('{"title":"not yet witnessed"}');
      return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(served));
    }
    if (request.url !== '/ledger/keys') return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ log: logKey.signer.verifier.vkey, witnesses: listed, quorum: 2 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cloudUrl = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await db.close();
});

/** A receipt for one upload entry (of record `digit`×64) whose one-entry checkpoint `signers` signed. */
function receiptSignedBy(signers: readonly CheckpointSigner[], digit = '0'): InclusionBundle {
  const entry = canonicalBytes({
    ...buildAuditEvent(
      {
        type: 'record-create',
        patient: `psn:${'A'.repeat(22)}`,
        agents: [{ who: `psn:${'B'.repeat(22)}`, role: 'hospital' }],
        source: 'st-marys',
        records: [{ hash: `sha256:${digit.repeat(64)}`, category: 'lab' }],
      },
      0,
    ),
    id: '0',
  });
  const body = formatCheckpoint({ origin: 'medshare.cloud/audit', size: 1, rootHash: hashLeaf(entry) });
  return { index: 0, entry: entry.toString('utf8'), inclusionProof: [], checkpoint: signNote(body, signers, 1) };
}

/** A receipt for one upload entry whose checkpoint the log key and the fake witnesses signed. */
const forgedReceipt = () => receiptSignedBy([logKey.signer, ...fakes.map((f) => f.signer)]);

const open = (hospital: string, configured: boolean) =>
  openHospitalWitness(db, {
    kek,
    hospital,
    cloudUrl: () => cloudUrl,
    logKey: logKey.signer.verifier.vkey,
    ...(configured
      ? {
          peers: () => [
            { hospital, url: cloudUrl },
            { hospital: 'riverside', url: cloudUrl, key: riverside.signer.verifier.vkey },
          ],
        }
      : {}),
  });

test('a cloud naming made-up witnesses: the receipt they cosigned is refused, with or without the federation configured', async () => {
  const configured = await open('st-marys', true);
  const unconfigured = await open('northgate', false);
  const receipt = forgedReceipt();
  listed = [configured.verifier.vkey, ...fakes.map((f) => f.signer.verifier.vkey)];
  // Under the cloud's own list the forgery meets the quorum it names: that list cannot be what a gateway trusts.
  assert.equal(verifyInclusionBundle(receipt, { log: logKey.signer.verifier, witnesses: listed.map(parseVerifierKey), quorum: 2 }).cosigners.length, 2);

  const trust = await configured.receiptTrust();
  assert.deepEqual(
    trust.witnesses?.map((w) => w.name),
    [witnessKeyName('st-marys'), witnessKeyName('riverside')],
    'its own witness and the configured peer, not the fakes',
  );
  assert.equal(trust.quorum, 2);
  assert.throws(() => verifyReceipt(receipt, trust), IntegrityError);

  // Without a configured federation the cloud's list is used, but the hospital's own witness must have cosigned.
  listed = [unconfigured.verifier.vkey, ...fakes.map((f) => f.signer.verifier.vkey)];
  const fallback = await unconfigured.receiptTrust();
  assert.throws(
    () => verifyReceipt(receipt, fallback),
    (error: Error) => error instanceof IntegrityError && /not cosigned by northgate\.medshare\/witness/.test(error.message),
  );
});

test('a peer witness key the configuration pins is not replaced by a later configuration naming another', async () => {
  const other = generateCheckpointKey(witnessKeyName('riverside'));
  const witness = await openHospitalWitness(db, {
    kek,
    hospital: 'st-marys',
    cloudUrl: () => cloudUrl,
    logKey: logKey.signer.verifier.vkey,
    peers: () => [{ hospital: 'riverside', url: cloudUrl, key: other.signer.verifier.vkey }],
  });
  await assert.rejects(witness.receiptTrust(), IntegrityError);
});

test('a cloud that never gets its checkpoint cosigned: the receipt is kept pending and never completed, whatever it serves later', async () => {
  await migrate(db, 'gateway', GATEWAY_MIGRATIONS);
  const witness = await open('westfield', true);
  listed = [witness.verifier.vkey, riverside.signer.verifier.vkey];
  const book = new ReceiptBook(db, () => witness.receiptTrust());
  const logSigned = receiptSignedBy([logKey.signer]);
  assert.deepEqual(
    (await book.keep('westfield', `psn:${'A'.repeat(22)}`, [0], [logSigned], [])).map((r) => r.status),
    ['pending'],
  );
  await assert.rejects(book.keep('westfield', `psn:${'A'.repeat(22)}`, [0, 1], [logSigned], []), /no receipt for ledger entry 1/);
  const ledger = new LedgerClient(new URL('/ledger', cloudUrl).href);
  const complete = () => book.complete('westfield', (entries) => publicBundles(ledger, entries));
  // Not yet witnessed (503); the log's signature alone; made-up witnesses; riverside alone (1 of 2, and not westfield's own).
  for (const later of [undefined, logSigned, forgedReceipt(), receiptSignedBy([logKey.signer, riverside.signer])]) {
    served = later;
    assert.deepEqual(await complete(), { completed: 0, pending: 1 });
  }
  // Another entry at the same index, log-signed: the log signed two histories; named, still pending.
  served = receiptSignedBy([logKey.signer, ...fakes.map((f) => f.signer)], '1');
  assert.deepEqual(await complete(), { completed: 0, pending: 1 });
  const [receipt] = await book.list('westfield');
  assert.equal(receipt!.status, 'pending');
  assert.match(receipt!.problem ?? '', /the log signed another entry 0/);
  assert.deepEqual(await book.list('westfield', { status: 'complete' }), []);
});
