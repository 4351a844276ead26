/** The c2sp.org/tlog-witness add-checkpoint protocol over HTTP: status codes, bodies, and split views caught by hospitals' witnesses. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { openTestDatabases } from '@medshare/db';
import {
  AuditLog,
  ForkDetectedError,
  formatAddCheckpoint,
  formatCheckpoint,
  generateCheckpointKey,
  hashLeaf,
  HttpCosigner,
  MerkleTree,
  signNote,
  verifyCheckpointNote,
  verifyLog,
  Witness,
  witnessPlugin,
  WitnessConflictError,
} from '../src/index.ts';
import { accessEvent } from './fixtures.ts';

const { db } = (await openTestDatabases())[0]!;
const logKey = generateCheckpointKey('medshare.test/audit', 'ed25519');
const hospitals = ['st-marys', 'riverside', 'northgate'];
const witnessKeys = hospitals.map((h) => generateCheckpointKey(`${h}.test/witness`));
const witnesses = await Promise.all(witnessKeys.map((k) => Witness.open(db, k.signer, logKey.signer.verifier)));
const app = Fastify();
for (const [i, hospital] of hospitals.entries()) await app.register(witnessPlugin, { witnesses: [witnesses[i]!], prefix: `/witness/${hospital}` });
const base = await app.listen({ host: '127.0.0.1', port: 0 });
after(async () => {
  await app.close();
  await db.close();
});
const cosigners = hospitals.map((h, i) => new HttpCosigner(`${base}/witness/${h}`, witnessKeys[i]!.signer.verifier));
const post = (hospital: string, body: string) => fetch(`${base}/witness/${hospital}/add-checkpoint`, { method: 'POST', body });

/** A different history of `size` entries signed with the genuine log key (a split view). */
function forkedNote(size: number) {
  const tree = new MerkleTree();
  for (let i = 0; i < size; i++) tree.append(hashLeaf(Buffer.from(`forged ${i}`)));
  return { tree, note: signNote(formatCheckpoint({ origin: 'medshare.test/audit', size, rootHash: tree.rootHash() }), [logKey.signer], 0) };
}

const log = await AuditLog.open(db, logKey.signer, { cosigners });

test('the log gathers cosignatures from every hospital witness over HTTP; verify counts a majority by default', async () => {
  for (let i = 0; i < 5; i++) await log.append(accessEvent(`p${i}`));
  await log.flush();
  const note = await log.witnessedCheckpoint(5);
  const report = await verifyLog(db, { log: logKey.signer.verifier, witnesses: witnessKeys.map((k) => k.signer.verifier) });
  assert.equal(report.ok, true, report.problem);
  assert.deepEqual(report.latestCosigners.sort(), witnessKeys.map((k) => k.signer.verifier.name).sort());
  assert.equal(verifyCheckpointNote(note, logKey.signer.verifier).size, 5);
});

test('status codes: 409 with the witness size (text/x.tlog.size), 403 for a foreign signature, 404 for an unknown log, 400 for garbage, 422 for a bad proof', async () => {
  await log.flush();
  const note = await log.checkpoint();
  const stale = await post('st-marys', formatAddCheckpoint({ oldSize: 0, consistencyProof: [], note }));
  assert.equal(stale.status, 409);
  assert.equal(stale.headers.get('content-type'), 'text/x.tlog.size');
  assert.equal(await stale.text(), `${log.size}\n`);
  const impostor = generateCheckpointKey('medshare.test/audit', 'ed25519').signer;
  const foreign = signNote(note.split('\n\n')[0]! + '\n', [impostor], 0);
  assert.equal((await post('st-marys', formatAddCheckpoint({ oldSize: log.size, consistencyProof: [], note: foreign }))).status, 403);
  const other = generateCheckpointKey('other.test/log', 'ed25519').signer;
  const unknown = signNote(formatCheckpoint({ origin: 'other.test/log', size: 0, rootHash: new MerkleTree().rootHash() }), [other], 0);
  assert.equal((await post('st-marys', formatAddCheckpoint({ oldSize: 0, consistencyProof: [], note: unknown }))).status, 404);
  for (const garbage of ['', 'old 01\n\nx', 'old 1\nnot base64!\n\n' + note, `old ${log.size}\n`, 'x'.repeat(70_000)]) {
    const response = await post('st-marys', garbage);
    assert.ok([400, 413].includes(response.status), `${JSON.stringify(garbage.slice(0, 20))} → ${response.status}`);
  }
  const longer = forkedNote(log.size + 2);
  const badProof = await post(
    'st-marys',
    formatAddCheckpoint({ oldSize: log.size, consistencyProof: longer.tree.consistencyProof(log.size), note: longer.note }),
  );
  assert.equal(badProof.status, 422);
  const sameSize = forkedNote(log.size);
  assert.equal((await post('st-marys', formatAddCheckpoint({ oldSize: log.size, consistencyProof: [], note: sameSize.note }))).status, 409);
});

test("a split view shown to two hospitals' witnesses: whichever sees the fork refuses it, and the client side names it a fork", async () => {
  await log.flush();
  const size = log.size;
  // The log operator shows riverside a forked extension while st-marys and northgate saw the genuine one.
  const fork = forkedNote(size + 3);
  await assert.rejects(cosigners[1]!.addCheckpoint({ oldSize: size, consistencyProof: fork.tree.consistencyProof(size), note: fork.note }), ForkDetectedError);
  await assert.rejects(cosigners[1]!.addCheckpoint({ oldSize: 0, consistencyProof: [], note: fork.note }), WitnessConflictError);
  // The genuine log keeps being cosigned by everyone.
  await log.append(accessEvent('genuine'));
  await log.flush();
  assert.equal((await witnesses[1]!.latest())?.size, size + 1);
  assert.equal(log.health().cosignFailures, 0);
});
