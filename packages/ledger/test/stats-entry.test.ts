import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import { buildAuditEvent, canonicalBytes, parseEntry, type AuditEventInput } from '../src/index.ts';

const HASH = `sha256:${'ab'.repeat(32)}`;
const query = (overrides: Partial<AuditEventInput> = {}): AuditEventInput => ({
  type: 'stats-release',
  agents: [{ who: 'psn:researcher-0123456789ab', role: 'researcher' }],
  source: 'cloud',
  stats: {
    querySet: 'diabetes-2026',
    queryHash: HASH,
    epsilonMicros: 500_000,
    spentMicros: 1_000_000,
    budgetMicros: 2_000_000,
    hospitals: [
      { code: 'st-marys', role: 'decrypt' },
      { code: 'riverside', role: 'reject' },
    ],
  },
  ...overrides,
});

test("statistics events: the query by hash with its budget in millionths and each hospital's role, no patient", () => {
  const event = buildAuditEvent(query(), 3);
  assert.equal(event.type.code, 'stats-release');
  assert.equal(event.action, 'R');
  assert.deepEqual(event.entity[0], {
    what: { identifier: { value: HASH } },
    type: { code: 'query' },
    securityLabel: [{ code: 'diabetes-2026' }],
    detail: [
      { type: 'epsilon-micros', valueString: '500000' },
      { type: 'spent-micros', valueString: '1000000' },
      { type: 'budget-micros', valueString: '2000000' },
    ],
  });
  assert.deepEqual(
    event.entity.slice(1).map((e) => [e.what.identifier.value, e.role?.code]),
    [
      ['st-marys', 'decrypt'],
      ['riverside', 'reject'],
    ],
  );
  assert.deepEqual(parseEntry(canonicalBytes(event)), event);
  assert.equal(buildAuditEvent(query({ type: 'stats-query' }), 0).action, 'E');
});

test("statistics events refuse a patient, free text, fractional budgets and other events' fields; other events still need a patient", () => {
  assert.throws(() => buildAuditEvent(query({ patient: 'psn:patient-0123456789abcdef' }), 0), /statistics events concern no patient/);
  assert.throws(() => buildAuditEvent(query({ stats: undefined }), 0), /stats is required/);
  assert.throws(() => buildAuditEvent({ ...query(), type: 'record-access', patient: 'psn:patient-0123456789abcdef' }, 0), /only for, statistics events/);
  assert.throws(() => buildAuditEvent({ type: 'record-access', agents: query().agents, source: 'cloud' }, 0), /patient must be a pseudonym/);
  const stats = query().stats!;
  assert.throws(() => buildAuditEvent(query({ stats: { ...stats, querySet: 'Patients named Smith' } }), 0), MalformedInputError);
  assert.throws(() => buildAuditEvent(query({ stats: { ...stats, queryHash: 'SELECT *' } }), 0), /queryHash/);
  assert.throws(() => buildAuditEvent(query({ stats: { ...stats, epsilonMicros: 0.5 } }), 0), /epsilonMicros/);
  assert.throws(() => buildAuditEvent(query({ stats: { ...stats, hospitals: [{ code: 'st-marys', role: 'admin' as 'approve' }] } }), 0), /role is one of/);
  assert.throws(
    () => buildAuditEvent(query({ stats: { ...stats, hospitals: Array.from({ length: 65 }, (_, i) => ({ code: `h${i}`, role: 'approve' as const })) } }), 0),
    LimitExceededError,
  );
});
