/**
 * A device's two keys, on the device: the Ed25519 DPoP key that proves possession (it signs the login challenge and
 * every request that needs the device: refresh, factor changes, key requests) and the X25519 key the trusted
 * authority seals attribute keys to (ta/sealed-box.ts). The login proof names the X25519 key (`sealing_jkt`), which
 * is how the hospital learns which sealing key the proven device holds.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { DpopKey } from './dpop.ts';
import { deviceKeyThumbprint } from './issuer.ts';

/** A device's signing and sealing keys. */
export class DeviceKeys {
  private constructor(
    readonly dpop: DpopKey,
    readonly sealingPublicJwk: JWK,
    readonly sealingPrivateKey: KeyObject,
    readonly sealingThumbprint: string,
  ) {}

  /** Fresh keys; `now` dates their proofs. */
  static async generate(now: () => number = Date.now): Promise<DeviceKeys> {
    const sealing = generateKeyPairSync('x25519');
    const jwk = sealing.publicKey.export({ format: 'jwk' }) as JWK;
    return new DeviceKeys(await DpopKey.generate(now), jwk, sealing.privateKey, await deviceKeyThumbprint(jwk));
  }

  /** The proof for a login's second step at `url`: signs the hospital's `challenge` and names the sealing key. */
  loginProof(url: string | URL, challenge: string): Promise<string> {
    return this.dpop.proof('POST', url, { nonce: challenge, claims: { sealing_jkt: this.sealingThumbprint } });
  }
}
