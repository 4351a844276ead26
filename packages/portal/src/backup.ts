/**
 * The patient's key backup: a file she downloads, encrypted under a passphrase (PBKDF2-SHA256, 600,000 iterations —
 * WebCrypto has no scrypt; OWASP's figure for PBKDF2-SHA256 — then AES-256-GCM); restoring it on a new device is her
 * recovery path. WebCrypto only, so the same code runs in Node (src/index.ts writes the same format for the demo).
 */
import { base64url } from 'jose';

const ITERATIONS = 600_000;

/** A copy on its own ArrayBuffer (what WebCrypto's types ask for). */
export const own = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(bytes);

async function passphraseKey(passphrase: string, salt: Uint8Array<ArrayBuffer>, usage: 'encrypt' | 'decrypt') {
  if (passphrase.length < 12) throw new Error('the backup passphrase needs at least 12 characters');
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(passphrase), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations: ITERATIONS }, base, { name: 'AES-GCM', length: 256 }, false, [usage]);
}

const BACKUP_AAD = new TextEncoder().encode('MedShare v1 patient key backup');

/** The backup file's text: `secret` encrypted under `passphrase`. */
export async function backupFile(patientId: string, secret: Uint8Array, passphrase: string): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await passphraseKey(passphrase, salt, 'encrypt');
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: BACKUP_AAD }, key, own(secret)));
  return JSON.stringify(
    {
      format: 'medshare-patient-key-backup',
      v: 1,
      patientId,
      kdf: { name: 'PBKDF2-SHA256', iterations: ITERATIONS, salt: base64url.encode(salt) },
      iv: base64url.encode(iv),
      ct: base64url.encode(ct),
    },
    null,
    2,
  );
}

/** The secret of a backup file; throws for a wrong passphrase or a damaged file. */
export async function restoreBackup(text: string, passphrase: string): Promise<Uint8Array> {
  let file: { format?: string; v?: number; kdf?: { iterations?: number; salt?: string }; iv?: string; ct?: string };
  try {
    file = JSON.parse(text);
  } catch {
    throw new Error('this is not a MedShare key backup');
  }
  if (file.format !== 'medshare-patient-key-backup' || file.v !== 1 || file.kdf?.iterations !== ITERATIONS || !file.kdf.salt || !file.iv || !file.ct) {
    throw new Error('this is not a MedShare key backup (or a version this portal cannot read)');
  }
  const key = await passphraseKey(passphrase, own(base64url.decode(file.kdf.salt)), 'decrypt');
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt({ name: 'AES-GCM', iv: own(base64url.decode(file.iv)), additionalData: BACKUP_AAD }, key, own(base64url.decode(file.ct))),
    );
  } catch {
    throw new Error('wrong passphrase, or the backup file is damaged');
  }
}
