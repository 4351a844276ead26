/**
 * The cloud's conversion pool: worker threads give exactly the in-thread conversions and the same typed errors;
 * over HTTP, a revoked delegation is refused although a worker cached its key, a worker that dies mid-read fails
 * that read with a 500 problem (no hang) and is replaced, and closing the platform stops the workers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { abe, AccessDeniedError, pre } from '@medshare/crypto';
import { openDatabase, type Database } from '@medshare/db';
import { ConversionPool, InThreadConverter } from '../src/cloud/conversion-pool.ts';
import { HttpProblemError } from '../src/index.ts';
import { LAB_POLICY, startCast, type Cast } from './harness.ts';

/** The pool's workers, for the tests that stop one as a crash would. */
const workersOf = (pool: ConversionPool) => (pool as unknown as { slots: Array<{ worker: { threadId: number; terminate(): Promise<number> }; jobs: Map<number, unknown> }> }).slots;

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
    for (const key of [delegation(), delegation()]) {
      const expected = await inThread.convert(key, records);
      assert.deepEqual(await pool.convert(key, records), expected);
      assert.deepEqual(await pool.convert(key, records.slice(3, 4)), expected.slice(3, 4));
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
    cast = await startCast(db, { conversionWorkers: 1 });
    pool = (cast.platform.cloud as unknown as { converter: ConversionPool }).converter;
    await cast.patient.register();
    await cast.gateway.enrol('pool-patient', cast.patient.key.patientId);
    // 80 lab records: a read of all of them spans three jobs.
    const entry = Array.from({ length: 80 }, (_, i) => ({ resource: { resourceType: 'Observation', id: `obs-${i}`, status: 'final', code: { text: 'test' }, subject: { reference: 'Patient/pool-patient' }, valueQuantity: { value: i } } }));
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
    await assert.rejects(cast.chen.read(cast.patient.key.patientId, 'lab'), (e: HttpProblemError) => e.status === 403 && /no active delegation/.test(e.message));
    await cast.patient.delegate('lab', LAB_POLICY, abePublicKey);
    assert.equal((await cast.chen.read(cast.patient.key.patientId, 'lab')).length, first.length);
  });

  test('a worker dying mid-read fails that read with a 500 problem, and the next read succeeds', async () => {
    const [slot] = workersOf(pool);
    const reading = fetch(cast.urlFor(`/cloud/patients/${cast.patient.key.patientId}/read`), {
      method: 'POST', headers: { authorization: `Bearer ${cast.chen.session.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ category: 'lab' }),
    });
    while (slot!.jobs.size === 0) await new Promise((resolve) => setImmediate(resolve));
    await slot!.worker.terminate();
    const response = await reading;
    assert.equal(response.status, 500);
    assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.deepEqual(await response.json(), { type: 'urn:medshare:problem:internal', title: 'Internal error', status: 500, detail: 'the request could not be completed' });
    assert.equal((await cast.chen.read(cast.patient.key.patientId, 'lab')).length, 80);
  });

  test('closing the platform stops the workers', async () => {
    await cast.platform.close();
    assert.ok(workersOf(pool).every((slot) => slot.worker.threadId === -1));
  });
});
