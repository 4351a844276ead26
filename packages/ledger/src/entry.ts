/**
 * Ledger entries: FHIR R4 AuditEvent-shaped records (https://hl7.org/fhir/R4/auditevent.html) of grants,
 * revocations, record accesses, emergency ("break-the-glass") accesses and cross-hospital statistics queries, serialised as RFC 8785 canonical
 * JSON (JCS, via the `canonicalize` library) so that every party hashes the same bytes.
 *
 * No PHI and no key can reach the ledger by construction: every field is a closed code, a pseudonym
 * (`psn:` + 16-86 base64url characters), a SHA-256 hash (`sha256:` + 64 hex) or a short lower-case identifier.
 * Free text — the usual way PHI leaks into audit logs — is not accepted anywhere, not even as a reason for an
 * emergency access (that is a v3-ActReason code).
 */
import canonicalize from 'canonicalize';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';

/** What happened, as this platform's AuditEvent.type codes. */
export const EVENT_TYPES = [
  'consent-grant',
  'consent-revoke',
  'record-access',
  'emergency-access',
  'record-create',
  'stats-query',
  'stats-release',
  'storage-audit',
  'research-export',
] as const;
export type AuditEventType = (typeof EVENT_TYPES)[number];

const DEFAULT_ACTION: Record<AuditEventType, AuditAction> = {
  'consent-grant': 'C',
  'consent-revoke': 'D',
  'record-access': 'R',
  'emergency-access': 'R',
  'record-create': 'C',
  'stats-query': 'E',
  'stats-release': 'R',
  'storage-audit': 'E',
  // A hospital released a patient's records de-identified (the released bundle is the entry's record, by hash).
  'research-export': 'E',
};

/** FHIR AuditEvent.action codes: create, read, update, delete, execute. */
export type AuditAction = 'C' | 'R' | 'U' | 'D' | 'E';
/** FHIR R4 AuditEvent.outcome codes by name. */
const OUTCOME_CODES = { success: '0', 'minor-failure': '4', 'serious-failure': '8', 'major-failure': '12' } as const;
export type AuditOutcome = keyof typeof OUTCOME_CODES;
/** HL7 v3-ActReason codes accepted as the reason of an emergency access. */
export const EMERGENCY_REASONS = ['BTG', 'ETREAT'] as const;

/** What a service records; turned into the canonical AuditEvent by `buildAuditEvent`. */
export interface AuditEventInput {
  type: AuditEventType;
  action?: AuditAction;
  outcome?: AuditOutcome;
  /** When it happened; defaults to now. */
  recorded?: Date;
  /** The pseudonymous patient the event concerns (every event but the statistics ones, which concern none). */
  patient?: string;
  /** Who acted: pseudonymous user ids and their role codes. */
  agents: { who: string; role: string; requestor?: boolean }[];
  /** The domain (hospital) that observed and reports the event. */
  source: string;
  /**
   * Records touched, by ciphertext hash, with their category; a created record may carry the commitment to its
   * proof-of-storage tags (docs/crypto.md, "Proofs of storage"), which an auditor challenges the cloud against.
   */
  records?: { hash: string; category: string; storage?: StorageCommitment }[];
  /** Consent grants and revocations: the hash of the access policy / re-encryption key concerned. */
  policyHash?: string;
  /** Required for, and only for, emergency access. */
  emergencyReason?: (typeof EMERGENCY_REASONS)[number];
  /** Required for, and only for, statistics events: the query by hash, its query set, and ε with the budget, in millionths. */
  stats?: StatsEventDetail;
  /** Required for, and only for, storage audits: the challenge by hash and what it covered; `records` are the failing ones. */
  storageAudit?: StorageAuditDetail;
}

/** What a record-create entry commits to about a record's proof-of-storage tags. */
export interface StorageCommitment {
  /** SHA-256 of the encoded tag set. */
  tags: string;
  /** Number of chunks (KZG tag sets, version 2) or blocks (Shacham–Waters, version 1): what a challenge samples from. */
  blocks: number;
  /**
   * Only in entries written for Shacham–Waters tag sets (version 1, no longer audited): SHA-256 of the uploading
   * hospital's proof-of-storage public key. KZG commitments need no per-hospital key.
   */
  key?: string;
}

