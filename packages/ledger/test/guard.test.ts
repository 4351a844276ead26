/**
 * The log never signs a forged history: attacks by whoever can edit the log's database (the cloud operator, or a
 * breach of it), with the signing key wrapped by a KEK the attacker does not hold and the last checkpoint in a
 * file outside the database.
 */
import { after, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { IntegrityError, MalformedInputError, NotFoundError } from '@medshare/crypto';
import { openTestDatabases, randomKeyEncryptionKey, type Database } from '@medshare/db';
import {
  AuditLog,
  CheckpointFile,
  formatCheckpoint,
  formatNote,
  generateCheckpointKey,
  hashLeaf,
  loadNoteSigner,
  MerkleTree,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifyCheckpointNote,
  verifyLog,
  Witness,
} from '../src/index.ts';
import { accessEvent, pseudonym } from './fixtures.ts';

const { db } = (await openTestDatabases())[0]!;
const dir = mkdtempSync(join(tmpdir(), 'ledger-guard-'));
after(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});
const kek = randomKeyEncryptionKey();
let fileCount = 0;

async function reset(): Promise<void> {
  await db.query('DROP TABLE IF EXISTS ledger_entries, ledger_checkpoints, ledger_head, ledger_witness_state, ledger_keys, ledger_tree, schema_migrations');
}

/** A log whose key is KEK-wrapped in the database and whose last checkpoint is also kept in a file. */
async function guardedLog(n: number, file = new CheckpointFile(join(dir, `checkpoint-${fileCount++}`))) {
  const signer = await loadNoteSigner(db, { name: 'medshare.test/audit', kek });
  const alarms: { index: number; problem: string }[] = [];
  const open = () => AuditLog.open(db, signer, { trusted: file, onAlarm: (alarm) => alarms.push(alarm) });
  const log = await open();
  for (let i = 0; i < n; i++) await log.append(accessEvent(`patient-${i % 3}`, `doctor-${i}`));
  return { log, signer, file, alarms, open };
}

/** The attack: edit entry 6 and its leaf hash, delete the checkpoints that cover it, restart. */
async function forgeEntryAndCheckpoints(database: Database, index: number): Promise<void> {
  const row = (await database.query<{ entry: string }>('SELECT entry FROM ledger_entries WHERE idx = $1', [index])).rows[0]!;
  const forged = row.entry.replace('"outcome":"0"', '"outcome":"4"');
  await database.query('UPDATE ledger_entries SET entry = $1, leaf_hash = $2 WHERE idx = $3', [forged, hashLeaf(Buffer.from(forged)), index]);
  await database.query('DELETE FROM ledger_checkpoints WHERE size > $1', [index]);
}

