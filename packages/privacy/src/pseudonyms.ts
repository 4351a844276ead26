/**
 * Pseudonyms for patients and records inside the platform, and the guarded re-identification
 * table of HIPAA 45 CFR 164.514(c): the code is not derived from the identifier in a way anyone
 * without the secret can reverse (HMAC-SHA256, RFC 2104, under a platform key, with domain
 * separation per kind), and the mapping back is kept encrypted (AES-256-GCM) and released only
 * to an authorised role.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { AccessDeniedError, IntegrityError, MalformedInputError } from '@medshare/crypto';

/** A stable keyed pseudonym, e.g. `pt-3k9x...`: the same (kind, id) under the same key always maps to the same value. */
export function pseudonym(key: Uint8Array, kind: 'patient' | 'record' | string, id: string): string {
  if (key.length < 32) throw new MalformedInputError('pseudonym key must be at least 32 bytes');
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(kind)) throw new MalformedInputError('pseudonym kind must be a short lower-case word');
  const mac = createHmac('sha256', key).update(`medshare/pseudonym/v1\u0000${kind}\u0000${id}`, 'utf8').digest();
  return `${kind.slice(0, 2)}-${mac.subarray(0, 20).toString('base64url')}`;
}

/**
 * The re-identification table: pseudonym → original id, each entry encrypted under a key derived
 * from the table key. Only callers presenting an authorised role may look an entry up.
 */
export class ReidentificationTable {
  private readonly entries = new Map<string, Buffer>();
  private readonly encryptionKey: Buffer;

  constructor(
    private readonly pseudonymKey: Uint8Array,
    tableKey: Uint8Array,
    private readonly authorisedRoles: ReadonlySet<string> = new Set(['privacy-officer']),
  ) {
    if (tableKey.length < 32) throw new MalformedInputError('re-identification table key must be at least 32 bytes');
    this.encryptionKey = Buffer.from(hkdfSync('sha256', tableKey, Buffer.alloc(0), 'medshare/reid-table/v1', 32));
  }

  /** Pseudonymises an id and records the mapping. */
  register(kind: string, id: string): string {
    const code = pseudonym(this.pseudonymKey, kind, id);
    if (!this.entries.has(code)) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', this.encryptionKey, iv);
      cipher.setAAD(Buffer.from(code, 'utf8'));
      const body = Buffer.concat([cipher.update(id, 'utf8'), cipher.final()]);
      this.entries.set(code, Buffer.concat([iv, body, cipher.getAuthTag()]));
    }
    return code;
  }

  /** Re-identifies a pseudonym; throws AccessDeniedError unless `role` is authorised. */
  reidentify(code: string, role: string): string {
    if (!this.authorisedRoles.has(role)) throw new AccessDeniedError(`role "${role}" may not re-identify pseudonyms`);
    const entry = this.entries.get(code);
    if (!entry) throw new MalformedInputError('unknown pseudonym');
    const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, entry.subarray(0, 12));
    decipher.setAAD(Buffer.from(code, 'utf8'));
    decipher.setAuthTag(entry.subarray(entry.length - 16));
    try {
      return Buffer.concat([decipher.update(entry.subarray(12, entry.length - 16)), decipher.final()]).toString('utf8');
    } catch {
      throw new IntegrityError('re-identification entry failed authentication');
    }
  }

  /** Exports the encrypted entries (safe to store: no plaintext ids). */
  export(): Record<string, string> {
    return Object.fromEntries([...this.entries].map(([code, entry]) => [code, entry.toString('base64')]));
  }

  /** Imports entries produced by `export`. */
  import(entries: Record<string, string>): void {
    for (const [code, entry] of Object.entries(entries)) this.entries.set(code, Buffer.from(entry, 'base64'));
  }
}