/** The outcome of one storage audit, as the ledger records it. */
export interface StorageAuditDetail {
  /** SHA-256 of the challenge (nonce, files, sample size). */
  challenge: string;
  /** Records and blocks the challenge covered, and how many records failed. */
  records: number;
  samples: number;
  failed: number;
}

/** The privacy accounting of a statistics query as the ledger records it (integers: exact sums). */
export interface StatsEventDetail {
  querySet: string;
  queryHash: string;
  epsilonMicros: number;
  /** The query set's spent budget after this query, and its total. */
  spentMicros: number;
  budgetMicros: number;
  /** The hospitals and what each did: approve (contributed its encrypted histogram), decrypt (its partial was used), reject (its proof failed). */
  hospitals: { code: string; role: (typeof STATS_ROLES)[number] }[];
}

/** What a hospital did in a statistics query. */
export const STATS_ROLES = ['approve', 'decrypt', 'reject'] as const;

/** The FHIR-shaped object that is canonicalised into a leaf. */
export interface AuditEvent {
  resourceType: 'AuditEvent';
  id: string;
  type: { system: string; code: AuditEventType };
  action: AuditAction;
  outcome: string;
  recorded: string;
  purposeOfEvent?: { coding: { system: string; code: string }[] }[];
  agent: { who: { identifier: { value: string } }; role: { text: string }[]; requestor: boolean }[];
  source: { observer: { identifier: { value: string } } };
  entity: {
    what: { identifier: { value: string } };
    type: { code: string };
    role?: { code: string };
    securityLabel?: { code: string }[];
    detail?: { type: string; valueString: string }[];
  }[];
}

const TYPE_SYSTEM = 'https://medshare.dev/fhir/CodeSystem/audit-event-type';
const ACT_REASON_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const PSEUDONYM = /^psn:[A-Za-z0-9_-]{16,86}$/;
const HASH = /^sha256:[0-9a-f]{64}$/;
const CODE = /^[a-z][a-z0-9-]{0,62}$/;
const MAX_AGENTS = 8;
const MAX_RECORDS = 64;
const MAX_HOSPITALS = 64;
const EARLIEST = Date.UTC(2000, 0, 1);

function expect(ok: boolean, message: string): void {
  if (!ok) throw new MalformedInputError(`audit event: ${message}`);
}

const identifier = (value: string) => ({ identifier: { value } });

