/**
 * The browser's device keys for a session, made with WebCrypto and never extractable: an Ed25519 key that signs
 * DPoP proofs (RFC 9449; the session's tokens are bound to it) and an X25519 key the trusted authority seals a
 * doctor's CP-ABE key to. They live as long as the page; a reload means a new login on new keys.
 */
import { base64url, calculateJwkThumbprint, SignJWT, type JWK } from 'jose';

const DPOP_TYPE = 'dpop+jwt';

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

/** The DPoP and sealing keys of one login. */
export class DeviceKeys {
  private constructor(
    private readonly signing: CryptoKey,
    readonly dpopJwk: JWK,
    readonly sealingPrivateKey: CryptoKey,
    readonly sealingJwk: JWK,
    readonly sealingThumbprint: string,
  ) {}

  /** Fresh non-extractable keys. */
  static async generate(): Promise<DeviceKeys> {
    const dpop = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
    const sealing = (await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits'])) as CryptoKeyPair;
    const dpopJwk = (await crypto.subtle.exportKey('jwk', dpop.publicKey)) as JWK;
    const sealingJwk = (await crypto.subtle.exportKey('jwk', sealing.publicKey)) as JWK;
    const publicDpop = { kty: dpopJwk.kty, crv: dpopJwk.crv, x: dpopJwk.x } as JWK;
    const publicSealing = { kty: sealingJwk.kty, crv: sealingJwk.crv, x: sealingJwk.x } as JWK;
    return new DeviceKeys(dpop.privateKey, publicDpop, sealing.privateKey, publicSealing, await calculateJwkThumbprint(publicSealing));
  }

  /** A DPoP proof for `method` `url` (query and fragment are not part of `htu`), for `accessToken` when given. */
  async proof(method: string, url: string, options: { accessToken?: string; claims?: Record<string, unknown> } = {}): Promise<string> {
    const target = new URL(url, location.href);
    const payload: Record<string, unknown> = {
      htm: method,
      htu: `${target.origin}${target.pathname}`,
      jti: base64url.encode(crypto.getRandomValues(new Uint8Array(16))),
      ...options.claims,
    };
    if (options.accessToken) payload.ath = base64url.encode(await sha256(options.accessToken));
    return new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', typ: DPOP_TYPE, jwk: this.dpopJwk }).setIssuedAt().sign(this.signing);
  }
}
