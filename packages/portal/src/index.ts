/**
 * @medshare/portal for Node: where the built portal is (the server serves it as static files), and the patient
 * key backup file in the portal's format, for keys made outside a browser (the demo's patient), so that she can
 * restore them in the portal. Build with `npm run build -w @medshare/portal` (run by the workspace's `prepare`,
 * so `npm install` builds it).
 */
import { createCipheriv, pbkdf2Sync, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/** The directory of the built portal (index.html and assets/). */
export const PORTAL_DIST = fileURLToPath(new URL('../dist/', import.meta.url));

/** The portal's backup parameters (backup.ts reads exactly these). */
const ITERATIONS = 600_000;
const AAD = Buffer.from('MedShare v1 patient key backup');

/**
 * A backup file of an encoded patient key (pre.encodePatientKey), encrypted under `passphrase` as the portal does it
 * (PBKDF2-SHA256, 600,000 iterations, AES-256-GCM). @throws RangeError for a passphrase under 12 characters.
 */
export function patientKeyBackup(patientId: string, secret: Uint8Array, passphrase: string): string {
  if (passphrase.length < 12) throw new RangeError('the backup passphrase needs at least 12 characters');
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = pbkdf2Sync(passphrase, salt, ITERATIONS, 32, 'sha256');
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(AAD);
  const ct = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()]);
  return JSON.stringify(
    {
      format: 'medshare-patient-key-backup',
      v: 1,
      patientId,
      kdf: { name: 'PBKDF2-SHA256', iterations: ITERATIONS, salt: salt.toString('base64url') },
      iv: iv.toString('base64url'),
      ct: ct.toString('base64url'),
    },
    null,
    2,
  );
}