/** Validates `input` and builds the AuditEvent that will be entry `index` of the log. */
export function buildAuditEvent(input: AuditEventInput, index: number): AuditEvent {
  expect(typeof input === 'object' && input !== null, 'an event is an object');
  expect(EVENT_TYPES.includes(input.type), `type must be one of ${EVENT_TYPES.join(', ')}`);
  const action = input.action ?? DEFAULT_ACTION[input.type];
  expect(['C', 'R', 'U', 'D', 'E'].includes(action), 'action must be one of C, R, U, D, E');
  const outcome = OUTCOME_CODES[input.outcome ?? 'success'];
  expect(outcome !== undefined, 'outcome must be success, minor-failure, serious-failure or major-failure');
  const recorded = input.recorded ?? new Date();
  expect(recorded instanceof Date && recorded.getTime() >= EARLIEST, 'recorded must be a valid date after 2000');
  const isStats = input.type === 'stats-query' || input.type === 'stats-release';
  const isStorageAudit = input.type === 'storage-audit';
  if (isStats) expect(input.patient === undefined, 'statistics events concern no patient');
  else if (isStorageAudit) expect(input.patient === undefined, 'storage audits concern no patient');
  else expect(typeof input.patient === 'string' && PSEUDONYM.test(input.patient), 'patient must be a pseudonym (psn:...), never an identifier');
  expect(isStorageAudit === (input.storageAudit !== undefined), 'storageAudit is required for, and only for, storage audits');
  if (input.storageAudit !== undefined) checkStorageAudit(input.storageAudit);
  expect(isStats === (input.stats !== undefined), 'stats is required for, and only for, statistics events');
  if (input.stats !== undefined) checkStats(input.stats);
  expect(Array.isArray(input.agents) && input.agents.length > 0, 'at least one agent is required');
  if (input.agents.length > MAX_AGENTS) throw new LimitExceededError(`audit event: at most ${MAX_AGENTS} agents`);
  for (const agent of input.agents) {
    expect(typeof agent.who === 'string' && PSEUDONYM.test(agent.who), 'agent.who must be a pseudonym (psn:...)');
    expect(typeof agent.role === 'string' && CODE.test(agent.role), 'agent.role must be a lower-case code');
  }
  expect(typeof input.source === 'string' && CODE.test(input.source), 'source must be a lower-case domain code');
  const records = input.records ?? [];
  expect(Array.isArray(records), 'records must be a list');
  if (records.length > MAX_RECORDS) throw new LimitExceededError(`audit event: at most ${MAX_RECORDS} records`);
  for (const record of records) {
    expect(typeof record.hash === 'string' && HASH.test(record.hash), 'a record is named by sha256:<64 hex>');
    expect(typeof record.category === 'string' && CODE.test(record.category), 'a record category is a lower-case code');
    if (record.storage !== undefined) {
      expect(input.type === 'record-create', 'only a record-create entry commits to storage tags');
      expect(
        HASH.test(record.storage.tags) && (record.storage.key === undefined || HASH.test(record.storage.key)),
        'storage tags and key are named by sha256:<64 hex>',
      );
      expect(Number.isSafeInteger(record.storage.blocks) && record.storage.blocks > 0, 'storage blocks must be a positive integer');
    }
  }
  const isConsent = input.type === 'consent-grant' || input.type === 'consent-revoke';
  expect(isConsent === (input.policyHash !== undefined), 'policyHash is required for, and only for, consent events');
  expect(input.policyHash === undefined || HASH.test(input.policyHash), 'policyHash must be sha256:<64 hex>');
  const isEmergency = input.type === 'emergency-access';
  expect(isEmergency === (input.emergencyReason !== undefined), 'emergencyReason is required for, and only for, emergency access');
  expect(
    input.emergencyReason === undefined || EMERGENCY_REASONS.includes(input.emergencyReason),
    `emergencyReason must be one of ${EMERGENCY_REASONS.join(', ')}`,
  );

  const entity: AuditEvent['entity'] = input.patient === undefined ? [] : [{ what: identifier(input.patient), type: { code: 'patient' } }];
  if (input.stats !== undefined) entity.push(...statsEntities(input.stats));
  if (input.storageAudit !== undefined) entity.push(storageAuditEntity(input.storageAudit));
  for (const record of records) {
    entity.push({
      what: identifier(record.hash),
      type: { code: 'record' },
      securityLabel: [{ code: record.category }],
      ...(record.storage === undefined ? {} : { detail: storageDetail(record.storage) }),
    });
  }
  if (input.policyHash !== undefined) entity.push({ what: identifier(input.policyHash), type: { code: 'policy' } });
  return {
    resourceType: 'AuditEvent',
    id: String(index),
    type: { system: TYPE_SYSTEM, code: input.type },
    action,
    outcome,
    recorded: recorded.toISOString(),
    ...(input.emergencyReason === undefined ? {} : { purposeOfEvent: [{ coding: [{ system: ACT_REASON_SYSTEM, code: input.emergencyReason }] }] }),
    agent: input.agents.map((agent) => ({ who: identifier(agent.who), role: [{ text: agent.role }], requestor: agent.requestor ?? true })),
    source: { observer: identifier(input.source) },
    entity,
  };
}

function checkStats(stats: StatsEventDetail): void {
  expect(typeof stats === 'object' && stats !== null, 'stats is an object');
  expect(typeof stats.querySet === 'string' && CODE.test(stats.querySet), 'stats.querySet must be a lower-case code');
  expect(typeof stats.queryHash === 'string' && HASH.test(stats.queryHash), 'stats.queryHash must be sha256:<64 hex>');
  for (const key of ['epsilonMicros', 'spentMicros', 'budgetMicros'] as const) {
    expect(Number.isSafeInteger(stats[key]) && stats[key] >= 0, `stats.${key} must be a non-negative integer`);
  }
  expect(Array.isArray(stats.hospitals), 'stats.hospitals must be a list');
  if (stats.hospitals.length > MAX_HOSPITALS) throw new LimitExceededError(`audit event: at most ${MAX_HOSPITALS} hospitals`);
  for (const h of stats.hospitals) {
    expect(typeof h.code === 'string' && CODE.test(h.code), 'a hospital is named by its lower-case domain code');
    expect(STATS_ROLES.includes(h.role), `a hospital's role is one of ${STATS_ROLES.join(', ')}`);
  }
}

