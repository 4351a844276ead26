/**
 * The cloud's conversion pool: worker threads give exactly the in-thread conversions and the same typed errors;
 * over HTTP, a revoked delegation is refused although a worker cached its key, a worker that dies mid-read fails
 * that read with a 500 problem (no hang) and is replaced, and closing the platform stops the workers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { abe, AccessDeniedError, curve, IntegrityError, MalformedInputError, MedShareError, por, pre } from '@medshare/crypto';
import { openDatabase, type Database } from '@medshare/db';
import { ConversionPool, InThreadConverter, InThreadEncryptor } from '../src/cloud/conversion-pool.ts';
import { parseRecordFrames, recordFrames, RECORD_STREAM_TYPE } from '../src/cloud/record-stream.ts';
import { tagCiphertext } from '../src/storage-audit/tags.ts';
import { HttpProblemError, sha256Name } from '../src/index.ts';
import { LAB_POLICY, sessionFetch, startCast, type Cast } from './harness.ts';

/** The pool's workers, for the tests that stop one as a crash would. */
const workersOf = (pool: ConversionPool) =>
  (pool as unknown as { slots: Array<{ worker: { threadId: number; terminate(): Promise<number> }; jobs: Map<number, unknown> }> }).slots;

describe('conversion pool', () => {
  let pool: ConversionPool;
  let ta: ReturnType<typeof abe.setup>;
  let patient: pre.PatientSecretKey;
  let records: Uint8Array[];

  before(async () => {
    await abe.init();
    pool = await ConversionPool.start(2);
    ta = abe.setup();
    patient = pre.generatePatientKey('psn:pool-test-patient-0001', ['lab', 'imaging']);
    const keys = pre.publicKeys(patient);
    // More than one job's worth (32), of varied sizes: some fit in a shared Buffer slab, some do not.
    records = Array.from({ length: 70 }, (_, i) => pre.encrypt(keys, 'lab', `r${i}`, randomBytes(i * 97)));
  });
  after(() => pool.close());

  const delegation = (category = 'lab') => {
    const rk = pre.delegate(patient, category, ta.publicKey, LAB_POLICY);
    return { delegationId: Buffer.from(rk.delegationId).toString('hex'), reencryptionKey: pre.encodeReEncryptionKey(rk) };
  };

  test('workers convert to exactly the bytes of in-thread conversion, in order, for several delegations', async () => {
    const inThread = new InThreadConverter();
    const headers = records.map((ct) => pre.splitRecord(ct).header);
    for (const key of [delegation(), delegation()]) {
      const expected = await inThread.convert(key, headers);
      assert.deepEqual(await pool.convert(key, headers), expected);
      assert.deepEqual(await pool.convert(key, headers.slice(3, 4)), expected.slice(3, 4));
      // A converted header and the stored payload make exactly the in-memory conversion of the whole record.
      const rk = pre.decodeReEncryptionKey(key.reencryptionKey);
      expected.forEach((header, i) =>
        assert.deepEqual(Buffer.concat([header, pre.splitRecord(records[i]!).payload]), Buffer.from(pre.convert(rk, records[i]!))),
      );
    }
    assert.deepEqual(await pool.convert(delegation(), []), []);
    await inThread.close();
  });

  test('a delegation id cached with other key bytes is decoded afresh: the bytes the database holds decide', async () => {
    const first = delegation();
    const second = { ...delegation(), delegationId: first.delegationId };
    await pool.convert(first, records.slice(0, 2));
    assert.deepEqual(await pool.convert(second, records.slice(0, 2)), await new InThreadConverter().convert(second, records.slice(0, 2)));
  });

  test('workers encrypt and tag a batch in order: each record decrypts for the patient, each grant converts for the emergency reader, each tag set verifies', async () => {
    const capsule = pre.emergencyCapsule(ta.publicKey, 'role:emergency');
    const emergencyReader = pre.createReader(abe.keygen(ta.masterKey, 'role:emergency', { maxOccurrences: 1 }));
    const plaintexts = Array.from({ length: 40 }, (_, i) => new Uint8Array(randomBytes(i * 50)));
    const batch = {
      bundle: pre.encodePublicKeys(patient),
      capsules: [{ category: 'lab', capsule: pre.encodeEmergencyCapsule(capsule), hashOfX: curve.g2ToBytes(capsule.hashOfX) }],
      records: plaintexts.map((plaintext, i) => ({ recordId: `e${i}`, category: i % 2 === 0 ? 'lab' : 'imaging', plaintext })),
      tagging: { chunkSectors: 8 },
    };
    const info = pre.decodeEmergencyCapsule(pre.encodeEmergencyCapsule(capsule));
    for (const encryptor of [pool, new InThreadEncryptor()]) {
      const encrypted = await encryptor.encrypt(batch);
      assert.equal(encrypted.length, plaintexts.length);
      encrypted.forEach((r, i) => {
        assert.deepEqual(pre.decrypt(patient, r.ciphertext), plaintexts[i]);
        assert.equal(pre.openRecordHeader(r.ciphertext).core.recordId, `e${i}`);
        // Each ciphertext is tagged where it was encrypted, with exactly the commitments the hospital's tagger computes, which verify.
        assert.deepEqual(r.tags, tagCiphertext(r.ciphertext, 8));
        assert.ok(por.verifyTagSet(r.ciphertext, por.decodeTagSet(r.tags!)));
        if (i % 2 === 1) return assert.equal(r.grant, undefined, 'imaging has no capsule');
        assert.deepEqual(emergencyReader.decrypt(pre.convert(pre.emergencyGrantKey(info, r.grant!), r.ciphertext)), plaintexts[i]);
      });
    }
    // A bundle that does not verify is refused with its type, in a worker as in-thread.
    const forged = { ...batch, bundle: Uint8Array.from(batch.bundle, (b, i) => (i === batch.bundle.length - 1 ? b ^ 1 : b)) };
    await assert.rejects(pool.encrypt(forged), MedShareError);
  });

  test("a worker's refusal keeps its type (and so its HTTP status)", async () => {
    await assert.rejects(pool.convert(delegation('imaging'), records.slice(0, 1)), AccessDeniedError);
    await assert.rejects(new InThreadConverter().convert(delegation('imaging'), records.slice(0, 1)), AccessDeniedError);
  });

  test('a worker that dies fails its jobs at once and is replaced', async () => {
    const key = delegation();
    const failed = assert.rejects(pool.convert(key, records), /a conversion worker stopped/);
    await Promise.all(workersOf(pool).map((slot) => slot.worker.terminate()));
    await failed;
    assert.equal((await pool.convert(key, records)).length, records.length);
  });

  test('close stops every worker; a closed pool refuses work', async () => {
    const own = await ConversionPool.start(1);
    await own.close();
    assert.ok(workersOf(own).every((slot) => slot.worker.threadId === -1));
    await assert.rejects(own.convert(delegation(), records.slice(0, 1)), /closed/);
  });
});