describe('the log refuses to sign a history forged in its database', () => {
  beforeEach(reset);

  test('edit entry 6 and its leaf hash, delete the checkpoints of size ≥ 7, restart: the log halts and names entry 6', async () => {
    const { log, open, alarms } = await guardedLog(10);
    await log.flush();
    await forgeEntryAndCheckpoints(db, 6);
    const reopened = await open();
    assert.equal(reopened.health().ok, false);
    assert.equal(reopened.health().alarm?.index, 6, reopened.health().alarm?.problem);
    assert.equal(reopened.health().alarms, 1, 'the metric');
    assert.equal(alarms.length, 1);
    await assert.rejects(reopened.append(accessEvent('after')), IntegrityError);
    assert.equal((await db.query<{ c: number }>('SELECT count(*)::int AS c FROM ledger_checkpoints WHERE size > 6')).rows[0]!.c, 0, 'nothing new was signed');
  });

  test('without a restart: a forged entry that another process would load is refused before the next signature', async () => {
    const { log, alarms, open } = await guardedLog(4);
    const other = await open();
    await other.append(accessEvent('other process'));
    // The forged row is entry 4, written by "the other process"; the first log loads it before signing.
    await forgeEntryAndCheckpoints(db, 4);
    await assert.rejects(log.append(accessEvent('next')), IntegrityError);
    assert.equal(log.health().alarm?.index, 4);
    assert.ok(alarms.length >= 1);
  });

  test('truncate the log consistently (entries, checkpoints and head): the file outside the database names the first missing entry', async () => {
    const { log, open } = await guardedLog(8);
    await log.flush();
    await db.query('DELETE FROM ledger_entries WHERE idx >= 5');
    await db.query('DELETE FROM ledger_checkpoints WHERE size > 5');
    await db.query('UPDATE ledger_head SET size = 5');
    assert.equal((await verifyLog(db, { log: log['signer']!.verifier })).ok, true, 'alone, the database looks consistent');
    const reopened = await open();
    assert.equal(reopened.health().alarm?.index, 5, reopened.health().alarm?.problem);
  });

  test('delete everything: an empty database under a non-empty checkpoint file is refused', async () => {
    const { log, file, open } = await guardedLog(3);
    await log.flush();
    await reset();
    const reopened = await open();
    assert.equal(reopened.health().ok, false);
    assert.equal(reopened.health().alarm?.index, 0);
    assert.ok((await file.load())?.includes('\n3\n'));
  });

  test('reorder two entries: named at the first', async () => {
    const { log, open } = await guardedLog(6);
    await log.flush();
    await db.query('UPDATE ledger_entries SET idx = -1 WHERE idx = 2');
    await db.query('UPDATE ledger_entries SET idx = 2 WHERE idx = 3');
    await db.query('UPDATE ledger_entries SET idx = 3 WHERE idx = -1');
    assert.equal((await open()).health().alarm?.index, 2);
  });

  test("edit the patient column to hide an entry from the patient's log: caught on open and by verify", async () => {
    const { log, open, signer } = await guardedLog(6);
    await log.flush();
    await db.query("UPDATE ledger_entries SET patient = 'psn:AAAAAAAAAAAAAAAAAAAAAA' WHERE idx = 4");
    assert.equal((await open()).health().alarm?.index, 4);
    const report = await verifyLog(db, { log: signer.verifier });
    assert.equal(report.firstBadIndex, 4);
    assert.match(report.problem ?? '', /another patient/);
  });

  test('an entry edited under a running log is refused when read, and the log halts', async () => {
    const { log } = await guardedLog(5);
    await log.flush();
    await db.query(`UPDATE ledger_entries SET entry = replace(entry, '"outcome":"0"', '"outcome":"4"') WHERE idx = 2`);
    await assert.rejects(log.entry(2), IntegrityError);
    assert.equal(log.health().alarm?.index, 2);
  });

  test('an honest restart is fine, and keeps appending', async () => {
    const { log, open } = await guardedLog(5);
    await log.flush();
    const reopened = await open();
    assert.equal(reopened.health().ok, true, reopened.health().alarm?.problem);
    assert.equal((await reopened.append(accessEvent('later'))).index, 5);
  });
});

/** Rewrites one stored hash of the persisted tree (ledger_tree) in place. */
async function editTreeNode(level: number, index: number, hash: Buffer): Promise<void> {
  const chunk = Math.floor(index / 1024);
  const row = (await db.query<{ hashes: Uint8Array }>('SELECT hashes FROM ledger_tree WHERE level = $1 AND chunk = $2', [level, chunk])).rows[0]!;
  const hashes = Buffer.from(row.hashes);
  hash.copy(hashes, (index % 1024) * 32);
  await db.query('UPDATE ledger_tree SET hashes = $1 WHERE level = $2 AND chunk = $3', [hashes, level, chunk]);
}