function checkStorageAudit(audit: StorageAuditDetail): void {
  expect(typeof audit === 'object' && audit !== null, 'storageAudit is an object');
  expect(typeof audit.challenge === 'string' && HASH.test(audit.challenge), 'storageAudit.challenge must be sha256:<64 hex>');
  for (const key of ['records', 'samples', 'failed'] as const) {
    expect(Number.isSafeInteger(audit[key]) && audit[key] >= 0, `storageAudit.${key} must be a non-negative integer`);
  }
}

/** The record entity's details of its storage commitment, in a fixed order. */
function storageDetail(storage: StorageCommitment): { type: string; valueString: string }[] {
  return [
    { type: 'storage-tags', valueString: storage.tags },
    { type: 'storage-blocks', valueString: String(storage.blocks) },
    ...(storage.key === undefined ? [] : [{ type: 'storage-key', valueString: storage.key }]),
  ];
}

/** The storage commitment of a record entity, if it carries one (what an auditor reads back; `key` only in version-1 entries). */
export function storageCommitmentOf(entity: AuditEvent['entity'][number]): StorageCommitment | undefined {
  const value = (type: string) => entity.detail?.find((d) => d.type === type)?.valueString;
  const tags = value('storage-tags');
  const blocks = Number(value('storage-blocks'));
  const key = value('storage-key');
  if (tags === undefined || !HASH.test(tags) || (key !== undefined && !HASH.test(key)) || !Number.isSafeInteger(blocks) || blocks < 1) return undefined;
  return key === undefined ? { tags, blocks } : { tags, blocks, key };
}

function storageAuditEntity(audit: StorageAuditDetail): AuditEvent['entity'][number] {
  const detail = (type: string, value: number) => ({ type, valueString: String(value) });
  return {
    what: identifier(audit.challenge),
    type: { code: 'storage-challenge' },
    detail: [detail('records', audit.records), detail('samples', audit.samples), detail('failed', audit.failed)],
  };
}

function statsEntities(stats: StatsEventDetail): AuditEvent['entity'] {
  const detail = (type: string, value: number) => ({ type, valueString: String(value) });
  return [
    {
      what: identifier(stats.queryHash),
      type: { code: 'query' },
      securityLabel: [{ code: stats.querySet }],
      detail: [detail('epsilon-micros', stats.epsilonMicros), detail('spent-micros', stats.spentMicros), detail('budget-micros', stats.budgetMicros)],
    },
    ...stats.hospitals.map((h) => ({ what: identifier(h.code), type: { code: 'hospital' }, role: { code: h.role } })),
  ];
}

/** The RFC 8785 canonical JSON bytes of an event: exactly the leaf's data. */
export function canonicalBytes(event: AuditEvent): Buffer {
  const text = canonicalize(event);
  if (text === undefined) throw new MalformedInputError('audit event is not serialisable');
  return Buffer.from(text, 'utf8');
}

/** The pseudonymous patient of a stored event (the first entity of type patient). */
export function patientOf(event: AuditEvent): string | undefined {
  if (!Array.isArray(event.entity)) return undefined;
  return event.entity.find((e) => e?.type?.code === 'patient')?.what?.identifier?.value;
}

/** Parses stored entry bytes back into an event, checking they are canonical (a re-encoding is tampering). */
export function parseEntry(bytes: Uint8Array): AuditEvent {
  let event: AuditEvent;
  try {
    event = JSON.parse(Buffer.from(bytes).toString('utf8')) as AuditEvent;
  } catch {
    throw new MalformedInputError('entry is not JSON');
  }
  expect(typeof event === 'object' && event !== null && event.resourceType === 'AuditEvent', 'entry is not an AuditEvent');
  expect(canonicalBytes(event).equals(Buffer.from(bytes)), 'entry is not in canonical form');
  return event;
}
