/**
 * The cloud: a semi-trusted store and re-encryption proxy (docs/platform.md §2). It holds ciphertexts, patients'
 * signed public-key bundles and re-encryption keys, converts a record for a reader on read (pre.convert copies
 * the payload and changes only the header — docs/crypto.md §9), revokes by deleting a key, and records every
 * grant, revocation, access and emergency access in the audit ledger (pseudonyms and hashes only) and in the
 * patient-visible access log. It never sees a plaintext record, a record key or a patient secret.
 *
 * Authorisation is enforced twice: here (the caller's vouched attributes must satisfy a delegation's policy)
 * and cryptographically (the converted header opens only under an ABE key that satisfies that policy).
 */
import { createHash } from 'node:crypto';
import { abe, AccessDeniedError, MalformedInputError, pre } from '@medshare/crypto';
import type { AuditEventInput, AuditLog } from '@medshare/ledger';
import type { Caller } from '../http.ts';
import { NotFoundError } from '../http.ts';
import { InThreadConverter, type Converter } from './conversion-pool.ts';
import type { AccessEntry, CloudStore, DelegationRow, NewRecord, RecordMeta } from './store.ts';

/** A converted record, ready for the reader's `pre.createReader(key).decrypt`. */
export interface ConvertedRecord {
  recordId: string;
  ciphertext: Uint8Array;
}

const LEDGER_SOURCE = 'cloud';
const MAX_RECORDS_PER_EVENT = 64;
const ROLE_CODE = /^[a-z][a-z0-9-]{0,62}$/;
const MAX_REASON = 500;

