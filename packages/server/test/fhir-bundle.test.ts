/**
 * The FHIR write parser and version content (no server): reference resolution on random Bundles (fast-check),
 * hostile bodies (random JSON, deep nesting) refused with typed errors, and the content hash that keeps retries
 * idempotent ignoring only what the gateway sets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MedShareError } from '@medshare/crypto';
import { parseWrite } from '../src/gateway/fhir-bundle.ts';
import { contentHash, versioned } from '../src/gateway/fhir-versions.ts';

const TYPES = ['Observation', 'Condition', 'Encounter', 'Procedure'] as const;

test('random transactions: every reference to an entry becomes Type/id, creates take their urn:uuid, order and indices are kept', () => {
  const entries = fc.array(fc.record({ type: fc.constantFrom(...TYPES), uuid: fc.uuid(), put: fc.boolean(), refs: fc.array(fc.nat(), { maxLength: 4 }) }), { minLength: 1, maxLength: 12 })
    .filter((list) => new Set(list.map((e) => e.uuid)).size === list.length);
  fc.assert(fc.property(entries, (list) => {
    const fullUrl = (i: number) => `urn:uuid:${list[i]!.uuid}`;
    const bundle = {
      resourceType: 'Bundle', type: 'transaction',
      entry: list.map((e, i) => ({
        fullUrl: fullUrl(i),
        resource: { resourceType: e.type, ...(e.put ? { id: `id-${i}` } : {}), focus: e.refs.map((r) => ({ reference: fullUrl(r % list.length) })), subject: { reference: 'Patient/p1' } },
        request: e.put ? { method: 'PUT', url: `${e.type}/id-${i}` } : { method: 'POST', url: e.type },
      })),
    };
    const { operations } = parseWrite(bundle);
    assert.deepEqual(operations.map((o) => o.index), list.map((_, i) => i));
    const idOf = (i: number) => (list[i]!.put ? `id-${i}` : list[i]!.uuid.toLowerCase());
    operations.forEach((op, i) => {
      assert.equal(op.id, idOf(i));
      const focus = (op.resource!.focus as Array<{ reference: string }>).map((f) => f.reference);
      assert.deepEqual(focus, list[i]!.refs.map((r) => `${list[r % list.length]!.type}/${idOf(r % list.length)}`));
      assert.equal((op.resource!.subject as { reference: string }).reference, 'Patient/p1', 'references to nothing in the Bundle stay');
    });
  }), { numRuns: 200 });
});

test('hostile bodies: random JSON is parsed or refused with a typed error, never anything else', () => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), fc.constantFrom('transaction', 'batch', 'collection'), (value, type) => {
    for (const body of [value, { resourceType: 'Bundle', type, entry: [value] }, { resourceType: 'Bundle', type, entry: [{ resource: value, request: value }] }]) {
      try {
        parseWrite(body);
      } catch (error) {
        assert.ok(error instanceof MedShareError, String(error));
      }
    }
  }), { numRuns: 500 });
});

test('a resource nested 100,000 levels deep is refused with a clear error, not a stack overflow', () => {
  let deep: unknown = {};
  for (let i = 0; i < 100_000; i++) deep = { extension: [deep] };
  const body = { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Basic', deep }, request: { method: 'POST', url: 'Basic' } }] };
  assert.throws(() => parseWrite(body), (e: Error) => e instanceof MedShareError && /nested deeper than 100 levels/.test(e.message));
});

test('the content hash ignores only what the gateway sets: a stored version hashes as the resource sent; any other change differs', () => {
  const resource = fc.record({ status: fc.string(), value: fc.integer(), profile: fc.array(fc.string(), { maxLength: 2 }) });
  fc.assert(fc.property(resource, fc.nat(), fc.date({ noInvalidDate: true }), fc.string({ minLength: 1 }), (r, version, when, other) => {
    const sent = { resourceType: 'Observation', id: 'o1', status: r.status, valueInteger: r.value, meta: { profile: r.profile } };
    const stored = versioned(sent, 'st-marys', version + 1, when.toISOString());
    assert.equal(contentHash(stored), contentHash(sent));
    assert.notEqual(contentHash({ ...sent, status: `${r.status}${other}` }), contentHash(sent));
  }), { numRuns: 200 });
});
