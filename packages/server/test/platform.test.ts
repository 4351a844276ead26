/**
 * The platform end to end over real HTTP on 127.0.0.1, on PGlite and (when DATABASE_URL is set) PostgreSQL:
 * registration, gateway upload of a whole Synthea bundle (atomic, idempotent), delegation, conversion on read,
 * refusal, revocation, emergency access, the access log and the ledger.
 */
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { abe, MedShareError, pre } from '@medshare/crypto';
import { openTestDatabases, randomKeyEncryptionKey, type TestDatabase } from '@medshare/db';
import { CONVERTED_RECORD_TYPE, HttpProblemError, PatientClient } from '../src/index.ts';
import { uploadBody } from '../src/gateway/cloud-api.ts';
import { taggedRecordId } from '../src/record-id.ts';
import { CATEGORIES, LAB_POLICY, sampleBundle, sessionFetch, startCast, type Cast } from './harness.ts';

const databases: TestDatabase[] = await openTestDatabases();
after(async () => {
  for (const { db } of databases) await db.close();
});

for (const { label, db } of databases) {
  describe(`platform on ${label}`, () => {
    let cast: Cast;
    let abePublicKey: abe.PublicKey;
    let labDelegation: string;
    const bundle = sampleBundle();
    const labCount = bundle.entry.filter((e) => ['Observation', 'DiagnosticReport'].includes(e.resource.resourceType)).length;

    before(async () => {
      cast = await startCast(db);
      abePublicKey = await cast.client.abePublicKey();
    });
    after(async () => cast.platform.close());

    test('the patient registers her keys; the gateway enrols her and uploads the whole bundle once', async () => {
      await cast.patient.register();
      const patientFhirId = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id;
      await cast.gateway.enrol(patientFhirId, cast.patient.key.patientId);
      const first = await cast.gateway.upload(bundle);
      assert.equal(first.received, bundle.entry.length);
      assert.equal(first.stored, bundle.entry.length);
      assert.equal(first.byCategory['lab'], labCount);
      const retry = await cast.gateway.upload(bundle);
      assert.equal(retry.stored, 0, 'a retried upload stores nothing twice');
      const records = await cast.patient.records();
      assert.equal(records.length, bundle.entry.length);
      assert.ok(records.every((r) => r.patient === cast.patient.key.patientId && r.size > 0 && r.source === 'st-marys'));
    });

    test('a cardiologist reads her lab records after delegation; a dermatologist is refused', async () => {
      const delegation = await cast.patient.delegate('lab', LAB_POLICY, abePublicKey);
      labDelegation = delegation.delegationId;
      assert.equal(delegation.policy, LAB_POLICY);
      const found = await cast.chen.search(cast.patient.key.patientId, 'lab');
      assert.equal(found.length, labCount);
      const records = await cast.chen.read(cast.patient.key.patientId, 'lab');
      assert.equal(records.length, labCount);
      assert.ok(records.every((r) => ['Observation', 'DiagnosticReport'].includes(r.resourceType)));
      const ids = new Set(bundle.entry.map((e) => e.resource.id));
      assert.ok(
        records.every((r) => ids.has(r.id)),
        'decrypted resources are the uploaded ones',
      );
      const some = await cast.chen.read(cast.patient.key.patientId, 'lab', [found[0]!.recordId]);
      assert.equal(some.length, 1);
      // Named records come with the delegations in one query: only her records of the category read are returned.
      const clinical = (await cast.patient.records()).find((r) => r.category !== 'lab')!;
      const named = await cast.chen.readRecords(cast.patient.key.patientId, 'lab', [
        clinical.recordId,
        found[1]!.recordId,
        'no-such-record',
        found[0]!.recordId,
      ]);
      assert.deepEqual(
        named.map((r) => r.recordId),
        [found[0]!.recordId, found[1]!.recordId],
        'in upload order',
      );
      await assert.rejects(
        cast.patel.read(cast.patient.key.patientId, 'lab', [found[0]!.recordId]),
        (e: HttpProblemError) => e.status === 403 && /satisfy no active delegation/.test(e.message),
      );
      await assert.rejects(
        cast.chen.read('psn:nobodyAAAAAAAAAAAAAAA', 'lab', [found[0]!.recordId]),
        (e: HttpProblemError) => e.status === 404 && /no such patient/.test(e.message),
      );
      await assert.rejects(
        cast.patel.read(cast.patient.key.patientId, 'lab'),
        (e: HttpProblemError) => e.status === 403 && /satisfy no active delegation/.test(e.message),
      );
      await assert.rejects(
        cast.chen.read(cast.patient.key.patientId, 'notes'),
        (e: HttpProblemError) => e.status === 403 && /no active delegation of 'notes'/.test(e.message),
      );
    });

    test("a St Mary's system reads her records back through its gateway as a FHIR searchset of Binary", async () => {
      const patientFhirId = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id;
      const cardiologist = await cast.registerAndLogin('st-marys', 'stm-cardiology', ['role:doctor', 'dept:cardiology']);
      const response = await sessionFetch(cardiologist, cast.urlFor(`/gateway/fhir/Patient/${patientFhirId}/records?category=lab`));
      assert.equal(response.status, 200);
      const searchset = (await response.json()) as {
        resourceType: string;
        type: string;
        total: number;
        entry: Array<{ resource: { resourceType: string; contentType: string; data: string } }>;
      };
      assert.equal(searchset.resourceType, 'Bundle');
      assert.equal(searchset.type, 'searchset');
      assert.equal(searchset.total, labCount);
      assert.ok(searchset.entry.every((e) => e.resource.resourceType === 'Binary' && e.resource.contentType === CONVERTED_RECORD_TYPE));
      // Any key satisfying the delegation's policy opens them, here the Riverside cardiologist's.
      const opened = searchset.entry.map((e) => cast.chen.decrypt(e.resource.data));
      assert.ok(opened.every((r) => ['Observation', 'DiagnosticReport'].includes(r.resourceType)));
      const unknown = await sessionFetch(cardiologist, cast.urlFor('/gateway/fhir/Patient/not-enrolled/records?category=lab'));
      assert.equal(unknown.status, 404);
    });

    test('only the patient lists, delegates, revokes and reads her log', async () => {
      const patient = cast.patient.key.patientId;
      const asChen = (method: string, path: string, body?: unknown) =>
        sessionFetch(cast.chen.session, cast.urlFor(`/cloud/patients/${patient}${path}`), {
          method,
          headers: { ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
      for (const [method, path] of [
        ['GET', '/records'],
        ['GET', '/delegations'],
        ['GET', '/access-log'],
        ['DELETE', `/delegations/${labDelegation}`],
      ] as const) {
        const response = await asChen(method, path);
        assert.equal(response.status, 403, `${method} ${path}`);
        assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      }
      assert.equal((await cast.patient.delegations()).length, 1);
    });

    test('revocation deletes the key: the cardiologist is refused at once', async () => {
      await cast.patient.revoke(labDelegation);
      await assert.rejects(
        cast.chen.read(cast.patient.key.patientId, 'lab'),
        (e: HttpProblemError) => e.status === 403 && /no active delegation of 'lab'/.test(e.message),
      );
      assert.equal((await cast.patient.delegations()).length, 0);
      await assert.rejects(cast.patient.revoke(labDelegation), (e: HttpProblemError) => e.status === 404);
    });

    test("platform emergency access: without a delegation of hers, role:emergency breaks the glass under the platform's policy; she sees it and can opt out", async () => {
      const patient = cast.patient.key.patientId;
      const patientFhirId = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id;
      const note = (id: string) => ({
        resourceType: 'DocumentReference',
        id,
        status: 'current',
        content: [{ attachment: { contentType: 'text/plain', data: 'bm90ZQ==' } }],
        subject: { reference: `Patient/${patientFhirId}` },
      });
      assert.deepEqual(await cast.patient.platformEmergency(), { policy: 'role:emergency', allowed: true, grantedRecords: bundle.entry.length });
      await assert.rejects(
        cast.chen.emergencyRead(patient, 'lab', 'curious'),
        (e: HttpProblemError) => e.status === 403 && /needs role:emergency/.test(e.message),
      );
      await assert.rejects(cast.okafor.read(patient, 'lab'), (e: HttpProblemError) => e.status === 403, 'the platform policy is for emergencies only');
      const records = await cast.okafor.emergencyRead(patient, 'lab', 'collapsed in the street');
      assert.equal(records.length, labCount);
      assert.ok(records.every((r) => ['Observation', 'DiagnosticReport'].includes(r.resourceType)));
      const seen = (await cast.patient.accessLog()).filter((e) => e.action === 'emergency read (platform policy)');
      assert.deepEqual(
        seen.map((e) => [e.outcome, e.reason]),
        [[`${labCount} records`, 'collapsed in the street']],
      );

      // She withdraws consent: every grant is deleted at once, and grants of later uploads are dropped.
      assert.deepEqual(await cast.patient.setPlatformEmergency(false), { policy: 'role:emergency', allowed: false, grantedRecords: 0 });
      await assert.rejects(
        cast.okafor.emergencyRead(patient, 'lab', 'collapsed again'),
        (e: HttpProblemError) => e.status === 403 && /no active emergency delegation/.test(e.message),
      );
      assert.equal((await cast.gateway.upload(note('note-while-opted-out'))).stored, 1);
      assert.equal((await cast.patient.platformEmergency()).grantedRecords, 0);
      // Consent given again covers what hospitals upload from then on.
      assert.equal((await cast.patient.setPlatformEmergency(true)).grantedRecords, 0);
      assert.equal((await cast.gateway.upload(note('note-after-opt-in'))).stored, 1);
      assert.equal((await cast.patient.platformEmergency()).grantedRecords, 1);
      const notes = await cast.okafor.emergencyRead(patient, 'notes', 'collapsed again');
      assert.deepEqual(
        notes.map((r) => r.id),
        ['note-after-opt-in'],
      );
      const consent = (await cast.patient.accessLog()).filter((e) => /platform emergency access/.test(e.action)).map((e) => e.action);
      assert.deepEqual(consent, ['refuse platform emergency access', 'allow platform emergency access']);
      const asChen = await sessionFetch(cast.chen.session, cast.urlFor(`/cloud/patients/${patient}/platform-emergency`), {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ allowed: false }),
      });
      assert.equal(asChen.status, 403, 'only the patient decides');
    });

    test('the cloud refuses emergency grants not under its policy or not matching their record, and stores nothing', async () => {
      const patient = cast.patient.key.patientId;
      const { cloud } = cast.platform;
      const keys = await cloud.publicKeys(patient);
      const before = (await cast.patient.records()).length;
      // Refused before anything is stored or logged, so the uploader's token is never consulted beyond its hospital.
      const gatewayCaller = { token: { hospital: 'st-marys' }, pseudonym: 'psn:gateway-of-st-marys0', role: 'gateway' } as unknown as Parameters<
        typeof cloud.upload
      >[0];
      const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
      const upload = (capsule: pre.EmergencyCapsule, recordId: string) => {
        const { ciphertext, emergencyGrant } = pre.encryptWithEmergencyGrant(keys, 'notes', recordId, new TextEncoder().encode('{}'), capsule);
        const record = { recordId, category: 'notes', ciphertext, emergency: { capsuleId: hex(capsule.delegationId), grant: emergencyGrant! } };
        const uploaded = { capsuleId: hex(capsule.delegationId), category: 'notes', policy: capsule.policy, capsule: pre.encodeEmergencyCapsule(capsule) };
        return { record, uploaded };
      };
      const good = pre.emergencyCapsule(abePublicKey, 'role:emergency');
      const a = upload(good, 'forged-a');
      const b = upload(good, 'forged-b');
      const lax = upload(pre.emergencyCapsule(abePublicKey, 'role:doctor'), 'forged-c');
      const cases: Array<[string, Parameters<typeof cloud.upload>[2], Parameters<typeof cloud.upload>[3], RegExp]> = [
        ['a capsule under another policy', [lax.record], [lax.uploaded], /platform's emergency policy 'role:emergency'/],
        ["record a's grant on record b", [{ ...b.record, emergency: a.record.emergency }], [a.uploaded], /grant of record forged-b does not match/],
        ['a grant whose capsule is not uploaded', [a.record], [], /does not match its record or capsule/],
        ['a capsule under a wrong id', [a.record], [{ ...a.uploaded, capsuleId: '0'.repeat(32) }], /capsule id must be its delegation id/],
        [
          'a grant that is not a grant',
          [{ ...a.record, emergency: { ...a.record.emergency, grant: a.uploaded.capsule } }],
          [a.uploaded],
          /expected an emergency grant/,
        ],
      ];
      for (const [what, records, capsules, message] of cases) {
        await assert.rejects(
          cloud.upload(gatewayCaller, patient, records, capsules),
          (e: Error) => e instanceof MedShareError && message.test(e.message),
          what,
        );
      }
      assert.equal((await cast.patient.records()).length, before);
    });

    test('emergency access needs role:emergency, a reason and an emergency delegation; it is shown to the patient', async () => {
      const patient = cast.patient.key.patientId;
      await cast.patient.setPlatformEmergency(false); // her own emergency delegation only, from here on
      await assert.rejects(
        cast.okafor.emergencyRead(patient, 'lab', 'unconscious on arrival'),
        (e: HttpProblemError) => e.status === 403 && /no active emergency delegation/.test(e.message),
      );
      await cast.patient.delegate('lab', 'role:emergency', abePublicKey, { emergency: true });
      await assert.rejects(
        cast.chen.emergencyRead(patient, 'lab', 'curious'),
        (e: HttpProblemError) => e.status === 403 && /needs role:emergency/.test(e.message),
      );
      await assert.rejects(
        cast.okafor.read(patient, 'lab'),
        (e: HttpProblemError) => e.status === 403,
        'an emergency delegation is not usable for ordinary reads',
      );
      const emptyReason = await sessionFetch(cast.okafor.session, cast.urlFor(`/cloud/patients/${patient}/emergency-read`), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ category: 'lab' }),
      });
      assert.equal(emptyReason.status, 400);
      const records = await cast.okafor.emergencyRead(patient, 'lab', 'unconscious on arrival');
      assert.equal(records.length, labCount);
      const log = await cast.patient.accessLog();
      const emergency = log.filter((e) => e.action === 'emergency read' && e.outcome === `${labCount} records`);
      assert.equal(emergency.length, 1);
      assert.equal(emergency[0]!.reason, 'unconscious on arrival');
      // The upload comes first: hospitals' uploads are in her access log too (and on the ledger).
      assert.deepEqual(log.map((e) => `${e.action}:${e.outcome}`).slice(0, 7), [
        'upload:ok',
        'grant:ok',
        `read:${labCount} records`,
        `read:1 records`,
        'read:2 records',
        'read:refused',
        'read:refused',
      ]);
    });

    test('every grant, revocation and access is in the ledger, under pseudonyms only', async () => {
      await cast.platform.ledger.flush();
      const entries = await cast.platform.ledger.entriesForPatient(cast.patient.key.patientId);
      const types = entries.map((e) => e.event.type.code);
      for (const type of ['consent-grant', 'consent-revoke', 'record-access', 'emergency-access']) assert.ok(types.includes(type as never), type);
      const text = entries.map((e) => e.bytes.toString('utf8')).join('\n');
      assert.doesNotMatch(text, /chen|okafor|antonia|Antonia|unconscious/);
      const log = await cast.patient.accessLog();
      assert.ok(log.every((e) => e.ledgerIndex !== null && e.actor.startsWith('psn:')));
    });

    test('research release: refused and recorded without her consent; with it, de-identified with the hospital keys and on the ledger first', async () => {
      const patient = cast.patient.key.patientId;
      const person = bundle.entry.find((e) => e.resource.resourceType === 'Patient')!.resource as unknown as {
        name: Array<{ family: string; given: string[] }>;
        id: string;
      };
      assert.deepEqual(await cast.patient.researchConsent(), { allowed: false }, 'opt-in: no consent by default');
      await assert.rejects(cast.gateway.researchExport(bundle, 'safe-harbor'), (e: HttpProblemError) => e.status === 403 && /not consented/.test(e.message));
      await cast.patient.setResearchConsent(true);
      // Only a hospital's gateway releases; a doctor's token is refused; an unknown profile is a 400.
      const doctorSession = await cast.registerAndLogin('st-marys', 'release-doctor', ['role:doctor']);
      const asDoctor = await sessionFetch(doctorSession, cast.urlFor('/gateway/research-exports?profile=safe-harbor'), {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json' },
        body: JSON.stringify(bundle),
      });
      assert.equal(asDoctor.status, 403);
      await assert.rejects(cast.gateway.researchExport(bundle, 'everything'), (e: HttpProblemError) => e.status === 400);
      const release = await cast.gateway.researchExport(bundle, 'safe-harbor');
      const text = JSON.stringify(release.released);
      for (const needle of [person.name[0]!.family, person.name[0]!.given[0]!, person.id]) assert.ok(!text.includes(needle), `released ${needle}`);
      assert.equal((release.released as unknown as { entry: unknown[] }).entry.length, bundle.entry.length);
      assert.equal(release.digest, `sha256:${createHash('sha256').update(text).digest('hex')}`, 'the digest names what was released');
      // The hospital's keys: the same patient gets the same hashed ids in every release (and they are not plain hashes).
      const again = await cast.gateway.researchExport(bundle, 'safe-harbor');
      assert.equal(again.released.id, release.released.id);
      assert.equal(JSON.stringify(again.released), text);
      // On the ledger before release, refused attempts included, and in her access log.
      await cast.platform.ledger.flush();
      const entries = (await cast.platform.ledger.entriesForPatient(patient)).filter((e) => e.event.type.code === 'research-export');
      assert.deepEqual(
        entries.map((e) => e.event.outcome),
        ['4', '0', '0'],
      );
      const recorded = entries.find((e) => Number(e.event.id) === release.ledgerIndex)!;
      assert.deepEqual(
        recorded.event.entity.filter((x) => x.type.code === 'record').map((x) => [x.what.identifier.value, x.securityLabel?.[0]?.code]),
        [[release.digest, 'safe-harbor']],
      );
      assert.doesNotMatch(recorded.bytes.toString('utf8'), new RegExp(person.name[0]!.family));
      const log = (await cast.patient.accessLog()).filter((e) => e.action.startsWith('research release'));
      assert.deepEqual(
        log.map((e) => e.outcome),
        ['refused', 'ok', 'ok'],
      );
      // The key is in the gateway's database only wrapped: another KEK does not open it.
      const row = (await db.query<{ key_wrapped: Uint8Array }>("SELECT key_wrapped FROM gateway_deid_keys WHERE hospital = 'st-marys'")).rows[0]!;
      await assert.rejects(randomKeyEncryptionKey().unwrap(row.key_wrapped, 'gateway_deid_keys.key_wrapped|st-marys'));
      // Withdrawn consent stops the next release.
      await cast.patient.setResearchConsent(false);
      await assert.rejects(cast.gateway.researchExport(bundle, 'research'), (e: HttpProblemError) => e.status === 403);
      const consent = (await cast.patient.accessLog()).filter((e) => /research release$/.test(e.action)).map((e) => e.action);
      assert.deepEqual(consent, ['allow research release', 'refuse research release']);
    });

    test('key rotation reaches the platform: the new bundle replaces the old, new uploads use the new epoch, an old-epoch key converts none of them', async () => {
      const patient = cast.patient.key.patientId;
      const oldKey = cast.patient.key;
      const rotated = await cast.patient.rotate('lab');
      assert.equal(rotated.key.epochs.get('lab'), 2);
      // A no-op re-publish, the old bundle again (epoch backwards) and a bundle signed by another key are refused.
      await assert.rejects(rotated.register(), (e: HttpProblemError) => e.status === 409 && /already published/.test(e.message));
      await assert.rejects(cast.patient.register(), (e: HttpProblemError) => e.status === 409 && /back from epoch 2 to 1/.test(e.message));
      const impostor = new PatientClient(cast.patient.session, pre.rotate(pre.rotate(pre.generatePatientKey(patient, CATEGORIES), 'lab'), 'lab'));
      await assert.rejects(impostor.register(), (e: HttpProblemError) => e.status === 400 && /unexpected key/.test(e.message));
      // A new lab record, uploaded after the rotation, is encrypted under epoch 2.
      const lab = bundle.entry.find((e) => e.resource.resourceType === 'Observation')!.resource;
      const fresh = { ...lab, id: 'after-rotation-1' };
      const uploaded = await cast.gateway.upload(fresh);
      assert.equal(uploaded.stored, 1);
      const freshId = uploaded.versions[0]!.recordId;
      // A cloud that serves the old bundle again (its database edited) is refused by the gateway, which used epoch 2.
      const published = (await db.query<{ public_keys: Uint8Array }>('SELECT public_keys FROM cloud_patients WHERE patient = $1', [patient])).rows[0]!
        .public_keys;
      await db.query('UPDATE cloud_patients SET public_keys = $2 WHERE patient = $1', [patient, pre.encodePublicKeys(oldKey)]);
      await assert.rejects(
        cast.gateway.upload({ ...lab, id: 'after-rotation-2' }),
        (e: HttpProblemError) => e.status === 409 && /epoch 1 after epoch 2/.test(e.message),
      );
      await db.query('UPDATE cloud_patients SET public_keys = $2 WHERE patient = $1', [patient, published]);
      // The patient delegates lab once with her old key (epoch 1) and once with the new one (epoch 2).
      const readRaw = async () => {
        const response = await sessionFetch(cast.chen.session, cast.urlFor(`/cloud/patients/${patient}/read`), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ category: 'lab', recordIds: [freshId] }),
        });
        return { status: response.status, body: (await response.json()) as { records?: Array<{ ciphertext: string }>; detail?: string } };
      };
      const old = await new PatientClient(cast.patient.session, oldKey).delegate('lab', LAB_POLICY, abePublicKey);
      const refused = await readRaw();
      assert.equal(refused.status, 403);
      assert.match(refused.body.detail!, /another key of category 'lab' \(epoch 1, record epoch 2\)/);
      await rotated.revoke(old.delegationId);
      const current = await rotated.delegate('lab', LAB_POLICY, abePublicKey);
      const converted = await readRaw();
      assert.equal(converted.status, 200);
      const ciphertext = new Uint8Array(Buffer.from(converted.body.records![0]!.ciphertext, 'base64'));
      assert.equal(pre.openConvertedHeader(ciphertext).core.epoch, 2);
      assert.equal((await cast.chen.read(patient, 'lab', [freshId]))[0]!.id, 'after-rotation-1');
      await rotated.revoke(current.delegationId);
      cast.patient = rotated;
    });

    test('the patient lists her delegations and capsules whose policy repeats an attribute', async () => {
      const repeated = '(role:doctor and level >= 3) or (role:nurse and level >= 5)';
      const made = await cast.patient.delegate('notes', repeated, abePublicKey);
      await cast.patient.delegate('imaging', LAB_POLICY, abePublicKey);
      const listed = (await cast.patient.repeatedAttributePolicies()).filter((p) => p.kind === 'delegation');
      assert.deepEqual(
        listed.map((p) => [p.id, p.policy, p.repeated, p.format, p.reissue]),
        [[made.delegationId, repeated, ['level (integer bits)'], 2, false]],
      );
      const asChen = await sessionFetch(cast.chen.session, cast.urlFor(`/cloud/patients/${cast.patient.key.patientId}/repeated-attribute-policies`));
      assert.equal(asChen.status, 403);
      for (const d of await cast.patient.delegations()) await cast.patient.revoke(d.delegationId);
    });

    describe('large records (payloads in chunk rows, streamed)', () => {
      let large: PatientClient;
      let recordId: string;
      let resource: Record<string, unknown>;
      const fhirId = 'large-record-patient';
      const chunkRows = async (id: string) =>
        (await db.query<{ seq: number; bytes: Uint8Array }>('SELECT seq, bytes FROM cloud_record_chunks WHERE record_id = $1 ORDER BY seq', [id])).rows;
      const recordRow = async (id: string) =>
        (
          await db.query<{ ciphertext: Uint8Array; size: number; payload_chunks: number; ciphertext_hash: string }>(
            'SELECT ciphertext, size, payload_chunks, ciphertext_hash FROM cloud_records WHERE record_id = $1',
            [id],
          )
        ).rows[0]!;
      /** A resource as read back, without the meta the gateway adds (version, provenance, the record signature). */
      const content = (read: unknown) => {
        const { meta, ...rest } = read as Record<string, unknown>;
        assert.equal((meta as { versionId?: string }).versionId, '1');
        return rest;
      };
      const parsed = (pieces: Uint8Array[]) => content(JSON.parse(Buffer.concat(pieces).toString('utf8')));
      const streamed = async (reason?: string) => {
        const pieces: Uint8Array[] = [];
        for await (const piece of cast.chen.readStream(large.key.patientId, 'lab', recordId, reason === undefined ? {} : { reason })) pieces.push(piece);
        return pieces;
      };
      /** An Observation of about `characters` of notes (of at most 1,000,000 characters each, the gateway's longest string). */
      const largeObservation = (id: string, seed: string, characters: number) => ({
        resourceType: 'Observation',
        id,
        status: 'final',
        code: { text: 'large' },
        subject: { reference: `Patient/${fhirId}` },
        note: Array.from({ length: Math.ceil(characters / 1_000_000) }, (_, i) => ({
          text: createHash('sha256')
            .update(`${seed}${i}`)
            .digest('hex')
            .repeat(15_625)
            .slice(0, Math.min(1_000_000, characters - i * 1_000_000)),
        })),
      });

      before(async () => {
        const session = await cast.registerAndLogin('st-marys', 'large-patient', ['role:patient']);
        large = new PatientClient(session, pre.generatePatientKey(`psn:large-${label}-${Date.now()}`, CATEGORIES));
        await large.register();
        await cast.gateway.enrol(fhirId, large.key.patientId);
        // 1.5 MB: two payload chunk rows, the second shorter.
        resource = largeObservation('large-1', 'a', 1_500_000);
        await cast.gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource }] });
        await large.delegate('lab', LAB_POLICY, abePublicKey);
        recordId = (await large.records('lab'))[0]!.recordId;
      });

      test('a 1.5 MB record: its row keeps the header, its payload is in 1 MiB chunk rows, the ledger names the whole ciphertext', async () => {
        const row = await recordRow(recordId);
        const chunks = await chunkRows(recordId);
        assert.equal(row.payload_chunks, 2);
        assert.deepEqual(
          chunks.map((c) => [c.seq, c.bytes.length === 1024 * 1024]),
          [
            [0, true],
            [1, false],
          ],
        );
        const whole = Buffer.concat([row.ciphertext, ...chunks.map((c) => c.bytes)]);
        assert.equal(pre.splitRecord(row.ciphertext).payload.length, 0, 'the row holds exactly the header');
        assert.equal(whole.length, row.size);
        assert.equal(row.ciphertext_hash, `sha256:${createHash('sha256').update(whole).digest('hex')}`);
        // The patient's own records (JSON) and her decryption see the whole ciphertext.
        const own = await sessionFetch(large.session, cast.urlFor(`/cloud/patients/${large.key.patientId}/own-records`), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ category: 'lab' }),
        });
        const [mine] = ((await own.json()) as { records: Array<{ ciphertext: string }> }).records;
        assert.deepEqual(Buffer.from(mine!.ciphertext, 'base64'), whole);
        assert.deepEqual(content(JSON.parse(new TextDecoder().decode(pre.decrypt(large.key, Buffer.from(mine!.ciphertext, 'base64'))))), resource);
      });

      test('the reader streams it: plaintext in pieces as the chunks arrive, the same bytes as read, emergency read and the JSON answer', async () => {
        const pieces = await streamed();
        assert.ok(pieces.length >= 2, `decrypted in ${pieces.length} pieces as it arrived`);
        assert.deepEqual(parsed(pieces), resource);
        assert.deepEqual((await cast.chen.read(large.key.patientId, 'lab', [recordId])).map(content), [resource]);
        // Under the platform's emergency grant (no emergency delegation of hers): also chunk by chunk.
        assert.deepEqual((await cast.okafor.emergencyRead(large.key.patientId, 'lab', 'unconscious, large imaging report')).map(content), [resource]);
        const json = await sessionFetch(cast.chen.session, cast.urlFor(`/cloud/patients/${large.key.patientId}/read`), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ category: 'lab', recordIds: [recordId] }),
        });
        const { records } = (await json.json()) as { records: Array<{ ciphertext: string }> };
        assert.deepEqual(content(cast.chen.decrypt(records[0]!.ciphertext)), resource);
        await assert.rejects(
          async () => {
            for await (const piece of cast.chen.readStream(large.key.patientId, 'lab', 'no-such-record')) void piece;
          },
          (e: MedShareError) => e.code === 'NOT_FOUND',
        );
      });

      test('a chunk row altered in the database: the stream fails authentication (never a wrong plaintext)', async () => {
        const [, second] = await chunkRows(recordId);
        const altered = new Uint8Array(second!.bytes);
        // In the second chunk row: the first row's plaintext is handed out, then authentication fails.
        altered[4096]! ^= 1;
        await db.query('UPDATE cloud_record_chunks SET bytes = $3 WHERE record_id = $1 AND seq = $2', [recordId, 1, altered]);
        try {
          const seen: Uint8Array[] = [];
          await assert.rejects(
            async () => {
              for await (const piece of cast.chen.readStream(large.key.patientId, 'lab', recordId)) seen.push(piece);
            },
            (e: MedShareError) => e.code === 'INTEGRITY',
          );
          assert.ok(Buffer.concat(seen).length < 1024 * 1024 + 64 * 1024, 'nothing after the altered chunk was handed out');
        } finally {
          await db.query('UPDATE cloud_record_chunks SET bytes = $3 WHERE record_id = $1 AND seq = $2', [recordId, 1, second!.bytes]);
        }
      });

      test('a chunk row dropped or cut short in the database: the read fails with a typed error, never a short answer', async () => {
        const [, last] = await chunkRows(recordId);
        const cases: Array<[string, () => Promise<unknown>]> = [
          ['dropped', () => db.query('DELETE FROM cloud_record_chunks WHERE record_id = $1 AND seq = 1', [recordId])],
          [
            'cut short',
            () => db.query('UPDATE cloud_record_chunks SET bytes = $2 WHERE record_id = $1 AND seq = 1', [recordId, last!.bytes.subarray(0, 1000)]),
          ],
        ];
        for (const [how, damage] of cases) {
          await damage();
          try {
            await assert.rejects(streamed(), MedShareError, how);
            await assert.rejects(cast.chen.read(large.key.patientId, 'lab', [recordId]), MedShareError, how);
          } finally {
            await db.query('DELETE FROM cloud_record_chunks WHERE record_id = $1 AND seq = 1', [recordId]);
            await db.query('INSERT INTO cloud_record_chunks (record_id, seq, bytes) VALUES ($1, 1, $2)', [recordId, last!.bytes]);
          }
        }
        assert.deepEqual(parsed(await streamed()), resource);
      });

      test('a large record stored whole in its row, as before migration 10, is read the same', async () => {
        const row = await recordRow(recordId);
        const chunks = await chunkRows(recordId);
        const whole = new Uint8Array(Buffer.concat([row.ciphertext, ...chunks.map((c) => c.bytes)]));
        await db.transaction(async (tx) => {
          await tx.query('DELETE FROM cloud_record_chunks WHERE record_id = $1', [recordId]);
          await tx.query('UPDATE cloud_records SET ciphertext = $2, payload_chunks = 0 WHERE record_id = $1', [recordId, whole]);
        });
        try {
          assert.deepEqual(parsed(await streamed()), resource);
          assert.deepEqual((await cast.chen.read(large.key.patientId, 'lab', [recordId])).map(content), [resource]);
        } finally {
          await db.transaction(async (tx) => {
            await tx.query('UPDATE cloud_records SET ciphertext = $2, payload_chunks = $3 WHERE record_id = $1', [recordId, row.ciphertext, chunks.length]);
            for (const c of chunks) await tx.query('INSERT INTO cloud_record_chunks (record_id, seq, bytes) VALUES ($1, $2, $3)', [recordId, c.seq, c.bytes]);
          });
        }
      });

      test('a large upload that is not a record ciphertext is refused with a clear 400, and nothing is stored', async () => {
        const recordId = taggedRecordId('st-marys', ['hostile-large-upload']);
        const garbage = new Uint8Array(randomBytes(1024 * 1024 + 4096));
        const response = await sessionFetch(cast.gateway.session, cast.urlFor(`/cloud/patients/${large.key.patientId}/uploads`), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(uploadBody([{ recordId, category: 'lab', ciphertext: garbage }], [])),
        });
        assert.equal(response.status, 400);
        assert.match(((await response.json()) as { detail: string }).detail, new RegExp(`record ${recordId} is not a record ciphertext`));
        assert.equal((await db.query('SELECT 1 FROM cloud_records WHERE record_id = $1', [recordId])).rows.length, 0);
        assert.equal((await chunkRows(recordId)).length, 0);
      });

      test('a chunk insert that fails mid-upload rolls the whole upload back: no half record, and the retry stores it', async () => {
        // The database refuses the second chunk row of this upload, as a full disk or a lost connection would mid-way.
        await db.query(`CREATE FUNCTION medshare_test_refuse_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN IF NEW.seq = 1 AND NEW.record_id <> '${recordId}' THEN RAISE EXCEPTION 'disk full (test)'; END IF; RETURN NEW; END $$`);
        await db.query(
          'CREATE TRIGGER medshare_test_refuse_chunk BEFORE INSERT ON cloud_record_chunks FOR EACH ROW EXECUTE FUNCTION medshare_test_refuse_chunk()',
        );
        const second = largeObservation('large-2', 'b', 1_100_000);
        const before = (await large.records('lab')).length;
        try {
          // One request to the gateway's upload route, not GatewayClient.upload: the SDK retries a 503 (PGlite's answer
          // here) twice after its Retry-After, and each retry encrypts, tags and is refused the same way (~9 s).
          const refused = await sessionFetch(cast.gateway.session, cast.urlFor('/gateway/upload'), {
            method: 'POST',
            headers: { 'content-type': 'application/fhir+json' },
            body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: second }] }),
          });
          assert.ok(refused.status >= 400, `refused, not ${refused.status}`);
          assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
          assert.equal((await large.records('lab')).length, before, 'no record row');
          const orphans = await db.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM cloud_record_chunks k WHERE NOT EXISTS (SELECT 1 FROM cloud_records r WHERE r.record_id = k.record_id AND r.record_id = $1)',
            [recordId],
          );
          assert.equal(orphans.rows[0]!.n, 0, 'no chunk row of the failed upload');
        } finally {
          await db.query('DROP TRIGGER medshare_test_refuse_chunk ON cloud_record_chunks');
          await db.query('DROP FUNCTION medshare_test_refuse_chunk()');
        }
        await cast.gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: second }] });
        const stored = (await large.records('lab')).find((r) => r.recordId !== recordId)!;
        const pieces: Uint8Array[] = [];
        for await (const piece of cast.chen.readStream(large.key.patientId, 'lab', stored.recordId)) pieces.push(piece);
        assert.deepEqual(parsed(pieces), second);
      });
    });
  });
}
