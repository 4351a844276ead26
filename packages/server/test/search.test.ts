/**
 * Encrypted FHIR search over the real platform (docs/platform.md § Search): gateways of two hospitals write their
 * own sub-indexes at upload, the cloud answers label lookups, the reader's SDK decrypts and checks. Tested against
 * a plaintext oracle, and by adversaries: a stale token, a reader the policy refuses (with the cloud's database
 * and re-encryption keys in hand), a revoked reader keeping its index key, a cloud that edits its index rows, and a
 * scan of everything the cloud stores for the index.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { abe, AccessDeniedError, IntegrityError, pre, sse } from '@medshare/crypto';
import { openTestDatabases, type TestDatabase } from '@medshare/db';
import { Client } from 'fhir-kit-client';
import { GatewayClient, httpSearchTransport, HttpProblemError, PatientClient, startFhirView, type DoctorClient, type Session } from '../src/index.ts';
import { parseQuery } from '../src/search/keywords.ts';
import { searchRecords, type SearchTransport } from '../src/search/reader.ts';
import { LAB_POLICY, sampleBundle, sessionFetch, startCast, type Cast } from './harness.ts';

const databases: TestDatabase[] = (await openTestDatabases()).slice(0, 1);
after(async () => {
  for (const { db } of databases) await db.close();
});

const LOINC = 'http://loinc.org';
const CODES = ['2093-3', '2085-9', '8480-6', '718-7'];
const STATUSES = ['final', 'amended', 'preliminary'];
let serial = 0;

interface Observation {
  resourceType: 'Observation';
  id: string;
  status: string;
  subject: { reference: string };
  code: { coding: Array<{ system: string; code: string }> };
  effectiveDateTime: string;
  note?: Array<{ text: string }>;
}

function observation(patient: string, code: string, status: string, day: string, note?: string): Observation {
  return {
    resourceType: 'Observation',
    id: `obs-${++serial}`,
    status,
    subject: { reference: `Patient/${patient}` },
    code: { coding: [{ system: LOINC, code }] },
    effectiveDateTime: `${day}T09:30:00+01:00`,
    ...(note ? { note: [{ text: note }] } : {}),
  };
}

const transaction = (resources: object[]) => ({ resourceType: 'Bundle', type: 'transaction', entry: resources.map((resource) => ({ resource })) });
const ids = (bundle: Record<string, unknown>) => (bundle.entry as Array<{ resource: { id: string } }>).map((e) => e.resource.id).sort();

const day = fc
  .tuple(fc.integer({ min: 2018, max: 2022 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 }))
  .map(([y, m, d]) => `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`);

for (const { label, db } of databases) {
  describe(`encrypted search on ${label}`, () => {
    let cast: Cast;
    let abePublicKey: abe.PublicKey;
    let riverside: GatewayClient;
    let patient: string;
    let fhirId: string;
    let delegationId: string;
    /** Everything uploaded, in plaintext: the oracle. */
    const uploaded: Observation[] = [];

    const upload = async (gateway: GatewayClient, resources: Observation[]) => {
      await gateway.upload(transaction(resources));
      uploaded.push(...resources);
    };
    /** What the oracle says a query returns. */
    const oracle = (query: string) => {
      const parsed = parseQuery('Observation', new URLSearchParams(query));
      return uploaded
        .filter((r) => parsed.matches(r as never))
        .map((r) => r.id)
        .sort();
    };
    const search = async (reader: DoctorClient, query: string) => ids((await reader.searchFhir(patient, 'Observation', query)).bundle);

    before(async () => {
      cast = await startCast(db);
      abePublicKey = await cast.client.abePublicKey();
      await cast.patient.register();
      patient = cast.patient.key.patientId;
      fhirId = sampleBundle().entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id;
      await cast.gateway.enrol(fhirId, patient);
      // registerAndLogin returns the whole Session (typed narrowly for the other tests).
      riverside = new GatewayClient((await cast.registerAndLogin('riverside', 'ehr-riverside', ['role:gateway'])) as Session);
      await cast.patient.allowWriter('riverside');
      await riverside.enrol(fhirId, patient);
      delegationId = (await cast.patient.delegate('lab', LAB_POLICY, abePublicKey)).delegationId;
    });
    after(async () => cast.platform.close());

    test('correctness: searches by code, status, date range and note words equal a plaintext oracle on random uploads from two hospitals', async () => {
      const record = fc.record({
        code: fc.constantFrom(...CODES),
        status: fc.constantFrom(...STATUSES),
        day,
        word: fc.constantFrom('fasting', 'chest pain', undefined),
      });
      const query = fc.oneof(
        fc.constantFrom(...CODES).map((c) => `code=${LOINC}|${c}`),
        fc.tuple(fc.constantFrom(...CODES), fc.constantFrom(...CODES)).map(([a, b]) => `code=${a},${LOINC}|${b}&status=final`),
        fc.tuple(fc.constantFrom('ge', 'lt', 'le', 'gt', 'eq', ''), day).map(([p, d]) => `date=${p}${d}`),
        fc.tuple(day, day).map(([a, b]) => `date=ge${a < b ? a : b}&date=le${a < b ? b : a}&code=${LOINC}|2093-3`),
        fc.constantFrom('date=2020', 'date=ge2020-03', 'status=amended,preliminary', '_content=fasting', '_text=chest pain', 'date=ne2020-01-01'),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(record, { minLength: 1, maxLength: 6 }),
          fc.array(record, { maxLength: 4 }),
          fc.array(query, { minLength: 1, maxLength: 3 }),
          async (stMarys, river, queries) => {
            await Promise.all([
              upload(
                cast.gateway,
                stMarys.map((r) => observation(fhirId, r.code, r.status, r.day, r.word)),
              ),
              river.length === 0
                ? Promise.resolve()
                : upload(
                    riverside,
                    river.map((r) => observation(fhirId, r.code, r.status, r.day, r.word)),
                  ),
            ]);
            for (const q of queries) {
              if (q.startsWith('date=ne')) {
                await assert.rejects(search(cast.chen, q), /not a FHIR date/);
                continue;
              }
              assert.deepEqual(await search(cast.chen, q), oracle(q), q);
            }
          },
        ),
        { numRuns: 3 },
      );
    });

    test('forward privacy: a token taken before an upload, replayed to the cloud after it, returns none of the new rows', async () => {
      const code = '99999-9';
      await upload(cast.gateway, [observation(fhirId, code, 'final', '2021-05-05')]);
      // The labels Chen's search sent (what a cloud could keep and replay).
      const sent: Uint8Array[][] = [];
      const transport = spy(httpSearchTransport(cast.chen.session), (labels) => sent.push([...labels]));
      const before1 = await searchRecords(cast.chen.reader, transport, patient, 'lab', parseQuery('Observation', new URLSearchParams(`code=${LOINC}|${code}`)));
      assert.equal(before1.resources.length, 1);
      const stale = sent.flat();
      const rowsBefore = new Set(
        (await db.query<{ label: Uint8Array }>('SELECT label FROM cloud_index_rows')).rows.map((r) => Buffer.from(r.label).toString('hex')),
      );
      await upload(cast.gateway, [observation(fhirId, code, 'final', '2021-06-06')]);
      // The cloud replays the old token: it finds exactly the rows it found before, and no row written since.
      const replayed = await transport.rows(patient, 'lab', stale);
      assert.equal(replayed.filter((r) => r !== undefined).length, stale.length);
      const added = (await db.query<{ label: Uint8Array }>('SELECT label FROM cloud_index_rows')).rows
        .map((r) => Buffer.from(r.label).toString('hex'))
        .filter((l) => !rowsBefore.has(l));
      assert.ok(added.length >= 5, 'the upload wrote its entries');
      const staleHex = new Set(stale.map((l) => Buffer.from(l).toString('hex')));
      assert.ok(
        added.every((l) => !staleHex.has(l)),
        'a new row answers the old token',
      );
      assert.deepEqual(await search(cast.chen, `code=${LOINC}|${code}`), oracle(`code=${LOINC}|${code}`));
      assert.equal(oracle(`code=${LOINC}|${code}`).length, 2);
    });

    test('unauthorised reader: refused by the cloud, and with the cloud database and re-encryption key cannot open an index key', async () => {
      await assert.rejects(cast.patel.searchFhir(patient, 'Observation', `code=${LOINC}|2093-3`), (e: HttpProblemError) => e.status === 403);
      // The adversary: the cloud's rows (index keys' capsules, re-encryption key) and Patel's ABE key.
      const capsules = (await db.query<{ key_capsule: Uint8Array }>('SELECT key_capsule FROM cloud_index_writers WHERE patient = $1', [patient])).rows;
      const rk = pre.decodeReEncryptionKey(
        (await db.query<{ reencryption_key: Uint8Array }>('SELECT reencryption_key FROM cloud_delegations WHERE delegation_id = $1', [delegationId])).rows[0]!
          .reencryption_key,
      );
      const patel = cast.patel.reader;
      assert.ok(capsules.length >= 2, 'one sub-index per hospital');
      for (const { key_capsule } of capsules) assert.throws(() => patel.decrypt(pre.convert(rk, key_capsule)), AccessDeniedError);
    });

    test('FHIR view (fhir-kit-client): code, date range and status searches answered from the index equal a plaintext oracle; a refused reader gets an OperationOutcome', async () => {
      const views = [await startFhirView(cast.chen), await startFhirView(cast.patel)];
      // The index path never lists or reads the whole category: those calls fail for the length of the test.
      const whole = { search: cast.chen.search, readRecords: cast.chen.readRecords };
      const refuse = () => Promise.reject(new Error('the view read the whole category'));
      Object.assign(cast.chen, { search: refuse, readRecords: refuse });
      try {
        const [chen, patel] = views.map((v) => new Client({ baseUrl: v.baseUrl(patient) }));
        type Searchset = {
          resourceType: string;
          type: string;
          total: number;
          entry?: Array<{ fullUrl: string; resource: Observation; search: { mode: string } }>;
        };
        const find = async (searchParams: Record<string, string | string[]>) =>
          (await chen!.search({ resourceType: 'Observation', searchParams })) as unknown as Searchset;
        const found = (bundle: Searchset) => {
          assert.equal(bundle.type, 'searchset');
          assert.equal(bundle.total, bundle.entry?.length ?? 0);
          for (const e of bundle.entry ?? []) assert.deepEqual([e.fullUrl, e.search.mode], [`Observation/${e.resource.id}`, 'match']);
          return (bundle.entry ?? []).map((e) => e.resource.id).sort();
        };
        // The oracle reads the uploaded plaintext directly, not through the SDK's query code.
        const dayOf = (o: Observation) => o.effectiveDateTime.slice(0, 10);
        const where = (keep: (o: Observation) => boolean) =>
          uploaded
            .filter(keep)
            .map((o) => o.id)
            .sort();
        for (const code of CODES) {
          const expected = where((o) => o.code.coding.some((c) => c.system === LOINC && c.code === code));
          assert.deepEqual(found(await find({ code: `${LOINC}|${code}` })), expected, code);
        }
        const [from, to] = [uploaded[0]!, uploaded.at(-1)!].map(dayOf).sort() as [string, string];
        assert.deepEqual(
          found(await find({ date: [`ge${from}`, `le${to}`] })),
          where((o) => from <= dayOf(o) && dayOf(o) <= to),
        );
        assert.deepEqual(
          found(await find({ date: `gt${from}` })),
          where((o) => dayOf(o) > from),
        );
        assert.deepEqual(
          found(await find({ date: `lt${to}` })),
          where((o) => dayOf(o) < to),
        );
        assert.deepEqual(
          found(await find({ date: `eq${from.slice(0, 7)}` })),
          where((o) => dayOf(o).startsWith(from.slice(0, 7))),
        );
        const combined = where((o) => o.code.coding[0]!.code === '2093-3' && o.status === 'final' && dayOf(o) >= '2020-01-01');
        assert.deepEqual(found(await find({ code: `${LOINC}|2093-3`, date: 'ge2020-01-01', status: 'final' })), combined);
        assert.deepEqual(
          found(await find({ _content: 'fasting', status: 'final' })),
          where((o) => o.status === 'final' && (o.note ?? []).some((n) => /\bfasting\b/i.test(n.text))),
        );
        assert.deepEqual(
          found(await find({ status: 'final', _id: uploaded[0]!.id })),
          where((o) => o.id === uploaded[0]!.id && o.status === 'final'),
        );
        // Unknown parameters and malformed values: 400 OperationOutcome, before any request to the cloud.
        for (const searchParams of [{ 'code:text': 'x' }, { foo: 'bar' }, { date: 'ne2020-01-01' }, { date: 'ge2020-13-01' }] as Array<
          Record<string, string>
        >) {
          const { status, outcome } = await failure(chen!.search({ resourceType: 'Observation', searchParams }));
          assert.equal(status, 400, JSON.stringify(searchParams));
          assert.equal(outcome.resourceType, 'OperationOutcome');
        }
        // Patel (the policy refuses him): a 403 OperationOutcome, no resource.
        const refused = await failure(patel!.search({ resourceType: 'Observation', searchParams: { code: `${LOINC}|2093-3` } }));
        assert.equal(refused.status, 403);
        assert.equal(refused.outcome.resourceType, 'OperationOutcome');
        const text = JSON.stringify(refused.outcome);
        for (const o of uploaded) assert.ok(!text.includes(`"${o.id}"`) && !text.includes(`Observation/${o.id}`), 'the refusal names a record');
      } finally {
        Object.assign(cast.chen, whole);
        for (const v of views) await v.close();
      }
    });

    test('tamper: a cloud that rewrites an index value, or swaps values between labels, is caught by the reader', async () => {
      await upload(cast.gateway, [observation(fhirId, '11111-1', 'final', '2022-01-01'), observation(fhirId, '22222-2', 'final', '2022-01-02')]);
      const labelsOf = async (code: string) => {
        const sent: Uint8Array[] = [];
        await searchRecords(
          cast.chen.reader,
          spy(httpSearchTransport(cast.chen.session), (l) => sent.push(...l)),
          patient,
          'lab',
          parseQuery('Observation', new URLSearchParams(`code=${LOINC}|${code}`)),
        );
        return sent;
      };
      const [a] = await labelsOf('11111-1');
      const [b] = await labelsOf('22222-2');
      const value = async (l: Uint8Array) => (await db.query<{ value: Uint8Array }>('SELECT value FROM cloud_index_rows WHERE label = $1', [l])).rows[0]!.value;
      const [va, vb] = [await value(a!), await value(b!)];
      await db.query('UPDATE cloud_index_rows SET value = $2 WHERE label = $1', [a, vb]);
      await assert.rejects(search(cast.chen, `code=${LOINC}|11111-1`), IntegrityError);
      const flipped = Buffer.from(va);
      flipped[47]! ^= 1;
      await db.query('UPDATE cloud_index_rows SET value = $2 WHERE label = $1', [a, flipped]);
      await assert.rejects(search(cast.chen, `code=${LOINC}|11111-1`), IntegrityError);
      await db.query('UPDATE cloud_index_rows SET value = $2 WHERE label = $1', [a, va]);
      assert.equal((await search(cast.chen, `code=${LOINC}|11111-1`)).length, 1);
      // A state rolled back to another sub-index's: refused as foreign.
      const states = (
        await db.query<{ source: string; state: Uint8Array }>("SELECT source, state FROM cloud_index_writers WHERE patient = $1 AND category = 'lab'", [
          patient,
        ])
      ).rows;
      const mine = states.find((s) => s.source === 'st-marys')!;
      await db.query("UPDATE cloud_index_writers SET state = $2 WHERE patient = $1 AND category = 'lab' AND source = 'st-marys'", [
        patient,
        states.find((s) => s.source === 'riverside')!.state,
      ]);
      await assert.rejects(search(cast.chen, 'status=final'), IntegrityError);
      await db.query("UPDATE cloud_index_writers SET state = $2 WHERE patient = $1 AND category = 'lab' AND source = 'st-marys'", [patient, mine.state]);
    });

    test('hostile requests: malformed labels, too many, or a category without delegation are clear 4xx', async () => {
      const post = (path: string, body: unknown) =>
        sessionFetch(cast.chen.session, new URL(`/cloud/patients/${encodeURIComponent(patient)}${path}`, cast.base), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      for (const body of [
        { category: 'lab', labels: ['short'] },
        { category: 'lab', labels: ['A'.repeat(24), 'not base64 at all!!!!!!!'] },
        { category: 'lab' },
        { category: 'lab', labels: [], extra: 1 },
        { category: 'LAB', labels: [] },
      ]) {
        const response = await post('/search', body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.match(response.headers.get('content-type') ?? '', /problem\+json/);
      }
      const tooMany = await post('/search', { category: 'lab', labels: Array.from({ length: 100_001 }, () => 'AAAAAAAAAAAAAAAAAAAAAA==') });
      assert.ok(tooMany.status === 400 || tooMany.status === 413);
      assert.equal((await post('/search/indexes', { category: 'notes' })).status, 403);
      assert.equal((await post('/search', { category: 'notes', labels: [] })).status, 403);
      await assert.rejects(cast.chen.searchFhir(patient, 'Observation', 'foo=bar'), /unsupported search parameter/);
    });

    test("revocation moves the index epoch: the revoked reader's old index key finds nothing written after it, even in the cloud's rows", async () => {
      const before = await httpSearchTransport(cast.chen.session).subIndexes(patient, 'lab');
      const oldKeys = before.map((s) => ({ s, key: cast.chen.reader.decrypt(s.keyCapsule) }));
      await cast.patient.revoke(delegationId);
      await assert.rejects(cast.chen.searchFhir(patient, 'Observation', 'status=final'), (e: HttpProblemError) => e.status === 403);
      await upload(cast.gateway, [observation(fhirId, '33333-3', 'final', '2022-02-02')]);
      const epochs = (
        await db.query<{ index_epoch: number }>(
          "SELECT DISTINCT index_epoch FROM cloud_index_writers WHERE patient = $1 AND category = 'lab' AND source = 'st-marys'",
          [patient],
        )
      ).rows
        .map((r) => r.index_epoch)
        .sort();
      assert.deepEqual(epochs, [1, 2]);
      // Chen kept her old keys and reads the cloud's database: any count she guesses, no row of the new record.
      for (const { key } of oldKeys) {
        const q = sse.query(key, { version: 1, counts: new Map([[`code:${LOINC}|33333-3`, 20]]) }, `code:${LOINC}|33333-3`);
        const rows = await db.query('SELECT value FROM cloud_index_rows WHERE label = ANY($1::bytea[])', [q.labels]);
        assert.equal(rows.rows.length, 0);
      }
      // Delegating again gives the cardiologist both epochs.
      delegationId = (await cast.patient.delegate('lab', LAB_POLICY, abePublicKey)).delegationId;
      assert.deepEqual(await search(cast.chen, `code=${LOINC}|33333-3`), oracle(`code=${LOINC}|33333-3`));
      assert.deepEqual(await search(cast.chen, 'status=final'), oracle('status=final'));
    });

    test('emergency search reaches only what emergency access may read: platform grants of the index keys, audited', async () => {
      await assert.rejects(cast.chen.searchFhir(patient, 'Observation', 'status=final', { reason: 'curious' }), (e: HttpProblemError) => e.status === 403);
      const found = await cast.okafor.searchFhir(patient, 'Observation', `code=${LOINC}|33333-3`, { reason: 'unconscious in A&E' });
      assert.deepEqual(ids(found.bundle), oracle(`code=${LOINC}|33333-3`));
      const log = (await cast.patient.accessLog()).map((e) => e.action);
      assert.ok(log.includes('emergency search (platform policy)'));
      // Once she opts out of platform emergency access, nothing is searchable that way.
      await cast.patient.setPlatformEmergency(false);
      await assert.rejects(cast.okafor.searchFhir(patient, 'Observation', 'status=final', { reason: 'again' }), (e: HttpProblemError) => e.status === 403);
    });

    test('many writers at once: concurrent uploads of two hospitals and of two instances of one gateway all land in the index', async () => {
      const batches = Array.from({ length: 4 }, (_, i) => [
        observation(fhirId, '44444-4', 'final', `2019-0${i + 1}-15`),
        observation(fhirId, '55555-5', 'final', '2019-07-01'),
      ]);
      await Promise.all(batches.map((b, i) => upload(i % 3 === 0 ? riverside : cast.gateway, b)));
      assert.deepEqual(await search(cast.chen, `code=${LOINC}|44444-4`), oracle(`code=${LOINC}|44444-4`));
      assert.equal(oracle(`code=${LOINC}|44444-4`).length, 4);
      assert.deepEqual(await search(cast.chen, `code=${LOINC}|55555-5&date=2019-07`), oracle(`code=${LOINC}|55555-5&date=2019-07`));
    });

    test('current versions only: an Observation amended to another code no longer matches its old code, a deleted one matches nothing; results carry their record ids', async () => {
      const amended = observation(fhirId, '66666-1', 'final', '2023-03-03');
      const kept = observation(fhirId, '66666-1', 'final', '2023-03-04');
      const first = await cast.gateway.upload(transaction([amended, kept]));
      const v1 = first.versions.find((v) => v.id === amended.id)!.recordId;
      assert.deepEqual(ids((await cast.chen.searchFhir(patient, 'Observation', `code=${LOINC}|66666-1`)).bundle), [amended.id, kept.id].sort());
      // The amendment: same id, another code. The search for the old code finds the other record only.
      const second = await cast.gateway.upload(transaction([{ ...amended, status: 'amended', code: { coding: [{ system: LOINC, code: '66666-2' }] } }]));
      const v2 = second.versions[0]!.recordId;
      const old = await cast.chen.searchFhir(patient, 'Observation', `code=${LOINC}|66666-1`);
      assert.deepEqual(
        old.records.map((r) => r.recordId),
        [first.versions.find((v) => v.id === kept.id)!.recordId],
      );
      const current = await cast.chen.searchFhir(patient, 'Observation', `code=${LOINC}|66666-2`);
      assert.deepEqual(
        current.records.map((r) => [r.recordId, r.resource.id, (r.resource.meta as { versionId: string }).versionId]),
        [[v2, amended.id, '2']],
      );
      // Status and date keywords of version 1 are gone too; version 2's are there.
      assert.ok(!(await cast.chen.searchFhir(patient, 'Observation', 'date=2023-03-03&status=final')).records.some((r) => r.recordId === v1));
      assert.deepEqual(
        (await cast.chen.searchFhir(patient, 'Observation', 'date=2023-03-03&status=amended')).records.map((r) => r.recordId),
        [v2],
      );
      // A delete (tombstone) removes every entry of the last version.
      await cast.gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'DELETE', url: `Observation/${amended.id}` } }] });
      assert.deepEqual((await cast.chen.searchFhir(patient, 'Observation', `code=${LOINC}|66666-2`)).records, []);
      assert.deepEqual(
        (await cast.chen.searchFhir(patient, 'Observation', 'date=2023-03')).records.map((r) => r.resource.id),
        [kept.id],
      );
      uploaded.push(kept);
    });

    test('withheld deletion: a cloud that drops the entry deleting a superseded version (to bring it back) is caught', async () => {
      const o = observation(fhirId, '77777-1', 'final', '2023-04-04');
      await cast.gateway.upload(transaction([o]));
      const labels: Uint8Array[] = [];
      const transport = spy(httpSearchTransport(cast.chen.session), (l) => labels.push(...l));
      const q = parseQuery('Observation', new URLSearchParams(`code=${LOINC}|77777-1`));
      assert.equal((await searchRecords(cast.chen.reader, transport, patient, 'lab', q)).records.length, 1);
      await cast.gateway.upload(transaction([{ ...o, code: { coding: [{ system: LOINC, code: '77777-2' }] } }]));
      labels.length = 0;
      assert.equal((await searchRecords(cast.chen.reader, transport, patient, 'lab', q)).records.length, 0);
      // The deletion is the keyword's second entry: the hostile cloud answers it as absent.
      assert.equal(labels.length, 2);
      const withholding: SearchTransport = { ...transport, rows: async (p, c, l) => (await transport.rows(p, c, l)).map((v, i) => (i === 1 ? undefined : v)) };
      await assert.rejects(
        searchRecords(cast.chen.reader, withholding, patient, 'lab', q),
        (e: Error) => e instanceof IntegrityError && /withheld 1 entries/.test(e.message),
      );
      // In the cloud's table the deletion is a row like any other (label and masked value, no operation in clear).
      const rows = (
        await db.query<{ label: Uint8Array; value: Uint8Array }>('SELECT label, value FROM cloud_index_rows WHERE label = ANY($1::bytea[])', [labels])
      ).rows;
      assert.deepEqual(
        rows.map((r) => [r.label.length, r.value.length]),
        [
          [sse.LABEL_BYTES, sse.VALUE_BYTES],
          [sse.LABEL_BYTES, sse.VALUE_BYTES],
        ],
      );
      uploaded.push({ ...o, code: { coding: [{ system: LOINC, code: '77777-2' }] } });
    });

    test("hostile cloud returning another record for a search: a swapped ciphertext (same patient, same keyword), a duplicate, or another patient's record are caught", async () => {
      const [a, b] = [observation(fhirId, '88888-1', 'final', '2023-05-05'), observation(fhirId, '88888-1', 'final', '2023-05-06')];
      const written = await cast.gateway.upload(transaction([a, b]));
      const [ra, rb] = [a, b].map((o) => written.versions.find((v) => v.id === o.id)!.recordId) as [string, string];
      const query = `code=${LOINC}|88888-1&date=2023-05-05`;
      assert.deepEqual(
        (await cast.chen.searchFhir(patient, 'Observation', query)).records.map((r) => r.recordId),
        [ra],
      );
      // Over HTTP: the cloud's database serves record b's ciphertext under record a's id.
      const cipher = async (id: string) =>
        (await db.query<{ ciphertext: Uint8Array }>('SELECT ciphertext FROM cloud_records WHERE record_id = $1', [id])).rows[0]!.ciphertext;
      const original = await cipher(ra);
      await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [ra, await cipher(rb)]);
      try {
        await assert.rejects(cast.chen.searchFhir(patient, 'Observation', query), (e: Error) => e instanceof IntegrityError && /did not name/.test(e.message));
      } finally {
        await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [ra, original]);
      }
      const http = httpSearchTransport(cast.chen.session);
      const q = parseQuery('Observation', new URLSearchParams(query));
      const duplicating: SearchTransport = {
        ...http,
        records: async (p, c, list) => {
          const got = await http.records(p, c, list);
          return [got[0]!, got[0]!];
        },
      };
      const both = parseQuery('Observation', new URLSearchParams(`code=${LOINC}|88888-1`));
      await assert.rejects(searchRecords(cast.chen.reader, duplicating, patient, 'lab', both), IntegrityError);
      // Another patient who delegated her lab records to the same cardiologist: the cloud converts her record instead.
      const other = new PatientClient(
        await cast.registerAndLogin('st-marys', 'beatrice', ['role:patient']),
        pre.generatePatientKey(`psn:${randomBytes(16).toString('base64url')}`, ['lab', 'notes', 'imaging']),
      );
      await other.register();
      await cast.gateway.enrol('beatrice-fhir', other.key.patientId);
      await other.delegate('lab', LAB_POLICY, abePublicKey);
      const hers = await cast.gateway.upload(transaction([observation('beatrice-fhir', '88888-1', 'final', '2023-05-05')]));
      const substituting: SearchTransport = { ...http, records: () => http.records(other.key.patientId, 'lab', [hers.versions[0]!.recordId]) };
      await assert.rejects(searchRecords(cast.chen.reader, substituting, patient, 'lab', q), IntegrityError);
      uploaded.push(a, b);
    });

    test('desensitisation: a word she excluded, and numbers, are never indexed: no search finds them and no token of theirs is in the cloud', async () => {
      await cast.patient.setIndexRules({ excludedWords: ['Hepatitis', 'oncology'], excludeNumbers: true });
      const o = observation(fhirId, '99999-1', 'final', '2023-06-06', 'hepatitis panel sent to oncology ward 4B77 callback 5551234 negative');
      const written = await cast.gateway.upload(transaction([o]));
      uploaded.push(o);
      const find = async (q: string) => (await cast.chen.searchFhir(patient, 'Observation', q)).records.map((r) => r.recordId);
      assert.deepEqual(await find('_content=negative'), [written.versions[0]!.recordId]);
      assert.deepEqual(await find('_content=panel&code=99999-1'), [written.versions[0]!.recordId]);
      for (const word of ['hepatitis', 'oncology', '4b77', '5551234']) assert.deepEqual(await find(`_content=${word}`), [], word);
      // With every sub-index key (what a reader holds) and the cloud's rows: no entry of an excluded word at any count.
      const subs = await httpSearchTransport(cast.chen.session).subIndexes(patient, 'lab');
      for (const sub of subs) {
        const key = cast.chen.reader.decrypt(sub.keyCapsule);
        const state = sse.openState(key, `${patient}|lab|${sub.keyEpoch}|${sub.indexEpoch}|${sub.source}`, sub.state, sub.version);
        for (const word of ['hepatitis', 'oncology', '4b77', '5551234']) {
          assert.equal(state.counts.has(`word:${word}`), false);
          const labels = sse.query(key, { version: 1, counts: new Map([[`word:${word}`, 50]]) }, `word:${word}`).labels;
          assert.equal((await db.query('SELECT 1 FROM cloud_index_rows WHERE label = ANY($1::bytea[])', [labels])).rows.length, 0, word);
        }
      }
      // The cloud keeps her rules as salted digests: no excluded word in any form.
      const stored = (await db.query<{ index_rules: string }>('SELECT index_rules FROM cloud_patients WHERE patient = $1', [patient])).rows[0]!.index_rules;
      for (const word of ['hepatitis', 'Hepatitis', 'oncology'])
        assert.ok(!stored.includes(word) && !stored.includes(createHash('sha256').update(word).digest('base64url')));
      // Malformed rules are a clear 400; only she may set them.
      const put = (session: Session, body: unknown) =>
        sessionFetch(session, new URL(`/cloud/patients/${encodeURIComponent(patient)}/index-rules`, cast.base), {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      for (const body of [
        { salt: 'x', excludedWords: [], excludeNumbers: false },
        { salt: 'A'.repeat(22), excludedWords: ['hepatitis'], excludeNumbers: false },
        { salt: 'A'.repeat(22), excludedWords: [], excludeNumbers: 'yes' },
        [1],
      ]) {
        const response = await put(cast.patient.session, body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.match(response.headers.get('content-type') ?? '', /problem\+json/);
      }
      assert.equal((await put(cast.chen.session, { salt: 'A'.repeat(22), excludedWords: [], excludeNumbers: false })).status, 403);
      await assert.rejects(cast.patient.setIndexRules({ excludedWords: ['two words'] }), /not one word/);
    });

    test("rotation moves the key epoch: a new sub-index under a fresh key; the old epoch's keys find none of its rows, the new delegation finds its records", async () => {
      const oldKeys = (await httpSearchTransport(cast.chen.session).subIndexes(patient, 'lab')).map((s) => cast.chen.reader.decrypt(s.keyCapsule));
      const rotated = await cast.patient.rotate('lab');
      await rotated.revoke(delegationId);
      delegationId = (await rotated.delegate('lab', LAB_POLICY, abePublicKey)).delegationId;
      cast.patient = rotated;
      const o = observation(fhirId, '12121-2', 'final', '2023-07-07');
      const written = await cast.gateway.upload(transaction([o]));
      uploaded.push(o);
      const epochs = (
        await db.query<{ key_epoch: number }>(
          "SELECT DISTINCT key_epoch FROM cloud_index_writers WHERE patient = $1 AND category = 'lab' AND source = 'st-marys'",
          [patient],
        )
      ).rows
        .map((r) => Number(r.key_epoch))
        .sort();
      assert.deepEqual(epochs, [1, 2]);
      for (const key of oldKeys) {
        const labels = sse.query(key, { version: 1, counts: new Map([[`code:${LOINC}|12121-2`, 20]]) }, `code:${LOINC}|12121-2`).labels;
        assert.equal((await db.query('SELECT 1 FROM cloud_index_rows WHERE label = ANY($1::bytea[])', [labels])).rows.length, 0);
      }
      const found = await cast.chen.searchFhir(patient, 'Observation', `code=${LOINC}|12121-2`);
      assert.deepEqual(
        found.records.map((r) => r.recordId),
        [written.versions[0]!.recordId],
      );
      assert.equal(found.stats.subIndexes, 1, 'the epoch-2 delegation converts the epoch-2 sub-index only');
    });

    test("scan (after every write of this file: deletions, epochs, rules): the cloud's index tables hold no code, keyword, date or resource type in any recognisable form", async () => {
      const dump = Buffer.concat([
        ...(await db.query<{ label: Uint8Array; value: Uint8Array }>('SELECT label, value FROM cloud_index_rows')).rows.flatMap((r) => [r.label, r.value]),
        ...(await db.query<{ state: Uint8Array }>('SELECT state FROM cloud_index_writers')).rows.map((r) => r.state),
        ...(await db.query<{ index_rules: string | null }>('SELECT index_rules FROM cloud_patients')).rows.flatMap((r) =>
          r.index_rules === null ? [] : [Buffer.from(r.index_rules)],
        ),
      ]);
      const needles = [
        '2093-3',
        '2085-9',
        '8480-6',
        '718-7',
        'loinc',
        'Observation',
        'observation',
        'final',
        'amended',
        'fasting',
        'chest',
        '2020-',
        '2021-05-05',
        'code:',
        'date:',
        'type:',
        'word:',
        '66666-1',
        '66666-2',
        '77777-2',
        'hepatitis',
        'oncology',
        'negative',
        '5551234',
        ...uploaded.slice(0, 20).map((o) => o.id),
      ];
      for (const n of needles) {
        for (const form of [
          Buffer.from(n),
          Buffer.from(n).toString('base64').replace(/=+$/, '').slice(0, 8),
          Buffer.from(n).toString('hex'),
          createHash('sha256').update(n).digest().subarray(0, 8),
          createHash('sha256').update(`code:${LOINC}|${n}`).digest().subarray(0, 8),
        ]) {
          assert.equal(dump.indexOf(form), -1, `a form of '${n}' is in the index tables`);
        }
      }
      // Record ids are not there either (rows are stored with none).
      const recordIds = (await db.query<{ record_id: string }>('SELECT record_id FROM cloud_records WHERE patient = $1 LIMIT 50', [patient])).rows.map(
        (r) => r.record_id,
      );
      for (const id of recordIds) assert.equal(dump.indexOf(Buffer.from(id)), -1);
    });
  });
}

/** The status and OperationOutcome of a failed fhir-kit-client call. */
async function failure(call: Promise<unknown>): Promise<{ status: number; outcome: { resourceType: string; issue: Array<Record<string, unknown>> } }> {
  try {
    await call;
  } catch (error) {
    const { status, data } = (error as { response: { status: number; data: unknown } }).response;
    return { status, outcome: (typeof data === 'string' ? JSON.parse(data) : data) as { resourceType: string; issue: Array<Record<string, unknown>> } };
  }
  throw new Error('the call succeeded');
}

/** `transport`, reporting the labels each search sends (what a curious cloud records). */
function spy(transport: SearchTransport, onLabels: (labels: readonly Uint8Array[]) => void): SearchTransport {
  return {
    ...transport,
    rows: (p, c, labels) => {
      onLabels(labels);
      return transport.rows(p, c, labels);
    },
  };
}
