/**
 * The statistics consortium: the hospitals that hold shares of one threshold key, the public key, and each
 * hospital's Ed25519 key that signs what it sends (contributions and partial decryptions), so that the cloud can
 * neither forge a hospital's histogram nor blame a hospital for a partial decryption it did not make.
 *
 * `formConsortium` runs the dealerless key generation (crypto's threshold.runDkg, Gennaro et al.) for all the
 * hospitals in this one process: it is for a single-machine deployment, a demo and tests. The process that runs
 * it sees every share for that moment; hospitals in separate processes would run the same checks but exchange the
 * DKG messages over the network (not built yet, docs/crypto.md says so).
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';
import { MalformedInputError, threshold } from '@medshare/crypto';

const HOSPITAL = /^[a-z][a-z0-9-]{0,62}$/;

/** A member hospital as every party knows it. */
export interface ConsortiumMember {
  code: string;
  /** Its index in the threshold key (1..n). */
  index: number;
  /** Its Ed25519 public key (SPKI DER). */
  verifyKey: Uint8Array;
}

/** The public description of a consortium. */
export interface Consortium {
  publicKey: threshold.ThresholdPublicKey;
  members: ConsortiumMember[];
}

/** What one hospital keeps secret. */
export interface MemberSecrets {
  share: threshold.KeyShare;
  /** Ed25519 private key, PKCS#8 DER. */
  signingKey: Uint8Array;
}

/** Runs the DKG among `codes` (t of them decrypt) and makes each hospital's signing key. */
export function formConsortium(codes: readonly string[], t: number): { consortium: Consortium; secrets: Map<string, MemberSecrets> } {
  if (new Set(codes).size !== codes.length || codes.some((c) => !HOSPITAL.test(c))) throw new MalformedInputError('hospitals are distinct lower-case codes');
  const dkg = threshold.runDkg({ n: codes.length, t });
  const secrets = new Map<string, MemberSecrets>();
  const members = codes.map((code, i) => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    secrets.set(code, { share: dkg.shares[i]!, signingKey: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' })) });
    return { code, index: i + 1, verifyKey: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })) };
  });
  return { consortium: { publicKey: dkg.publicKey, members }, secrets };
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const unb64 = (text: unknown, what: string) => {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new MalformedInputError(`consortium: ${what} must be base64`);
  return new Uint8Array(Buffer.from(text, 'base64'));
};

/** The consortium as JSON (public: the key, the members and their verify keys). */
export function consortiumToJson(c: Consortium): object {
  return {
    version: 1,
    publicKey: b64(threshold.encodePublicKey(c.publicKey)),
    members: c.members.map((m) => ({ code: m.code, index: m.index, verifyKey: b64(m.verifyKey) })),
  };
}

/** Parses and checks a consortium description (MalformedInputError). */
export function consortiumFromJson(json: unknown): Consortium {
  const o = json as { version?: unknown; publicKey?: unknown; members?: unknown };
  if (typeof o !== 'object' || o === null || o.version !== 1 || !Array.isArray(o.members))
    throw new MalformedInputError('consortium: not a version 1 description');
  const publicKey = threshold.decodePublicKey(unb64(o.publicKey, 'publicKey'));
  const members = (o.members as unknown[]).map((m, i) => {
    const x = m as { code?: unknown; index?: unknown; verifyKey?: unknown };
    if (typeof x?.code !== 'string' || !HOSPITAL.test(x.code) || x.index !== i + 1) throw new MalformedInputError(`consortium: member ${i + 1} is malformed`);
    const verifyKey = unb64(x.verifyKey, `member ${x.code} verifyKey`);
    try {
      createPublicKey({ key: Buffer.from(verifyKey), format: 'der', type: 'spki' });
    } catch {
      throw new MalformedInputError(`consortium: member ${x.code} has no valid Ed25519 key`);
    }
    return { code: x.code, index: i + 1, verifyKey };
  });
  if (members.length !== publicKey.n || new Set(members.map((m) => m.code)).size !== members.length) {
    throw new MalformedInputError('consortium: members must match the key, once each');
  }
  return { publicKey, members };
}

/** The member named `code` (MalformedInputError if there is none). */
export function memberOf(c: Consortium, code: string): ConsortiumMember {
  const m = c.members.find((x) => x.code === code);
  if (m === undefined) throw new MalformedInputError(`'${String(code).slice(0, 64)}' is not a member of the statistics consortium`);
  return m;
}

/** What a hospital signs: the kind of message, the query, itself, and the digest of the payload. */
function signedBytes(kind: 'contribution' | 'partial', queryId: string, queryHash: string, hospital: string, payload: Uint8Array): Buffer {
  const digest = createHash('sha256').update(payload).digest('hex');
  return Buffer.from(`medshare/stats/${kind}/v1\0${canonicalize({ queryId, queryHash, hospital, digest })}`);
}

/** Signs a payload as hospital `hospital` with its PKCS#8 Ed25519 key. */
export function signPayload(
  kind: 'contribution' | 'partial',
  signingKey: Uint8Array | KeyObject,
  queryId: string,
  queryHash: string,
  hospital: string,
  payload: Uint8Array,
): Uint8Array {
  const key = signingKey instanceof Uint8Array ? { key: Buffer.from(signingKey), format: 'der' as const, type: 'pkcs8' as const } : signingKey;
  return new Uint8Array(sign(null, signedBytes(kind, queryId, queryHash, hospital, payload), key));
}

/** True iff `signature` is member `hospital`'s signature of the payload for this query. */
export function verifyPayload(
  c: Consortium,
  kind: 'contribution' | 'partial',
  queryId: string,
  queryHash: string,
  hospital: string,
  payload: Uint8Array,
  signature: Uint8Array,
): boolean {
  const member = c.members.find((m) => m.code === hospital);
  if (member === undefined) return false;
  const key = createPublicKey({ key: Buffer.from(member.verifyKey), format: 'der', type: 'spki' });
  return verify(null, signedBytes(kind, queryId, queryHash, hospital, payload), key, Buffer.from(signature));
}
