/**
 * The gateway's index writer (src/gateway/search-index.ts) across a restart: its index secret lives KEK-wrapped in
 * the gateway's database, so a new process derives the same sub-index keys and continues the counters; a database
 * copied without the KEK yields no key; the patient can open what her hospitals wrote.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { abe, IntegrityError, pre, sse } from '@medshare/crypto';
import { migrate, openDatabase, randomKeyEncryptionKey, type Database } from '@medshare/db';
import { SearchIndexWriter, subIndexName } from '../src/gateway/search-index.ts';
import { GATEWAY_MIGRATIONS } from '../src/migrations.ts';
import { keywordsOf } from '../src/search/keywords.ts';

const observation = (id: string, code: string) => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code }] },
  effectiveDateTime: '2021-02-03',
});

describe('gateway index writer', () => {
  let db: Database;
  const kek = randomKeyEncryptionKey();
  let patient: pre.PatientSecretKey;
  let keys: pre.PatientPublicKeys;
  before(async () => {
    await abe.init();
    patient = pre.generatePatientKey('psn:writer-test-patient-0001', ['lab']);
    keys = pre.publicKeys(patient);
    db = await openDatabase();
    await migrate(db, 'gateway', GATEWAY_MIGRATIONS);
  });
  after(async () => db.close());

  test('after a restart the same hospital continues its sub-index; the patient opens its key and state', async () => {
    const first = await new SearchIndexWriter(db, kek).writes(
      'st-marys',
      keys,
      [{ category: 'lab', keyEpoch: 1, indexEpoch: 1, version: 0 }],
      [{ recordId: 'rec-1', category: 'lab', keywords: keywordsOf(observation('o1', '2093-3')) }],
      new Map(),
    );
    assert.equal(first.length, 1);
    const created = first[0]!;
    assert.ok(created.keyCapsule !== undefined && created.expectedVersion === 0);
    // A new process: nothing in memory, the same database and KEK.
    const again = await new SearchIndexWriter(db, kek).writes(
      'st-marys',
      keys,
      [{ category: 'lab', keyEpoch: 1, indexEpoch: 1, version: 1, state: created.state }],
      [{ recordId: 'rec-2', category: 'lab', keywords: keywordsOf(observation('o2', '2093-3')) }],
      new Map(),
    );
    assert.equal(again[0]!.keyCapsule, undefined, 'an existing sub-index is not created again');
    // The patient decrypts the key from its capsule and finds both records.
    const key = pre.decrypt(patient, created.keyCapsule!);
    const name = subIndexName(keys.patientId, 'lab', 1, 1, 'st-marys');
    const state = sse.openState(key, name, again[0]!.state, 2);
    assert.equal(state.counts.get('code:http://loinc.org|2093-3'), 2);
    const rows = new Map([...created.rows, ...again[0]!.rows].map((r) => [Buffer.from(r.label).toString('hex'), r.value]));
    const q = sse.query(key, state, 'code:http://loinc.org|2093-3');
    assert.deepEqual(q.resolve(q.labels.map((l) => rows.get(Buffer.from(l).toString('hex')))).recordIds, ['rec-1', 'rec-2']);
  });

  test('the stored secret is KEK-wrapped: another KEK (a copied database) opens nothing', async () => {
    const stored = (await db.query<{ secret: Uint8Array }>("SELECT secret FROM gateway_index_secrets WHERE hospital = 'st-marys'")).rows[0]!.secret;
    assert.equal(stored.length, 1 + 8 + 12 + 32 + 16);
    await assert.rejects(
      new SearchIndexWriter(db, randomKeyEncryptionKey()).writes(
        'st-marys',
        keys,
        [{ category: 'lab', keyEpoch: 1, indexEpoch: 1, version: 0 }],
        [{ recordId: 'rec-3', category: 'lab', keywords: keywordsOf(observation('o3', '718-7')) }],
        new Map(),
      ),
      IntegrityError,
    );
  });

  test("a new version deletes its predecessor's keywords: rows carried by the new record, the old record resolves to nothing; stored keywords open only for their record", async () => {
    const writer = new SearchIndexWriter(db, kek);
    const v1 = keywordsOf(observation('o9', '2093-3'));
    const sealed = await writer.sealKeywords('st-marys', 'rec-v1', v1);
    assert.ok(!Buffer.from(sealed).includes(Buffer.from('2093-3')), 'stored keywords are wrapped');
    assert.deepEqual(await writer.openKeywords('st-marys', 'rec-v1', sealed), v1);
    await assert.rejects(writer.openKeywords('st-marys', 'rec-v2', sealed), IntegrityError);
    const [w1] = await writer.writes(
      'st-marys',
      keys,
      [{ category: 'lab', keyEpoch: 1, indexEpoch: 9, version: 0 }],
      [{ recordId: 'rec-v1', category: 'lab', keywords: v1 }],
      new Map(),
    );
    const v2 = keywordsOf(observation('o9', '2085-9'));
    const [w2] = await writer.writes(
      'st-marys',
      keys,
      [{ category: 'lab', keyEpoch: 1, indexEpoch: 9, version: 1, state: w1!.state }],
      [{ recordId: 'rec-v2', category: 'lab', keywords: v2, supersedes: { recordId: 'rec-v1', keywords: v1 } }],
      new Map(),
    );
    assert.equal(w2!.rows.length, v1.length + v2.length);
    assert.ok(
      w2!.rows.every((r) => r.recordId === 'rec-v2'),
      'every row is carried by the new version',
    );
    const key = pre.decrypt(patient, w1!.keyCapsule!);
    const state = sse.openState(key, subIndexName(keys.patientId, 'lab', 1, 9, 'st-marys'), w2!.state, 2);
    const rows = new Map([...w1!.rows, ...w2!.rows].map((r) => [Buffer.from(r.label).toString('hex'), r.value]));
    const find = (keyword: string) => {
      const q = sse.query(key, state, keyword);
      return q.resolve(q.labels.map((l) => rows.get(Buffer.from(l).toString('hex')))).recordIds;
    };
    assert.deepEqual(find('code:http://loinc.org|2093-3'), []);
    assert.deepEqual(find('code:http://loinc.org|2085-9'), ['rec-v2']);
    assert.deepEqual(find('type:Observation'), ['rec-v2']);
  });

  test('two hospitals, or two epochs, have unrelated keys (each state opens only under its own)', async () => {
    const writer = new SearchIndexWriter(db, kek);
    const make = (hospital: string, indexEpoch: number) =>
      writer.writes(
        hospital,
        keys,
        [{ category: 'lab', keyEpoch: 1, indexEpoch, version: 0 }],
        [{ recordId: `rec-${hospital}-${indexEpoch}`, category: 'lab', keywords: keywordsOf(observation('o', '718-7')) }],
        new Map(),
      );
    const [a, b, c] = [(await make('st-marys', 2))[0]!, (await make('riverside', 1))[0]!, (await make('st-marys', 3))[0]!];
    const keyOf = (w: typeof a) => Buffer.from(pre.decrypt(patient, w.keyCapsule!)).toString('hex');
    assert.equal(new Set([keyOf(a), keyOf(b), keyOf(c)]).size, 3);
    assert.throws(() => sse.openState(pre.decrypt(patient, a.keyCapsule!), subIndexName(keys.patientId, 'lab', 1, 1, 'riverside'), b.state), IntegrityError);
  });
});