describe('the platform with a conversion pool', () => {
  let db: Database;
  let cast: Cast;
  let pool: ConversionPool;

  before(async () => {
    db = await openDatabase();
    // The gateway's upload below is encrypted by a worker too.
    cast = await startCast(db, { conversionWorkers: 1, encryptionWorkers: 1 });
    pool = (cast.platform.cloud as unknown as { converter: ConversionPool }).converter;
    await cast.patient.register();
    await cast.gateway.enrol('pool-patient', cast.patient.key.patientId);
    // 80 lab records: a read of all of them spans three jobs.
    const entry = Array.from({ length: 80 }, (_, i) => ({
      resource: {
        resourceType: 'Observation',
        id: `obs-${i}`,
        status: 'final',
        code: { text: 'test' },
        subject: { reference: 'Patient/pool-patient' },
        valueQuantity: { value: i },
      },
    }));
    await cast.gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry });
  });
  after(async () => {
    await cast.platform.close();
    await db.close();
  });

  test('reads decrypt; after revocation the same reader is refused although the worker cached the key', async () => {
    const abePublicKey = await cast.client.abePublicKey();
    const { delegationId } = await cast.patient.delegate('lab', LAB_POLICY, abePublicKey);
    const first = await cast.chen.read(cast.patient.key.patientId, 'lab');
    assert.deepEqual(first.map((r) => r.id).sort(), Array.from({ length: 80 }, (_, i) => `obs-${i}`).sort());
    await cast.patient.revoke(delegationId);
    await assert.rejects(
      cast.chen.read(cast.patient.key.patientId, 'lab'),
      (e: HttpProblemError) => e.status === 403 && /no active delegation/.test(e.message),
    );
    await cast.patient.delegate('lab', LAB_POLICY, abePublicKey);
    assert.equal((await cast.chen.read(cast.patient.key.patientId, 'lab')).length, first.length);
  });

  test('a worker dying mid-read fails that read with a 500 problem, and the next read succeeds', async () => {
    const [slot] = workersOf(pool);
    const reading = sessionFetch(cast.chen.session, cast.urlFor(`/cloud/patients/${cast.patient.key.patientId}/read`), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ category: 'lab' }),
    });
    while (slot!.jobs.size === 0) await new Promise((resolve) => setImmediate(resolve));
    await slot!.worker.terminate();
    const response = await reading;
    assert.equal(response.status, 500);
    assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.deepEqual(await response.json(), {
      type: 'urn:medshare:problem:internal',
      title: 'Internal error',
      status: 500,
      detail: 'the request could not be completed',
    });
    assert.equal((await cast.chen.read(cast.patient.key.patientId, 'lab')).length, 80);
  });

  test('a read as a binary record stream carries exactly the ciphertexts of the JSON read, which decrypt', async () => {
    const url = new URL(`/cloud/patients/${cast.patient.key.patientId}/read`, cast.base);
    const post = (accept: string) =>
      sessionFetch(cast.chen.session, url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept },
        body: JSON.stringify({ category: 'lab' }),
      });
    const json = (await (await post('application/json')).json()) as { records: Array<{ recordId: string; ciphertext: string }> };
    const response = await post('application/octet-stream');
    assert.equal(response.headers.get('content-type'), RECORD_STREAM_TYPE);
    const streamed: Array<{ recordId: string; ciphertext: string }> = [];
    for await (const r of parseRecordFrames(response.body!))
      streamed.push({ recordId: r.recordId, ciphertext: Buffer.concat([r.header, r.payload]).toString('base64') });
    assert.equal(streamed.length, 80);
    // Conversion is randomised only through the key, not per read: both reads convert to the same bytes.
    assert.deepEqual(streamed, json.records);
    assert.deepEqual(streamed.map((r) => cast.chen.decrypt(r.ciphertext).id).sort(), json.records.map((r) => cast.chen.decrypt(r.ciphertext).id).sort());
  });

  test('a truncated or implausible record stream is a typed error, not a hang or a short answer', async () => {
    const frames: Uint8Array[] = [];
    for await (const frame of recordFrames([{ recordId: 'r1', header: new Uint8Array(40).fill(1), payload: new Uint8Array(1000).fill(2) }])) frames.push(frame);
    const whole = Buffer.concat(frames);
    const parse = async (bytes: Uint8Array, cut = 7) => {
      const pieces = Array.from({ length: Math.ceil(bytes.length / cut) }, (_, i) => bytes.subarray(i * cut, (i + 1) * cut));
      const out = [];
      for await (const r of parseRecordFrames(
        (async function* () {
          yield* pieces;
        })(),
      ))
        out.push(r);
      return out;
    };
    assert.deepEqual(
      (await parse(whole)).map((r) => [r.recordId, r.header.length, r.payload.length]),
      [['r1', 40, 1000]],
    );
    for (const cut of [1, 2, 6, 47, whole.length - 1]) await assert.rejects(parse(whole.subarray(0, cut)), MalformedInputError, `cut at ${cut}`);
    const hugeHeader = Buffer.from(whole);
    hugeHeader.writeUInt32BE(0xffffffff, 2 + 2);
    await assert.rejects(parse(hugeHeader), /implausible header length/);
    await assert.rejects(parse(new Uint8Array([0, 0])), /implausible record id length/);
  });

  test("an upload tagged by the gateway's worker and checked across the cloud's pool stores every record's tags, and they verify", async () => {
    const rows = (
      await db.query<{ ciphertext: Uint8Array; tags: Uint8Array }>(
        'SELECT r.ciphertext, t.tags FROM cloud_records r JOIN storage_tags t ON t.record_id = r.record_id WHERE r.patient = $1',
        [cast.patient.key.patientId],
      )
    ).rows;
    assert.equal(rows.length, 80);
    for (const r of rows) assert.ok(por.verifyTagSet(r.ciphertext, por.decodeTagSet(r.tags)));
  });

  test('the record hash the ledger names is stored at upload; a record stored before it existed is hashed at read', async () => {
    const store = (
      cast.platform.cloud as unknown as {
        store: { ciphertexts(p: string, c: string): Promise<Array<{ recordId: string; ciphertext: Uint8Array; hash: string }>> };
      }
    ).store;
    const patient = cast.patient.key.patientId;
    const rows = (
      await db.query<{ record_id: string; ciphertext_hash: string | null }>('SELECT record_id, ciphertext_hash FROM cloud_records WHERE patient = $1', [
        patient,
      ])
    ).rows;
    assert.ok(rows.length === 80 && rows.every((r) => r.ciphertext_hash !== null));
    for (const r of await store.ciphertexts(patient, 'lab')) assert.equal(r.hash, sha256Name(r.ciphertext));
    await db.query('UPDATE cloud_records SET ciphertext_hash = NULL WHERE record_id = $1', [rows[0]!.record_id]);
    const legacy = (await store.ciphertexts(patient, 'lab')).find((r) => r.recordId === rows[0]!.record_id)!;
    assert.equal(legacy.hash, sha256Name(legacy.ciphertext));
  });

  test('edit a stored payload in the database: the reader refuses the record (the stored hash does not vouch for it)', async () => {
    const [row] = (
      await db.query<{ record_id: string; ciphertext: Uint8Array }>('SELECT record_id, ciphertext FROM cloud_records WHERE patient = $1 ORDER BY seq LIMIT 1', [
        cast.patient.key.patientId,
      ])
    ).rows;
    const edited = new Uint8Array(row!.ciphertext);
    edited[edited.length - 1]! ^= 1;
    await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [row!.record_id, edited]);
    await assert.rejects(cast.chen.read(cast.patient.key.patientId, 'lab', [row!.record_id]), IntegrityError);
    await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [row!.record_id, row!.ciphertext]);
  });

  test('closing the platform stops the workers', async () => {
    await cast.platform.close();
    assert.ok(workersOf(pool).every((slot) => slot.worker.threadId === -1));
  });
});
