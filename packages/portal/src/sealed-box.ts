/**
 * Opens the trusted authority's delivery of a CP-ABE key in the browser, with WebCrypto only: the construction of
 * packages/identity/src/ta/sealed-box.ts (X25519 ECDH with the box's ephemeral key, HKDF-SHA256 with salt =
 * ephemeral ‖ recipient public key and info = label ‖ 0 ‖ context, AES-256-GCM with the context as associated
 * data). The device's private key is non-extractable; only the opened key bytes reach script.
 */
import { base64url, type JWK } from 'jose';

const LABEL = 'medshare/ta-key-delivery/v1';
const utf8 = new TextEncoder();

/** The JSON form of a sealed secret (as the TA sends it). */
export interface SealedBox {
  readonly v: 1;
  readonly epk: string;
  readonly iv: string;
  readonly ct: string;
  readonly tag: string;
}

/** The key delivery context: authority ‖ subject ‖ token id (identity's deliveryContext). */
export function deliveryContext(authorityId: string, subject: string, tokenId: string): string {
  return `${authorityId}|${subject}|${tokenId}`;
}

/** Opens `box` with the device's X25519 key; throws when it was altered or is for another device or context. */
export async function openBox(privateKey: CryptoKey, publicJwk: JWK, box: SealedBox, context: string): Promise<Uint8Array> {
  if (box?.v !== 1) throw new Error('the key delivery is malformed');
  const epk = new Uint8Array(base64url.decode(box.epk));
  const iv = new Uint8Array(base64url.decode(box.iv));
  const sealed = new Uint8Array([...base64url.decode(box.ct), ...base64url.decode(box.tag)]);
  if (epk.length !== 32 || iv.length !== 12) throw new Error('the key delivery is malformed');
  const ephemeral = await crypto.subtle.importKey('raw', epk, { name: 'X25519' }, false, []);
  const shared = await crypto.subtle.deriveBits({ name: 'X25519', public: ephemeral }, privateKey, 256);
  const recipient = base64url.decode(publicJwk.x!);
  const info = new Uint8Array([...utf8.encode(LABEL), 0, ...utf8.encode(context)]);
  const hkdfKey = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  const key = await crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array([...epk, ...recipient]), info },
    hkdfKey,
    { name: 'AES-GCM', length: 256 },
    false,
    ['decrypt'],
  );
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: utf8.encode(context) }, key, sealed));
  } catch {
    throw new Error('the key delivery failed authentication');
  }
}
