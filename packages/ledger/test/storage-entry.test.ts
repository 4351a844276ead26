import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MalformedInputError } from '@medshare/crypto';
import { buildAuditEvent, canonicalBytes, parseEntry, storageCommitmentOf, type AuditEventInput } from '../src/index.ts';

const hash = (c: string) => `sha256:${c.repeat(64)}`;
const storage = { tags: hash('a'), blocks: 3, key: hash('b') };
const created = (overrides: Partial<AuditEventInput> = {}): AuditEventInput => ({
  type: 'record-create',
  patient: 'psn:patient-0123456789ab',
  agents: [{ who: 'psn:gateway-0123456789ab', role: 'gateway' }],
  source: 'cloud',
  records: [
    { hash: hash('c'), category: 'lab', storage },
    { hash: hash('d'), category: 'notes' },
  ],
  ...overrides,
});

test("record-create entries commit to each record's storage tags, blocks and key; records without tags keep their old form", () => {
  const event = buildAuditEvent(created(), 4);
  const [, tagged, plain] = event.entity;
  assert.deepEqual(storageCommitmentOf(tagged!), storage);
  assert.equal(plain!.detail, undefined);
  assert.equal(storageCommitmentOf(plain!), undefined);
  assert.deepEqual(parseEntry(canonicalBytes(event)), event);
});

test('KZG commitments (tag set version 2) carry no hospital key: storage-tags and storage-blocks (the chunk count) only, read back as such', () => {
  const kzg = { tags: hash('e'), blocks: 7 };
  const event = buildAuditEvent(created({ records: [{ hash: hash('c'), category: 'lab', storage: kzg }] }), 5);
  const record = event.entity.find((e) => e.type.code === 'record')!;
  assert.deepEqual(
    record.detail?.map((d) => d.type),
    ['storage-tags', 'storage-blocks'],
  );
  assert.deepEqual(storageCommitmentOf(record), kzg);
  assert.deepEqual(parseEntry(canonicalBytes(event)), event);
});

test('storage commitments are refused outside record-create and when malformed; storage-audit entries need their detail and no patient', () => {
  const refuse = (input: AuditEventInput, pattern: RegExp) =>
    assert.throws(
      () => buildAuditEvent(input, 0),
      (e: unknown) => e instanceof MalformedInputError && pattern.test(e.message),
    );
  refuse(created({ type: 'record-access' }), /only a record-create/);
  refuse(created({ records: [{ hash: hash('c'), category: 'lab', storage: { ...storage, tags: 'free text' } }] }), /sha256/);
  refuse(created({ records: [{ hash: hash('c'), category: 'lab', storage: { ...storage, blocks: 0 } }] }), /blocks/);
  const audit: AuditEventInput = {
    type: 'storage-audit',
    outcome: 'serious-failure',
    agents: [{ who: 'psn:auditor-0123456789ab', role: 'auditor' }],
    source: 'cloud',
    storageAudit: { challenge: hash('e'), records: 10, samples: 460, failed: 1 },
    records: [{ hash: hash('c'), category: 'lab' }],
  };
  const event = buildAuditEvent(audit, 9);
  assert.equal(event.outcome, '8');
  assert.deepEqual(event.entity[0], {
    what: { identifier: { value: hash('e') } },
    type: { code: 'storage-challenge' },
    detail: [
      { type: 'records', valueString: '10' },
      { type: 'samples', valueString: '460' },
      { type: 'failed', valueString: '1' },
    ],
  });
  refuse({ ...audit, storageAudit: undefined }, /storageAudit is required/);
  refuse({ ...audit, patient: 'psn:patient-0123456789ab' }, /concern no patient/);
  refuse({ ...audit, storageAudit: { ...audit.storageAudit!, failed: -1 } }, /failed/);
  refuse(created({ storageAudit: audit.storageAudit }), /storageAudit is required for, and only for/);
});
