import { after, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { IntegrityError, LimitExceededError, MalformedInputError, UnsupportedError } from '@medshare/crypto';
import { openTestDatabases, type Database } from '@medshare/db';
import {
  AuditLog,
  buildInclusionBundle,
  collectCosignatures,
  ForkDetectedError,
  generateCheckpointKey,
  hashLeaf,
  parseEntry,
  verifyCheckpointNote,
  verifyConsistency,
  verifyInclusion,
  verifyInclusionBundle,
  verifyLog,
  Witness,
} from '../src/index.ts';
import { accessEvent, pseudonym } from './fixtures.ts';

const databases = await openTestDatabases();
after(async () => {
  for (const { db } of databases) await db.close();
});

const logKey = generateCheckpointKey('medshare.test/audit');
const trust = { log: logKey.signer.verifier };

async function reset(db: Database): Promise<void> {
  await db.query('DROP TABLE IF EXISTS ledger_entries, ledger_checkpoints, ledger_head, ledger_witness_state, ledger_keys, ledger_tree, schema_migrations');
}

/** A log with `n` entries, each appended and flushed alone so every size has its own checkpoint. */
async function logWith(db: Database, n: number): Promise<AuditLog> {
  const log = await AuditLog.open(db, logKey.signer);
  for (let i = 0; i < n; i++) await log.append(accessEvent(`patient-${i % 3}`, `doctor-${i}`));
  return log;
}

for (const { label, db } of databases) {
  describe(`audit log on ${label}`, () => {
    beforeEach(() => reset(db));

    test('concurrent appends are batched, each gets a distinct index in call order, nothing is lost', async () => {
      const log = await AuditLog.open(db, logKey.signer, { maxBatch: 64 });
      const results = await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(accessEvent(`p${i}`, `d${i}`))));
      assert.deepEqual(
        results.map((r) => r.index),
        Array.from({ length: 300 }, (_, i) => i),
      );
      const checkpoints = (await db.query<{ c: number }>('SELECT count(*)::int AS c FROM ledger_checkpoints')).rows[0]!.c;
      assert.ok(checkpoints >= 5 && checkpoints < 300, `batched into ${checkpoints} checkpoints`);
      for (const { index } of [results[0]!, results[150]!, results[299]!]) {
        const entry = await log.entry(index);
        assert.equal(entry.event.agent[0]!.who.identifier.value, pseudonym(`d${index}`));
      }
      assert.deepEqual(await verifyLog(db, trust), { ok: true, size: 300, checkpoints, latestCosigners: [] });
    });

    test('a batch larger than one INSERT (1,200 entries: three statements of rows, the last with the head and checkpoint) commits whole', async () => {
      const log = await AuditLog.open(db, logKey.signer);
      await log.append(accessEvent('first'));
      const results = await Promise.all(Array.from({ length: 1200 }, (_, i) => log.append(accessEvent(`p${i % 7}`, `big-${i}`))));
      assert.deepEqual(
        results.map((r) => r.index),
        Array.from({ length: 1200 }, (_, i) => i + 1),
      );
      assert.deepEqual(await verifyLog(db, trust), { ok: true, size: 1201, checkpoints: 2, latestCosigners: [] });
      const reopened = await AuditLog.open(db, logKey.signer);
      assert.equal(reopened.health().ok, true);
      assert.equal((await reopened.entry(1200)).event.agent[0]!.who.identifier.value, pseudonym('big-1199'));
    });

    test('under concurrent load a batch lingers for the appends of later ticks until it is full; a lone appender does not wait', async () => {
      const log = await AuditLog.open(db, logKey.signer, { lingerMs: 600_000, maxBatch: 4 });
      const checkpoints = async () => (await db.query<{ c: number }>('SELECT count(*)::int AS c FROM ledger_checkpoints')).rows[0]!.c;
      await log.append(accessEvent('p', 'alone'));
      await Promise.all([log.append(accessEvent('p', 'a')), log.append(accessEvent('p', 'b'))]);
      assert.equal(await checkpoints(), 2, 'neither the lone append nor the first pair lingered');
      // The last batch held two, so the next waits (up to 10 minutes) for appends of later ticks, until it holds four.
      const later: Array<Promise<{ index: number }>> = [];
      for (let i = 0; i < 4; i++) {
        later.push(log.append(accessEvent('p', `later-${i}`)));
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.deepEqual(
        (await Promise.all(later)).map((r) => r.index),
        [3, 4, 5, 6],
      );
      assert.equal(await checkpoints(), 3, 'the four later appends were committed as one batch');
    });

    test('two appenders on one database (two service processes) interleave without losing or reusing an index', async () => {
      const a = await AuditLog.open(db, logKey.signer, { maxBatch: 16 });
      const b = await AuditLog.open(db, logKey.signer, { maxBatch: 16 });
      const appends = Array.from({ length: 120 }, (_, i) => (i % 2 === 0 ? a : b).append(accessEvent(`p${i}`, `w${i}`)));
      const indices = (await Promise.all(appends)).map((r) => r.index).sort((x, y) => x - y);
      assert.deepEqual(
        indices,
        Array.from({ length: 120 }, (_, i) => i),
      );
      await a.refresh();
      await b.refresh();
      assert.ok(a.rootHash().equals(b.rootHash()));
      assert.equal((await verifyLog(db, trust)).ok, true);
    });

    test('an invalid event is refused at append and does not disturb its batch', async () => {
      const log = await AuditLog.open(db, logKey.signer);
      const good = log.append(accessEvent('p1'));
      const bad = log.append({ ...accessEvent('p2'), patient: 'Jane Doe' });
      await assert.rejects(bad, MalformedInputError);
      assert.equal((await good).index, 0);
      const full = await AuditLog.open(db, logKey.signer, { maxQueued: 1 });
      const first = full.append(accessEvent('p3'));
      await assert.rejects(full.append(accessEvent('p4')), LimitExceededError);
      await first;
    });

    test('a reopened log continues where it stopped; another key or origin is refused', async () => {
      await logWith(db, 5);
      const reopened = await AuditLog.open(db, logKey.signer);
      assert.equal(reopened.size, 5);
      assert.equal((await reopened.append(accessEvent('later'))).index, 5);
      await assert.rejects(AuditLog.open(db, generateCheckpointKey('medshare.test/audit').signer), IntegrityError);
    });

    test('inclusion and consistency proofs from the log verify against its signed checkpoints', async () => {
      const log = await logWith(db, 13);
      const older = verifyCheckpointNote(await log.checkpoint(6), logKey.signer.verifier);
      const latest = verifyCheckpointNote(await log.checkpoint(), logKey.signer.verifier);
      assert.equal(latest.size, 13);
      assert.ok(verifyConsistency(6, 13, log.consistencyProof(6, 13), older.rootHash, latest.rootHash));
      for (let i = 0; i < 13; i++) {
        const entry = await log.entry(i);
        assert.ok(verifyInclusion(hashLeaf(entry.bytes), i, 13, log.inclusionProof(i), latest.rootHash));
      }
    });

    test('a proof bundle verifies offline; an altered entry, path or checkpoint does not', async () => {
      const log = await logWith(db, 9);
      const bundle = JSON.parse(JSON.stringify(await buildInclusionBundle(log, 4)));
      const { event, treeSize } = verifyInclusionBundle(bundle, trust);
      assert.equal(event.id, '4');
      assert.equal(treeSize, 9);
      const forgedEntry = { ...bundle, entry: bundle.entry.replace('"outcome":"0"', '"outcome":"4"') };
      assert.throws(() => verifyInclusionBundle(forgedEntry, trust), IntegrityError);
      const path = [...bundle.inclusionProof];
      path[1] = Buffer.alloc(32, 9).toString('base64');
      assert.throws(() => verifyInclusionBundle({ ...bundle, inclusionProof: path }, trust), IntegrityError);
      assert.throws(() => verifyInclusionBundle({ ...bundle, index: 5 }, trust), IntegrityError);
      assert.throws(() => verifyInclusionBundle({ ...bundle, checkpoint: bundle.checkpoint.replace('\n9\n', '\n8\n') }, trust), IntegrityError);
      assert.throws(() => verifyInclusionBundle({ nonsense: true } as never, trust), MalformedInputError);
    });

    describe('tampering with stored entries is caught and the first bad index named', () => {
      const cases: [string, (db: Database) => Promise<unknown>, number][] = [
        ['change one entry', (d) => d.query(`UPDATE ledger_entries SET entry = replace(entry, '"outcome":"0"', '"outcome":"4"') WHERE idx = 6`), 6],
        [
          'change an entry and its stored leaf hash',
          async (d) => {
            const row = (await d.query<{ entry: string }>('SELECT entry FROM ledger_entries WHERE idx = 4')).rows[0]!;
            const forged = row.entry.replace('"outcome":"0"', '"outcome":"4"');
            await d.query('UPDATE ledger_entries SET entry = $1, leaf_hash = $2 WHERE idx = 4', [forged, hashLeaf(Buffer.from(forged))]);
          },
          4,
        ],
        ['delete one entry', (d) => d.query('DELETE FROM ledger_entries WHERE idx = 3'), 3],
        [
          'delete one entry and renumber the rest',
          async (d) => {
            await d.query('DELETE FROM ledger_entries WHERE idx = 3');
            await d.query('UPDATE ledger_entries SET idx = idx - 1 WHERE idx > 3');
          },
          3,
        ],
        [
          'insert one entry',
          async (d) => {
            await d.query('UPDATE ledger_entries SET idx = idx + 100 WHERE idx >= 5');
            await d.query('UPDATE ledger_entries SET idx = idx - 99 WHERE idx >= 105');
            const row = (await d.query<{ entry: string; patient: string }>('SELECT entry, patient FROM ledger_entries WHERE idx = 4')).rows[0]!;
            const forged = row.entry.replace('"id":"4"', '"id":"5"');
            await d.query('INSERT INTO ledger_entries (idx, entry, leaf_hash, patient) VALUES (5, $1, $2, $3)', [
              forged,
              hashLeaf(Buffer.from(forged)),
              row.patient,
            ]);
          },
          5,
        ],
        [
          'reorder two entries',
          async (d) => {
            await d.query('UPDATE ledger_entries SET idx = -1 WHERE idx = 7');
            await d.query('UPDATE ledger_entries SET idx = 7 WHERE idx = 8');
            await d.query('UPDATE ledger_entries SET idx = 8 WHERE idx = -1');
          },
          7,
        ],
        ['truncate the tail but keep the checkpoints', (d) => d.query('DELETE FROM ledger_entries WHERE idx >= 9'), 9],
      ];
      for (const [name, tamper, expected] of cases) {
        test(name, async () => {
          await logWith(db, 10);
          assert.equal((await verifyLog(db, trust)).ok, true);
          await tamper(db);
          const report = await verifyLog(db, trust);
          assert.equal(report.ok, false, name);
          assert.equal(report.firstBadIndex, expected, `${name}: ${report.problem}`);
        });
      }

      test('rolling the whole log back is caught by a checkpoint a witness holds', async () => {
        const log = await logWith(db, 6);
        const witnessKey = generateCheckpointKey('hospital-b.test/witness');
        const witness = await Witness.open(db, witnessKey.signer, logKey.signer.verifier);
        const held = await collectCosignatures(log, [witness]);
        await db.query('DELETE FROM ledger_entries WHERE idx >= 4');
        await db.query('DELETE FROM ledger_checkpoints WHERE size > 4');
        await db.query('UPDATE ledger_head SET size = 4');
        assert.equal((await verifyLog(db, trust)).ok, true, 'alone, a consistent rollback looks fine');
        const report = await verifyLog(db, { ...trust, external: [held] });
        assert.equal(report.ok, false);
        assert.equal(report.firstBadIndex, 4);
      });
    });

    describe('witnesses', () => {
      test('each hospital witness cosigns after checking consistency; verify counts the quorum', async () => {
        const log = await logWith(db, 3);
        const keys = [generateCheckpointKey('hospital-a.test/w'), generateCheckpointKey('hospital-b.test/w')];
        const witnesses = await Promise.all(keys.map((k) => Witness.open(db, k.signer, logKey.signer.verifier)));
        const verifiers = keys.map((k) => k.signer.verifier);
        await collectCosignatures(log, witnesses);
        for (let i = 0; i < 4; i++) await log.append(accessEvent(`more-${i}`));
        const note = await collectCosignatures(log, witnesses);
        assert.equal((await witnesses[0]!.latest())?.size, 7);
        const report = await verifyLog(db, { ...trust, witnesses: verifiers, quorum: 2 });
        assert.deepEqual(report.latestCosigners, ['hospital-a.test/w', 'hospital-b.test/w']);
        assert.equal(report.ok, true);
        const bundle = await buildInclusionBundle(log, 5);
        assert.equal(bundle.checkpoint, note);
        assert.deepEqual(verifyInclusionBundle(bundle, { ...trust, witnesses: verifiers, quorum: 2 }).cosigners.length, 2);
        await log.append(accessEvent('uncosigned'));
        assert.equal((await verifyLog(db, { ...trust, witnesses: verifiers, quorum: 1 })).ok, false);
      });

      test('a forked log is caught by a witness: same size with another root, or an inconsistent extension', async () => {
        const log = await logWith(db, 4);
        const witness = await Witness.open(db, generateCheckpointKey('hospital-c.test/w').signer, logKey.signer.verifier);
        await collectCosignatures(log, [witness]);
        // The log operator signs a second history of the same size (a split view).
        const forged = await forkedCheckpoint(4);
        await assert.rejects(witness.addCheckpoint({ oldSize: 4, consistencyProof: [], note: forged.note }), ForkDetectedError);
        // And a longer history that does not extend what the witness saw.
        const longer = await forkedCheckpoint(6);
        await assert.rejects(
          witness.addCheckpoint({ oldSize: 4, consistencyProof: longer.tree.consistencyProof(4, 6), note: longer.note }),
          (error: unknown) => error instanceof ForkDetectedError && error.evidence.length === 2,
        );
        // The genuine log still extends fine.
        await log.append(accessEvent('genuine'));
        await collectCosignatures(log, [witness]);
        assert.equal((await witness.latest())?.size, 5);
      });

      test('two processes of one witness (one database): each answers from the state the other moved it to, never from its own memory of it', async () => {
        const log = await logWith(db, 2);
        const key = generateCheckpointKey('hospital-e.test/w');
        const [first, second] = await Promise.all([Witness.open(db, key.signer, logKey.signer.verifier), Witness.open(db, key.signer, logKey.signer.verifier)]);
        await collectCosignatures(log, [first!]);
        await log.append(accessEvent('moved-by-the-second'));
        await collectCosignatures(log, [second!]);
        // The first still remembers size 2; the stored state is 3. A request from 2 (a stale log view) is a conflict at 3.
        await log.append(accessEvent('next'));
        const note = await log.checkpoint();
        await assert.rejects(
          first!.addCheckpoint({ oldSize: 2, consistencyProof: log.consistencyProof(2, 4), note }),
          (error: unknown) => (error as { witnessSize?: number }).witnessSize === 3,
        );
        // A fork of the size the other process moved to is caught by the first as well.
        const forged = await forkedCheckpoint(3);
        await assert.rejects(first!.addCheckpoint({ oldSize: 3, consistencyProof: [], note: forged.note }), ForkDetectedError);
        const cosignature = await first!.addCheckpoint({ oldSize: 3, consistencyProof: log.consistencyProof(3, 4), note });
        assert.equal(cosignature.name, 'hospital-e.test/w');
        assert.equal((await second!.latest())?.size, 4);
      });

      test('cosignatures of concurrent rounds are all kept on the checkpoint (the second round re-reads the note it did not see)', async () => {
        const log = await logWith(db, 3);
        const witnesses = await Promise.all(
          ['f', 'g', 'h'].map((h) => Witness.open(db, generateCheckpointKey(`hospital-${h}.test/w`).signer, logKey.signer.verifier)),
        );
        await Promise.all(witnesses.map((w) => log.cosign([w], { strict: true })));
        const report = await verifyLog(db, { ...trust, witnesses: witnesses.map((w) => w.verifier), quorum: 3 });
        assert.equal(report.ok, true);
        assert.deepEqual([...report.latestCosigners].sort(), ['hospital-f.test/w', 'hospital-g.test/w', 'hospital-h.test/w']);
      });

      test('with cosignIntervalMs, commits under load share cosigning rounds, each for the latest checkpoint; a lone commit is cosigned at once', async () => {
        const witness = await Witness.open(db, generateCheckpointKey('hospital-i.test/w').signer, logKey.signer.verifier);
        const asked: number[] = [];
        // The real witness, with each request's checkpoint size noted.
        const counting = {
          verifier: witness.verifier,
          addCheckpoint: (request: Parameters<Witness['addCheckpoint']>[0]) => {
            asked.push(verifyCheckpointNote(request.note, logKey.signer.verifier).size);
            return witness.addCheckpoint(request);
          },
        };
        const log = await AuditLog.open(db, logKey.signer, { cosigners: [counting], quorum: 1, cosignIntervalMs: 2_000 });
        await log.append(accessEvent('lone'));
        // Well within the interval: the first round did not wait for it.
        await log.witnessedCheckpoint(1, 1_500);
        for (let i = 0; i < 12; i++) await log.append(accessEvent(`busy-${i}`));
        await log.flush();
        // Twelve commits, one checkpoint each: without the interval, a round each.
        assert.ok(asked.length < 13, `rounds: ${asked.join(', ')}`);
        assert.equal(asked.at(-1), 13, 'the last round cosigned the latest checkpoint');
        assert.equal(log.health().witnessedSize, 13);
        assert.equal((await verifyLog(db, { ...trust, witnesses: [witness.verifier], quorum: 1 })).ok, true);
        await log.close();
      });

      test('a witness refuses checkpoints not signed by the log and stale requests', async () => {
        const log = await logWith(db, 2);
        const witness = await Witness.open(db, generateCheckpointKey('hospital-d.test/w').signer, logKey.signer.verifier);
        const impostor = generateCheckpointKey('medshare.test/audit').signer;
        const { signNote } = await import('../src/index.ts');
        const body = (await log.checkpoint()).split('\n\n')[0]! + '\n';
        await assert.rejects(witness.addCheckpoint({ oldSize: 0, consistencyProof: [], note: signNote(body, [impostor], 1) }), IntegrityError);
        await collectCosignatures(log, [witness]);
        await assert.rejects(witness.addCheckpoint({ oldSize: 0, consistencyProof: [], note: await log.checkpoint() }), /already cosigned size 2/);
      });
    });
  });
}

