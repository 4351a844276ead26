/**
 * The FHIR write parser and version content (no server): reference resolution on random Bundles (fast-check),
 * hostile bodies (random JSON, deep nesting) refused with typed errors, and the content hash that keeps retries
 * idempotent ignoring only what the gateway sets; If-None-Exist criteria; record signatures (random versions verify,
 * every tamper is refused, hostile extensions never crash).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MedShareError } from '@medshare/crypto';
import { generateCheckpointKey } from '@medshare/ledger';
import { parseCriteria, parseWrite } from '../src/gateway/fhir-bundle.ts';
import type { FhirResource } from '../src/gateway/fhir.ts';
import { contentHash, versioned } from '../src/gateway/fhir-versions.ts';
import { recordKeyName, SIGNATURE_EXTENSION, signRecord, VERIFIED_SYSTEM, verifyRecord, writerKeys } from '../src/record-signature.ts';

const TYPES = ['Observation', 'Condition', 'Encounter', 'Procedure'] as const;

test('random transactions: every reference to an entry becomes Type/id, creates take their urn:uuid, order and indices are kept', () => {
  const entries = fc
    .array(fc.record({ type: fc.constantFrom(...TYPES), uuid: fc.uuid(), put: fc.boolean(), refs: fc.array(fc.nat(), { maxLength: 4 }) }), {
      minLength: 1,
      maxLength: 12,
    })
    .filter((list) => new Set(list.map((e) => e.uuid)).size === list.length);
  fc.assert(
    fc.property(entries, (list) => {
      const fullUrl = (i: number) => `urn:uuid:${list[i]!.uuid}`;
      const bundle = {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: list.map((e, i) => ({
          fullUrl: fullUrl(i),
          resource: {
            resourceType: e.type,
            ...(e.put ? { id: `id-${i}` } : {}),
            focus: e.refs.map((r) => ({ reference: fullUrl(r % list.length) })),
            subject: { reference: 'Patient/p1' },
          },
          request: e.put ? { method: 'PUT', url: `${e.type}/id-${i}` } : { method: 'POST', url: e.type },
        })),
      };
      const { operations } = parseWrite(bundle);
      assert.deepEqual(
        operations.map((o) => o.index),
        list.map((_, i) => i),
      );
      const idOf = (i: number) => (list[i]!.put ? `id-${i}` : list[i]!.uuid.toLowerCase());
      operations.forEach((op, i) => {
        assert.equal(op.id, idOf(i));
        const focus = (op.resource!.focus as Array<{ reference: string }>).map((f) => f.reference);
        assert.deepEqual(
          focus,
          list[i]!.refs.map((r) => `${list[r % list.length]!.type}/${idOf(r % list.length)}`),
        );
        assert.equal((op.resource!.subject as { reference: string }).reference, 'Patient/p1', 'references to nothing in the Bundle stay');
      });
    }),
    { numRuns: 200 },
  );
});

test('hostile bodies: random JSON is parsed or refused with a typed error, never anything else', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), fc.constantFrom('transaction', 'batch', 'collection'), (value, type) => {
      for (const body of [
        value,
        { resourceType: 'Bundle', type, entry: [value] },
        { resourceType: 'Bundle', type, entry: [{ resource: value, request: value }] },
      ]) {
        try {
          parseWrite(body);
        } catch (error) {
          assert.ok(error instanceof MedShareError, String(error));
        }
      }
    }),
    { numRuns: 500 },
  );
});

test('a resource nested 100,000 levels deep is refused with a clear error, not a stack overflow', () => {
  let deep: unknown = {};
  for (let i = 0; i < 100_000; i++) deep = { extension: [deep] };
  const body = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [{ resource: { resourceType: 'Basic', deep }, request: { method: 'POST', url: 'Basic' } }],
  };
  assert.throws(
    () => parseWrite(body),
    (e: Error) => e instanceof MedShareError && /nested deeper than 100 levels/.test(e.message),
  );
});

test('the content hash ignores only what the gateway sets: a stored version hashes as the resource sent; any other change differs', () => {
  const resource = fc.record({ status: fc.string(), value: fc.integer(), profile: fc.array(fc.string(), { maxLength: 2 }) });
  fc.assert(
    fc.property(resource, fc.nat(), fc.date({ noInvalidDate: true }), fc.string({ minLength: 1 }), (r, version, when, other) => {
      const sent = { resourceType: 'Observation', id: 'o1', status: r.status, valueInteger: r.value, meta: { profile: r.profile } };
      const stored = versioned(sent, 'st-marys', version + 1, when.toISOString());
      assert.equal(contentHash(stored), contentHash(sent));
      assert.notEqual(contentHash({ ...sent, status: `${r.status}${other}` }), contentHash(sent));
    }),
    { numRuns: 200 },
  );
});

test('If-None-Exist criteria: identifier=system|value (repeatable) and _id parse; anything else is a typed 400 naming it, never a crash', () => {
  assert.deepEqual(parseCriteria('identifier=urn:mrn|42&_id=a-1', 'h'), { query: 'identifier=urn:mrn|42&_id=a-1', identifiers: ['urn:mrn|42'], id: 'a-1' });
  assert.deepEqual(parseCriteria('?identifier=http%3A%2F%2Fx.org%7Cv', 'h').identifiers, ['http://x.org|v']);
  for (const [criteria, message] of [
    ['code=1', /'code' is not supported/],
    ['identifier=42', /system\|value/],
    ['identifier=urn:x|', /system\|value/],
    ['', /needs identifier/],
    ['_id=../x', /id must match/],
    ['_id=a&_id=b', /two _id/],
  ] as const) {
    assert.throws(
      () => parseCriteria(criteria, 'h'),
      (e: Error) => e instanceof MedShareError && message.test(e.message),
      criteria,
    );
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (raw) => {
      try {
        const parsed = parseCriteria(raw, 'h');
        assert.ok(parsed.identifiers.length > 0 || parsed.id !== undefined);
      } catch (error) {
        assert.ok(error instanceof MedShareError, String(error));
      }
    }),
  );
});

test('record signatures (Ed25519, RFC 8032): random versions verify; any change of content, source, version, patient or category, another key, or a hostile extension is refused', () => {
  const stMarys = generateCheckpointKey(recordKeyName('st-marys'), 'ed25519').signer;
  const riverside = generateCheckpointKey(recordKeyName('riverside'), 'ed25519').signer;
  const trusted = writerKeys([
    { hospital: 'st-marys', key: stMarys.verifier.vkey },
    { hospital: 'riverside', key: riverside.verifier.vkey },
  ]);
  const context = { patient: 'psn:AAAAAAAAAAAAAAAAAAAAAA', category: 'lab' };
  // JSON has no -0 (a resource reaches the gateway as JSON, and -0 reads back as 0), so values are drawn as JSON has them.
  const resource = fc
    .record({
      value: fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => (v === 0 ? 0 : v)),
      text: fc.string(),
      codes: fc.array(fc.string(), { maxLength: 4 }),
      version: fc.integer({ min: 1, max: 1000 }),
    })
    .map((r) =>
      versioned(
        {
          resourceType: 'Observation',
          id: 'o1',
          status: 'final',
          valueQuantity: { value: r.value },
          note: [{ text: r.text }],
          code: { coding: r.codes.map((code) => ({ code })) },
        },
        'st-marys',
        r.version,
        '2026-12-01T00:00:00.000Z',
      ),
    );
  fc.assert(
    fc.property(resource, (plain) => {
      // What the reader decrypts: the JSON the gateway encrypted, parsed back.
      const signed = JSON.parse(JSON.stringify(signRecord(stMarys, plain, context))) as FhirResource;
      const ok = verifyRecord(trusted, signed, context);
      assert.equal(ok.status, 'verified');
      assert.deepEqual(ok.status === 'verified' && ok.resource, {
        ...plain,
        meta: {
          ...(plain.meta as object),
          tag: [...(plain.meta as { tag: unknown[] }).tag, { system: VERIFIED_SYSTEM, code: 'st-marys', display: 'signature verified' }],
        },
      });
      const meta = signed.meta as Record<string, unknown>;
      const tampered: Array<[string, FhirResource, typeof context]> = [
        ['content', { ...signed, status: 'amended' }, context],
        ['source', { ...signed, meta: { ...meta, source: 'urn:medshare:hospital:riverside' } }, context],
        ['version', { ...signed, meta: { ...meta, versionId: `${String(meta.versionId)}0` } }, context],
        ['patient', signed, { ...context, patient: 'psn:BBBBBBBBBBBBBBBBBBBBBB' }],
        ['category', signed, { ...context, category: 'clinical' }],
      ];
      for (const [what, changed, where] of tampered) assert.equal(verifyRecord(trusted, changed, where).status, 'refused', what);
    }),
    { numRuns: 50 },
  );
  const plain = versioned({ resourceType: 'Observation', id: 'o1', status: 'final' }, 'st-marys', 1, '2026-12-01T00:00:00.000Z');
  // Another hospital's key cannot sign as St Mary's; an unknown hospital is not trusted.
  assert.throws(() => signRecord(riverside, plain, context), MedShareError);
  const asRiverside = signRecord(riverside, { ...plain, meta: { ...(plain.meta as object), source: 'urn:medshare:hospital:riverside' } }, context);
  assert.equal(
    verifyRecord(trusted, { ...asRiverside, meta: { ...(asRiverside.meta as object), source: 'urn:medshare:hospital:st-marys' } }, context).status,
    'refused',
  );
  assert.match(JSON.stringify(verifyRecord(new Map(), signRecord(stMarys, plain, context), context)), /st-marys is not in your hospital's federation/);
  assert.equal(verifyRecord(trusted, plain, context).status, 'unsigned');
  const extension = (value: unknown) => ({
    ...plain,
    meta: { ...(plain.meta as object), extension: [{ url: SIGNATURE_EXTENSION, valueBase64Binary: value }] },
  });
  for (const hostile of [42, '', 'not base64 !!', 'A'.repeat(100_000), null])
    assert.equal(verifyRecord(trusted, extension(hostile), context).status, 'refused', String(hostile).slice(0, 20));
  const valid = (signRecord(stMarys, plain, context).meta as { extension: unknown[] }).extension;
  for (const meta of [
    { extension: 'x' },
    { extension: [null, 7, { url: SIGNATURE_EXTENSION }] },
    { ...(plain.meta as object), extension: [null, ...valid] },
    null,
    5,
  ]) {
    assert.ok(['unsigned', 'refused'].includes(verifyRecord(trusted, { ...plain, meta } as unknown as FhirResource, context).status), JSON.stringify(meta));
  }
  // A federation list naming a key under another hospital's name is refused.
  assert.throws(() => writerKeys([{ hospital: 'st-marys', key: riverside.verifier.vkey }]), MedShareError);
});