/** `sha256:<hex>` of some bytes: how the ledger names records and keys. */
export function sha256Name(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The cloud service behind the HTTP routes and the gateway. */
export class CloudService {
  /**
   * `converter` converts in this thread or in worker threads (conversion-pool.ts); either caches decoded keys by
   * delegation id, but every read first finds the delegation in the database, so a revoked key is never used.
   */
  constructor(
    private readonly store: CloudStore,
    private readonly ledger: AuditLog,
    private readonly converter: Converter = new InThreadConverter(),
  ) {}

  /** A patient registers her signed key bundle under her pseudonym; she becomes its owner. */
  async registerPatient(caller: Caller, patient: string, bundle: Uint8Array): Promise<void> {
    if (caller.role !== 'patient') throw new AccessDeniedError('only a patient registers her keys');
    const keys = pre.decodePublicKeys(bundle);
    if (keys.patientId !== patient) throw new MalformedInputError('the key bundle is for another pseudonym');
    const existing = await this.store.patient(patient);
    if (existing !== undefined) {
      if (existing.owner !== caller.pseudonym) throw new AccessDeniedError('this pseudonym belongs to another patient');
      return;
    }
    if (!(await this.store.addPatient(patient, caller.pseudonym, bundle, keys.signingKey))) {
      throw new AccessDeniedError('this pseudonym belongs to another patient');
    }
  }

  /** A patient's verified public keys (for a hospital gateway that encrypts for her). */
  async publicKeys(patient: string): Promise<pre.PatientPublicKeys> {
    const found = await this.store.patient(patient);
    if (found === undefined) throw new NotFoundError('no such patient');
    return pre.decodePublicKeys(found.publicKeys, found.signingKey);
  }

  /** Stores a hospital's records of one patient atomically and idempotently; returns how many were new. */
  async upload(source: string, patient: string, records: readonly NewRecord[]): Promise<number> {
    if ((await this.store.patient(patient)) === undefined) throw new NotFoundError('no such patient');
    return this.store.addRecords(patient, source, records);
  }

  /** Record metadata for the patient herself, or for a reader one of whose delegations covers the category. */
  async listRecords(caller: Caller, patient: string, category?: string): Promise<RecordMeta[]> {
    if (!(await this.isOwner(caller, patient))) {
      if (category === undefined) throw new AccessDeniedError('only the patient lists all her records; readers name a category');
      this.usableDelegation(caller, await this.store.delegations(patient, category), category, false);
    }
    return this.store.listRecords(patient, category);
  }

  /** The owner stores a delegation (a re-encryption key); it is recorded as a consent grant. */
  async delegate(caller: Caller, patient: string, keyBytes: Uint8Array, emergency: boolean): Promise<{ delegationId: string; category: string; policy: string }> {
    await this.requireOwner(caller, patient);
    const rk = pre.decodeReEncryptionKey(keyBytes);
    if (rk.patientId !== patient) throw new MalformedInputError('the re-encryption key is for another patient');
    if (rk.scope.kind !== 'category') throw new MalformedInputError('the cloud stores category delegations');
    const { policy } = abe.openHeader(rk.rk2);
    if (emergency && !abe.satisfies('role:emergency', policy)) throw new MalformedInputError('an emergency delegation must be satisfiable by role:emergency');
    const delegationId = Buffer.from(rk.delegationId).toString('hex');
    await this.store.addDelegation({ delegationId, patient, category: rk.category, policy, emergency, reencryptionKey: keyBytes });
    await this.audit(caller, patient, 'grant', rk.category, 'success', 0, null, { type: 'consent-grant', policyHash: sha256Name(keyBytes) });
    return { delegationId, category: rk.category, policy };
  }

  /** The owner's active delegations (without the keys). */
  async delegations(caller: Caller, patient: string): Promise<Array<Omit<DelegationRow, 'reencryptionKey'>>> {
    await this.requireOwner(caller, patient);
    return (await this.store.delegations(patient)).map(({ reencryptionKey: _key, ...rest }) => rest);
  }

  /** Revocation: the re-encryption key is deleted, so nothing more converts under it. */
  async revoke(caller: Caller, patient: string, delegationId: string): Promise<void> {
    await this.requireOwner(caller, patient);
    const removed = await this.store.deleteDelegation(patient, delegationId);
    this.converter.forget(delegationId);
    if (removed === undefined) throw new NotFoundError('no such delegation');
    await this.audit(caller, patient, 'revoke', removed.category, 'success', 0, null, { type: 'consent-revoke', policyHash: sha256Name(removed.reencryptionKey) });
  }

  /**
   * Converts every record of `category` (or only `recordIds`) for a reader whose attributes satisfy an active
   * delegation. Emergency reads need role:emergency, a stated reason and an emergency delegation.
   */
  async read(caller: Caller, patient: string, category: string, options: { recordIds?: readonly string[]; reason?: string } = {}): Promise<ConvertedRecord[]> {
    const emergency = options.reason !== undefined;
    if (emergency) {
      if (caller.role !== 'emergency') throw new AccessDeniedError('emergency access needs role:emergency');
      if (options.reason!.trim().length === 0 || options.reason!.length > MAX_REASON) throw new MalformedInputError(`an emergency access needs a stated reason of 1-${MAX_REASON} characters`);
    }
    const delegations = await this.store.readableDelegations(patient, category);
    if (delegations === undefined) throw new NotFoundError('no such patient');
    let delegation: DelegationRow;
    try {
      delegation = this.usableDelegation(caller, delegations, category, emergency);
    } catch (error) {
      await this.audit(caller, patient, emergency ? 'emergency read' : 'read', category, 'minor-failure', 0, options.reason ?? null,
        emergency ? { type: 'emergency-access', emergencyReason: 'BTG' } : { type: 'record-access' });
      throw error;
    }
    const stored = await this.store.ciphertexts(patient, category, options.recordIds);
    const ciphertexts = await this.converter.convert(delegation, stored.map((r) => r.ciphertext));
    const converted = stored.map((r, i) => ({ recordId: r.recordId, ciphertext: ciphertexts[i]! }));
    await this.audit(caller, patient, emergency ? 'emergency read' : 'read', category, 'success', converted.length, options.reason ?? null,
      emergency ? { type: 'emergency-access', emergencyReason: 'BTG' } : { type: 'record-access' },
      stored.map((r) => ({ hash: sha256Name(r.ciphertext), category })));
    return converted;
  }

  /** The patient's access log: every grant, revocation, access and emergency access about her. */
  async accessLog(caller: Caller, patient: string): Promise<AccessEntry[]> {
    await this.requireOwner(caller, patient);
    return this.store.accessLog(patient);
  }

  private async isOwner(caller: Caller, patient: string): Promise<boolean> {
    return caller.role === 'patient' && (await this.store.patient(patient))?.owner === caller.pseudonym;
  }

  private async requireOwner(caller: Caller, patient: string): Promise<void> {
    if (!(await this.isOwner(caller, patient))) throw new AccessDeniedError('only the patient herself may do this');
  }

  /** The first of the patient's active delegations of `category` whose policy the caller's attributes satisfy. */
  private usableDelegation(caller: Caller, delegations: readonly DelegationRow[], category: string, emergency: boolean): DelegationRow {
    const attributes = caller.token.attributes.join(', ');
    const candidates = delegations.filter((d) => d.emergency === emergency);
    const usable = candidates.find((d) => abe.satisfies(attributes, d.policy));
    if (usable !== undefined) return usable;
    if (candidates.length === 0) throw new AccessDeniedError(`no active ${emergency ? 'emergency ' : ''}delegation of '${category}' (revoked or never granted)`);
    throw new AccessDeniedError(`your attributes satisfy no active delegation of '${category}'`);
  }

  /** Appends to the ledger (pseudonyms, codes and hashes only) and to the patient's access log. */
  private async audit(
    caller: Caller, patient: string, action: string, category: string, outcome: 'success' | 'minor-failure', records: number,
    reason: string | null, event: Pick<AuditEventInput, 'type' | 'policyHash' | 'emergencyReason'>, touched: NonNullable<AuditEventInput['records']> = [],
  ): Promise<void> {
    const role = ROLE_CODE.test(caller.role) ? caller.role : 'other';
    const base = { ...event, outcome, patient, source: LEDGER_SOURCE, agents: [{ who: caller.pseudonym, role }] };
    // One ledger entry per 64 records touched (the entry format's limit), at least one entry.
    let first: number | undefined;
    for (let i = 0; i === 0 || i < touched.length; i += MAX_RECORDS_PER_EVENT) {
      const { index } = await this.ledger.append({ ...base, records: touched.slice(i, i + MAX_RECORDS_PER_EVENT) });
      first ??= index;
    }
    await this.store.logAccess(patient, {
      actor: caller.pseudonym, hospital: caller.token.hospital, role, action, category,
      outcome: outcome === 'success' ? (action === 'read' || action === 'emergency read' ? `${records} records` : 'ok') : 'refused',
      records, reason, ledgerIndex: first ?? null,
    });
  }
}