describe('the persisted Merkle tree (opening reads no entries) is checked too', () => {
  beforeEach(reset);

  test('forge entry 6, its leaf hash and the stored tree consistently: the signed checkpoints still name entry 6', async () => {
    const { log, open } = await guardedLog(10);
    await log.flush();
    const row = (await db.query<{ entry: string }>('SELECT entry FROM ledger_entries WHERE idx = 6')).rows[0]!;
    const forged = row.entry.replace('"outcome":"0"', '"outcome":"4"');
    await db.query('UPDATE ledger_entries SET entry = $1, leaf_hash = $2 WHERE idx = 6', [forged, hashLeaf(Buffer.from(forged))]);
    const rebuilt = new MerkleTree();
    for (const r of (await db.query<{ leaf_hash: Uint8Array }>('SELECT leaf_hash FROM ledger_entries ORDER BY idx')).rows) rebuilt.append(r.leaf_hash);
    await db.query('DELETE FROM ledger_tree');
    for (const c of rebuilt.chunksSince(0))
      await db.query('INSERT INTO ledger_tree (level, chunk, hashes) VALUES ($1, $2, $3)', [c.level, c.chunk, Buffer.from(c.hashes)]);
    const reopened = await open();
    assert.equal(reopened.health().alarm?.index, 6, reopened.health().alarm?.problem);
    await assert.rejects(reopened.append(accessEvent('after')), IntegrityError);
  });

  test('edit a node on the right edge of the stored tree: refused before any signature, even with the audit in the background', async () => {
    const { log, signer, file } = await guardedLog(10);
    await log.flush();
    // 10 leaves: the root is made of the level-3 node 0 (leaves 0..7) and the level-1 node 4 (leaves 8, 9).
    await editTreeNode(3, 0, Buffer.alloc(32, 7));
    const reopened = await AuditLog.open(db, signer, { trusted: file, audit: 'background' });
    assert.equal(reopened.health().ok, false);
    assert.match(reopened.health().alarm?.problem ?? '', /stored tree does not match the signed checkpoint/);
    await assert.rejects(reopened.append(accessEvent('after')), IntegrityError);
    await reopened.audited();
  });

  test('edit an interior node off the right edge: open signs nothing wrong, and the background audit names it', async () => {
    const { log, signer, file } = await guardedLog(10);
    await log.flush();
    await editTreeNode(1, 1, Buffer.alloc(32, 9)); // leaves 2, 3: not part of any new root
    const reopened = await AuditLog.open(db, signer, { trusted: file, audit: 'background' });
    await reopened.audited();
    assert.equal(reopened.health().alarm?.index, 2, reopened.health().alarm?.problem);
    assert.match(reopened.health().alarm?.problem ?? '', /stored Merkle tree's node 1 at level 1/);
  });

  test('delete a chunk of the stored tree: the log halts', async () => {
    const { log, open } = await guardedLog(5);
    await log.flush();
    await db.query('DELETE FROM ledger_tree WHERE level = 1');
    assert.equal((await open()).health().ok, false);
  });

  test('a log stored before the persisted tree existed is audited in full once, and its tree stored', async () => {
    const { log, open } = await guardedLog(7);
    await log.flush();
    const proof = log.inclusionProof(3);
    await db.query('DELETE FROM ledger_tree');
    const reopened = await open();
    assert.equal(reopened.health().ok, true, reopened.health().alarm?.problem);
    assert.ok((await db.query<{ c: number }>('SELECT count(*)::int AS c FROM ledger_tree')).rows[0]!.c > 0);
    assert.deepEqual(reopened.inclusionProof(3), proof);
    const { log: reader } = await AuditLog.openReader(db);
    assert.deepEqual(reader.inclusionProof(3), proof);
    assert.equal(reader.health().ok, true);
  });

  test('a gap (a deleted entry) does not make the reader throw: verify reports the first bad index, the entry read is a typed error', async () => {
    const { log, signer } = await guardedLog(8);
    await log.flush();
    await db.query('DELETE FROM ledger_entries WHERE idx = 3');
    const { log: reader } = await AuditLog.openReader(db);
    assert.equal(reader.size, 8);
    assert.equal(reader.inclusionProof(5).length, 3, 'proofs still come from the stored tree');
    await assert.rejects(reader.entry(3), IntegrityError);
    const report = await verifyLog(db, { log: signer.verifier });
    assert.equal(report.ok, false);
    assert.equal(report.firstBadIndex, 3, report.problem);
  });

  test('in the background, a patient query waits for the audit, so an edited patient column still cannot hide an entry', async () => {
    const { log, signer, file } = await guardedLog(6);
    await log.flush();
    const patient = pseudonym('patient-1'); // entry 4's
    await db.query("UPDATE ledger_entries SET patient = 'psn:AAAAAAAAAAAAAAAAAAAAAA' WHERE idx = 4");
    const reopened = await AuditLog.open(db, signer, { trusted: file, audit: 'background' });
    await assert.rejects(reopened.entriesForPatient(patient), IntegrityError);
    assert.equal(reopened.health().alarm?.index, 4);
  });
});

describe('the signing key at rest', () => {
  beforeEach(reset);

  test('it is stored only wrapped: no row of the database holds the key, and another KEK cannot unwrap it', async () => {
    const signer = await loadNoteSigner(db, { name: 'medshare.test/audit', kek });
    const again = await loadNoteSigner(db, { name: 'medshare.test/audit', kek });
    assert.equal(again.verifier.vkey, signer.verifier.vkey);
    const note = signNote('body\n', [signer], 0);
    const dump = JSON.stringify(
      (await db.query('SELECT * FROM ledger_keys')).rows.map((r: unknown) => Buffer.from((r as { wrapped: Uint8Array }).wrapped).toString('base64')),
    );
    assert.ok(!dump.includes('PRIVATE'), 'the key text is not stored');
    await assert.rejects(loadNoteSigner(db, { name: 'medshare.test/audit', kek: randomKeyEncryptionKey() }), IntegrityError);
    assert.ok(note.length > 0);
  });

  test('replace the signing key in the database: the new key does not unwrap; a key swapped in with the KEK is caught by the checkpoint file', async () => {
    const { log, file } = await guardedLog(3);
    await log.flush();
    // An attacker without the KEK writes their own key wrapped by their own KEK.
    const theirs = generateCheckpointKey('medshare.test/audit', 'ed25519');
    const attackerKek = randomKeyEncryptionKey();
    await db.query('UPDATE ledger_keys SET wrapped = $1', [await attackerKek.wrap(Buffer.from(theirs.skey), 'ledger_keys/wrapped/medshare.test/audit')]);
    await assert.rejects(loadNoteSigner(db, { name: 'medshare.test/audit', kek }), IntegrityError);
    // Even with the key swapped and the head rewritten to match, the file's checkpoint is signed by the old key.
    await db.query('UPDATE ledger_head SET log_vkey = $1', [theirs.signer.verifier.vkey]);
    const swapped = await AuditLog.open(db, theirs.signer, { trusted: file });
    assert.equal(swapped.health().ok, false);
    assert.match(swapped.health().alarm?.problem ?? '', /not signed by the log key/);
  });
});

describe('note keys', () => {
  test('type 0x01 is plain Ed25519 over the note body (c2sp.org/signed-note), checked with node:crypto directly', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z][a-z0-9./-]{0,30}$/), fc.string({ maxLength: 200 }), (name, text) => {
        const { signer } = generateCheckpointKey(name, 'ed25519');
        const body = `${text.replace(/\n/g, ' ')}\n`;
        const line = parseNote(signNote(body, [signer], 0)).signatures[0]!;
        const raw = Buffer.from(signer.verifier.vkey.split('+').slice(2).join('+'), 'base64');
        assert.equal(raw[0], 0x01);
        const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.subarray(1).toString('base64url') }, format: 'jwk' });
        assert.equal(line.signature.length, 4 + 64);
        assert.ok(verify(null, Buffer.from(body), publicKey, line.signature.subarray(4)));
        assert.equal(parseVerifierKey(signer.verifier.vkey).verify(body, line.signature), 0);
      }),
      { numRuns: 30 },
    );
  });

  test("the stock verifier's own vector: Go's golang.org/x/mod/sumdb/note ExampleSign / ExampleOpen, byte for byte", () => {
    // From golang.org/x/mod/sumdb/note/example_test.go: Go's signer output for this key and text, and the key it opens with.
    const skey = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
    const vkey = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
    const text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const goSigned = `${text}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;
    const signer = parseSignerKey(skey);
    assert.equal(signer.verifier.vkey, vkey, 'the same verifier key (name, key ID, type 0x01)');
    assert.equal(signNote(text, [signer], 0), goSigned, 'our signature is the one Go produces (Ed25519 is deterministic)');
    const { body, signatures } = parseNote(goSigned);
    assert.equal(parseVerifierKey(vkey).verify(body, signatures[0]!.signature), 0, "and Go's opens under our verifier");
    const flipped = Buffer.from(signatures[0]!.signature);
    flipped[20]! ^= 1;
    assert.equal(parseVerifierKey(vkey).verify(body, flipped), undefined);
  });

  test('a note with a failing signature by a known key is refused even when a valid one follows', () => {
    const { signer } = generateCheckpointKey('medshare.test/log', 'ed25519');
    const tree = new MerkleTree();
    tree.append(hashLeaf(Buffer.from('x')));
    const body = formatCheckpoint({ origin: 'medshare.test/log', size: 1, rootHash: tree.rootHash() });
    const good = parseNote(signNote(body, [signer], 0)).signatures[0]!;
    const bad = { ...good, signature: Buffer.from(good.signature) };
    bad.signature[10]! ^= 1;
    assert.throws(() => verifyCheckpointNote(formatNote(body, [bad, good]), signer.verifier), IntegrityError);
    assert.throws(() => verifyCheckpointNote(formatNote(body, [good, bad]), signer.verifier), IntegrityError);
    assert.equal(verifyCheckpointNote(formatNote(body, [good]), signer.verifier).size, 1);
  });
});

describe('witness checks (c2sp.org/tlog-witness)', () => {
  beforeEach(reset);

  test('from old size 0 only the empty proof is accepted; an unknown log is 404; an old size above the checkpoint is refused', async () => {
    const { log, signer } = await guardedLog(3);
    const witness = await Witness.open(db, generateCheckpointKey('hospital-a.test/w').signer, signer.verifier);
    const note = await log.checkpoint();
    await assert.rejects(witness.addCheckpoint({ oldSize: 0, consistencyProof: [Buffer.alloc(32)], note }), MalformedInputError);
    await assert.rejects(witness.addCheckpoint({ oldSize: 4, consistencyProof: [], note }), MalformedInputError);
    const other = generateCheckpointKey('other.test/log', 'ed25519').signer;
    const otherNote = signNote(formatCheckpoint({ origin: 'other.test/log', size: 0, rootHash: new MerkleTree().rootHash() }), [other], 0);
    await assert.rejects(witness.addCheckpoint({ oldSize: 0, consistencyProof: [], note: otherNote }), NotFoundError);
    const cosignature = await witness.addCheckpoint({ oldSize: 0, consistencyProof: [], note });
    assert.equal(cosignature.name, 'hospital-a.test/w');
  });

  test('the log obtains cosignatures after each commit, learning a restarted witness size from its conflict answer', async () => {
    const signer = await loadNoteSigner(db, { name: 'medshare.test/audit', kek });
    const witnesses = await Promise.all(['a', 'b', 'c'].map((h) => Witness.open(db, generateCheckpointKey(`hospital-${h}.test/w`).signer, signer.verifier)));
    const log = await AuditLog.open(db, signer, { cosigners: witnesses });
    assert.equal(log.quorum, 2);
    for (let i = 0; i < 4; i++) await log.append(accessEvent(`p${i}`));
    await log.flush();
    const witnessed = await log.witnessedCheckpoint(4);
    assert.equal(verifyCheckpointNote(witnessed, signer.verifier).size, 4);
    // A restarted log knows nothing of the witnesses' sizes: it learns them from 409 and goes on.
    const restarted = await AuditLog.open(db, signer, { cosigners: witnesses });
    await restarted.append(accessEvent('after restart'));
    await restarted.flush();
    assert.equal((await witnesses[2]!.latest())?.size, 5);
    assert.equal(restarted.health().cosignFailures, 0);
    const report = await verifyLog(db, { log: signer.verifier, witnesses: witnesses.map((w) => w.verifier) });
    assert.equal(report.ok, true, report.problem);
    assert.equal(report.latestCosigners.length, 3);
  });
});