/** A second, different history signed with the genuine log key: what a misbehaving log operator could produce. */
async function forkedCheckpoint(size: number) {
  const { MerkleTree, formatCheckpoint, signNote } = await import('../src/index.ts');
  const tree = new MerkleTree();
  for (let i = 0; i < size; i++) tree.append(hashLeaf(Buffer.from(`forged ${i}`)));
  const body = formatCheckpoint({ origin: 'medshare.test/audit', size, rootHash: tree.rootHash() });
  return { tree, note: signNote(body, [logKey.signer], Math.floor(Date.now() / 1000)) };
}

test('entries parse back to the events appended', async () => {
  const db = databases[0]!.db;
  await reset(db);
  const log = await AuditLog.open(db, logKey.signer);
  const { index } = await log.append({ ...accessEvent('zoe'), type: 'emergency-access', emergencyReason: 'ETREAT' });
  const stored = await log.entry(index);
  assert.deepEqual(parseEntry(stored.bytes), stored.event);
  assert.equal((await log.entriesForPatient(pseudonym('zoe'))).length, 1);
  await assert.rejects(log.entry(99), MalformedInputError);
});

test('a reader needs no key and writes nothing; a database without a log is refused clearly', async () => {
  const db = databases[0]!.db;
  await reset(db);
  await assert.rejects(AuditLog.openReader(db), /holds no audit log/);
  const writer = await AuditLog.open(db, logKey.signer);
  await writer.append(accessEvent('reader'));
  const { log, logVkey } = await AuditLog.openReader(db);
  assert.equal(logVkey, logKey.signer.verifier.vkey);
  assert.equal(log.size, 1);
  assert.ok(log.rootHash().equals(writer.rootHash()));
  await assert.rejects(log.append(accessEvent('nope')), UnsupportedError);
});
