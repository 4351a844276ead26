/**
 * Where the patient's secret key lives: on her device, in IndexedDB, encrypted (AES-256-GCM) under a wrapping key
 * that WebCrypto made non-extractable — script can ask the browser to unwrap, but no script, extension reading
 * storage or copied profile gets the wrapping key's bytes. Her backup is a file she downloads, encrypted under a
 * passphrase (PBKDF2-SHA256, 600,000 iterations: WebCrypto has no scrypt; OWASP's figure for PBKDF2-SHA256) with
 * AES-256-GCM; restoring it on a new device is her recovery path. The secret never leaves the browser otherwise.
 */
import { base64url } from 'jose';

const DATABASE = 'medshare-portal';
const STORE = 'patient-keys';
const ITERATIONS = 600_000;

/** A copy on its own ArrayBuffer (what WebCrypto's types ask for). */
const own = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(bytes);

/** A stored, wrapped secret key. */
interface StoredKey {
  readonly id: string;
  readonly patientId: string;
  readonly wrappingKey: CryptoKey;
  readonly iv: Uint8Array<ArrayBuffer>;
  readonly wrapped: ArrayBuffer;
}

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'id' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transact<T>(mode: IDBTransactionMode, run: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const request = run(db.transaction(STORE, mode).objectStore(STORE));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

/** Keeps `secret` (an encoded patient key) for `id` (hospital and subject), wrapped by a fresh non-extractable key. */
export async function storeSecret(id: string, patientId: string, secret: Uint8Array): Promise<void> {
  const wrappingKey = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const wrapped = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(id) }, wrappingKey, own(secret));
  await transact('readwrite', (store) => store.put({ id, patientId, wrappingKey, iv, wrapped } satisfies StoredKey));
}

/** The secret kept for `id`, unwrapped, or undefined when this device has none. */
export async function loadSecret(id: string): Promise<Uint8Array | undefined> {
  const stored = await transact<StoredKey | undefined>('readonly', (store) => store.get(id) as IDBRequest<StoredKey | undefined>);
  if (!stored) return undefined;
  return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: stored.iv, additionalData: new TextEncoder().encode(id) }, stored.wrappingKey, stored.wrapped));
}

async function passphraseKey(passphrase: string, salt: Uint8Array<ArrayBuffer>, usage: KeyUsage): Promise<CryptoKey> {
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
  return JSON.stringify({ format: 'medshare-patient-key-backup', v: 1, patientId, kdf: { name: 'PBKDF2-SHA256', iterations: ITERATIONS, salt: base64url.encode(salt) }, iv: base64url.encode(iv), ct: base64url.encode(ct) }, null, 2);
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
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: own(base64url.decode(file.iv)), additionalData: BACKUP_AAD }, key, own(base64url.decode(file.ct))));
  } catch {
    throw new Error('wrong passphrase, or the backup file is damaged');
  }
}
