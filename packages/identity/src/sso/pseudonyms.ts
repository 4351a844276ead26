/**
 * Conditional anonymity of a hospital's users towards the platform (docs/identity.md, "Session pseudonyms"): the
 * subject of every access token the hospital issues is a pseudonym of the session, not the user's id, so that the
 * cloud, the other hospitals and the ledger see one unlinkable identity per session, and only this hospital can
 * trace it back to the user.
 *
 * pseudonym(sid) = `psn:` ‖ base64url(n ‖ AES-256-GCM_{k_enc}(n, sid; aad = issuer)), n = HMAC-SHA256_{k_iv}(sid)[0..12]:
 * deterministic authenticated encryption of the session id under a synthetic IV (the SIV construction of Rogaway and
 * Shrimpton, EUROCRYPT 2006, with GCM as the encryption), so every token of a session names the same pseudonym
 * without storing it. Session ids are 128-bit random values, each encrypted once, so no nonce is ever reused for
 * two plaintexts; the pseudonyms of two sessions are independent to anyone without the key (IND-CPA of GCM, HMAC a
 * PRF). Tracing decrypts: the tag fails under any other key, or for an altered or foreign pseudonym.
 * k_enc and k_iv are HKDF-SHA256 of the hospital's 32-byte tracing key, which never leaves its identity service
 * (stored wrapped by the hospital's KEK).
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from 'node:crypto';
import { IntegrityError, MalformedInputError } from '@medshare/crypto';

/** Bytes of a hospital's tracing key. */
export const TRACING_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** A session pseudonym has the ledger's pseudonym form (`psn:` + 16..86 base64url characters). */
const PSEUDONYM = /^psn:[A-Za-z0-9_-]{16,86}$/;
/** The longest session id a pseudonym can carry inside the ledger's 86 characters (64 bytes). */
const MAX_SESSION_ID_BYTES = 64 - IV_BYTES - TAG_BYTES;

const derive = (key: Uint8Array, label: string) => Buffer.from(hkdfSync('sha256', key, 'MEDSHARE-SESSION-PSEUDONYM-V1', label, 32));

/** One hospital's session pseudonyms. */
export class SessionPseudonyms {
  private readonly encryptionKey: Buffer;
  private readonly ivKey: Buffer;

  /** @throws MalformedInputError for a key that is not 32 bytes. */
  constructor(
    tracingKey: Uint8Array,
    private readonly issuer: string,
  ) {
    if (!(tracingKey instanceof Uint8Array) || tracingKey.length !== TRACING_KEY_BYTES)
      throw new MalformedInputError(`a tracing key is ${TRACING_KEY_BYTES} bytes`);
    this.encryptionKey = derive(tracingKey, 'encryption');
    this.ivKey = derive(tracingKey, 'synthetic-iv');
  }

  /** The pseudonym of session `sessionId` (the same for every token of the session). */
  of(sessionId: string): string {
    const plaintext = Buffer.from(sessionId, 'utf8');
    if (plaintext.length === 0 || plaintext.length > MAX_SESSION_ID_BYTES) throw new MalformedInputError(`a session id is 1..${MAX_SESSION_ID_BYTES} bytes`);
    const iv = createHmac('sha256', this.ivKey).update(plaintext).digest().subarray(0, IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.encryptionKey, iv);
    cipher.setAAD(Buffer.from(this.issuer, 'utf8'));
    const body = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return `psn:${body.toString('base64url')}`;
  }

  /**
   * The session id a pseudonym of this hospital names.
   * @throws MalformedInputError for a string that is not a session pseudonym, IntegrityError for one this key did not
   *   make (another hospital's, another key's, or altered).
   */
  trace(pseudonym: string): string {
    if (typeof pseudonym !== 'string' || !PSEUDONYM.test(pseudonym)) throw new MalformedInputError('a session pseudonym is psn:<16-86 base64url>');
    const body = Buffer.from(pseudonym.slice('psn:'.length), 'base64url');
    if (body.length <= IV_BYTES + TAG_BYTES) throw new IntegrityError('not a session pseudonym of this hospital');
    const iv = body.subarray(0, IV_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, iv);
    decipher.setAAD(Buffer.from(this.issuer, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new IntegrityError('not a session pseudonym of this hospital (another key made it, or it was altered)');
    }
    return plaintext.toString('utf8');
  }
}
