/** Shared test data: valid event inputs with pseudonyms and hashes only. */
import { createHash } from 'node:crypto';
import type { AuditEventInput } from '../src/index.ts';

/** A deterministic pseudonym from a label. */
export function pseudonym(label: string): string {
  return `psn:${createHash('sha256').update(label).digest('base64url').slice(0, 22)}`;
}

/** A sha256:<hex> name for a label. */
export function hashName(label: string): string {
  return `sha256:${createHash('sha256').update(label).digest('hex')}`;
}

/** A record-access event by doctor `d` on patient `p`. */
export function accessEvent(p: string, d = 'doctor-1'): AuditEventInput {
  return {
    type: 'record-access',
    patient: pseudonym(p),
    agents: [{ who: pseudonym(d), role: 'doctor' }],
    source: 'hospital-a',
    records: [{ hash: hashName(`${p}/record`), category: 'lab' }],
    recorded: new Date('2026-11-24T12:00:00Z'),
  };
}
