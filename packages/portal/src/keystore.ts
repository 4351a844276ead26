/**
 * Where the patient's secret key lives: on her device, in IndexedDB, encrypted (AES-256-GCM) under a wrapping key
 * that WebCrypto made non-extractable — script can ask the browser to unwrap, but no script, extension reading
 * storage or copied profile gets the wrapping key's bytes. Her backup file is backup.ts. The secret never leaves
 * the browser otherwise.
 */
import { own } from './backup.ts';

const DATABASE = 'medshare-portal';
const STORE = 'patient-keys';

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
  return new Uint8Array(
    await crypto.subtle.decrypt({ name: 'AES-GCM', iv: stored.iv, additionalData: new TextEncoder().encode(id) }, stored.wrappingKey, stored.wrapped),
  );
}
