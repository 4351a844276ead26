/**
 * The networked key generation's messages, as the hospitals' agents post them to the cloud's bulletin board and
 * everyone reads them back: the phases of Gennaro–Jarecki–Krawczyk–Rabin's DKG (crypto threshold/dkg.ts) in order,
 * one message per member per phase, each signed by its sender's Ed25519 key (so the board can neither forge nor alter
 * one), the private shares of phase `deal` sealed to each recipient's X25519 key (so the board, which stores and
 * relays them, learns none):
 *
 *   deal         { commitments: [C_i0 … C_i(t−1)], shares: { "<j>": sealed (s_ij ‖ s'_ij) } }
 *   complain     { against: [dealer …] }                    the dealers whose share failed its check (often none)
 *   answer       { pairs: [{ recipient, share, blinding }] } a dealer publishes the pairs its accusers asked for
 *   extract      { feldman: [A_i0 … A_i(t−1)] }             ([] from a dealer not in QUAL)
 *   accuse       { pairs: [{ dealer, share, blinding }] }   pairs proving a dealer's Feldman commitments false
 *   reconstruct  { pairs: [{ dealer, share, blinding }] }   every member's pairs of the accused dealers
 *
 * A share is sealed with identity's sealed box (X25519 ECDH, HKDF-SHA256, AES-256-GCM), its context naming the
 * ceremony, the dealer and the recipient, so a box cannot be moved to another recipient, dealer or ceremony.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';
import { curve, MalformedInputError, MedShareError, threshold } from '@medshare/crypto';
import { open as openBox, seal, type SealedBox } from '@medshare/identity';

export const DKG_PHASES = ['deal', 'complain', 'answer', 'extract', 'accuse', 'reconstruct'] as const;
export type DkgPhase = (typeof DKG_PHASES)[number];

/** A member of a key-generation ceremony: its code, index, and the public keys its own service publishes. */
export interface CeremonyMember {
  code: string;
  index: number;
  /** Ed25519, SPKI DER, base64: signs its DKG messages, contributions and partial decryptions. */
  verifyKey: string;
  /** X25519, SPKI DER, base64: the dealers seal its shares to it. */
  boxKey: string;
}

/** A key-generation ceremony: t of the members will decrypt. */
export interface Ceremony {
  id: string;
  t: number;
  members: CeremonyMember[];
}

/** One signed message on the board. */
export interface DkgMessage {
  ceremony: string;
  phase: DkgPhase;
  sender: string;
  body: unknown;
  signature: string;
}

/** What an agent publishes about itself at GET /stats-agent/keys of its hospital's service. */
export interface AgentKeys {
  hospital: string;
  verifyKey: string;
  boxKey: string;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
function unb64(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length > 4096) throw new MalformedInputError(`dkg: ${what} must be base64`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

function signedBytes(m: Omit<DkgMessage, 'signature'>): Buffer {
  return Buffer.from(`medshare/stats/dkg/v1\0${canonicalize({ ceremony: m.ceremony, phase: m.phase, sender: m.sender, body: m.body })}`);
}

/** Signs a message with the sender's Ed25519 key (PKCS#8 DER). */
export function signMessage(signingKey: Uint8Array, m: Omit<DkgMessage, 'signature'>): DkgMessage {
  return { ...m, signature: b64(sign(null, signedBytes(m), createPrivateKey({ key: Buffer.from(signingKey), format: 'der', type: 'pkcs8' }))) };
}

/** True iff `m` is signed by `member`. */
export function verifyMessage(member: CeremonyMember, m: DkgMessage): boolean {
  try {
    return verify(null, signedBytes(m), publicKeyOf(member.verifyKey, 'ed25519'), Buffer.from(unb64(m.signature, 'signature')));
  } catch (error) {
    if (error instanceof MalformedInputError) return false;
    throw error;
  }
}

/** An Ed25519 or X25519 public key from base64 SPKI DER (MalformedInputError otherwise). */
export function publicKeyOf(spki: string, type: 'ed25519' | 'x25519'): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(unb64(spki, `${type} key`)), format: 'der', type: 'spki' });
  } catch {
    throw new MalformedInputError(`dkg: not an ${type} public key`);
  }
  if (key.asymmetricKeyType !== type) throw new MalformedInputError(`dkg: not an ${type} public key`);
  return key;
}

const sealContext = (ceremony: string, dealer: number, recipient: number) => `medshare/stats/dkg/v1/share\0${ceremony}\0${dealer}\0${recipient}`;

/** Seals dealer i's pair for recipient j to j's X25519 key. */
export function sealShare(ceremony: string, recipientBoxKey: string, s: threshold.DealtShare): SealedBox {
  const plain = new Uint8Array([...curve.frToBytes(s.share), ...curve.frToBytes(s.blinding)]);
  return seal(publicKeyOf(recipientBoxKey, 'x25519'), plain, sealContext(ceremony, s.dealer, s.recipient));
}

/** Opens a sealed pair with the recipient's X25519 private key; undefined if it does not open or is malformed (the recipient complains). */
export function openShare(ceremony: string, boxKey: KeyObject, box: unknown, dealer: number, recipient: number): threshold.DealtShare | undefined {
  try {
    const plain = openBox(boxKey, box as SealedBox, sealContext(ceremony, dealer, recipient));
    if (plain.length !== 2 * curve.FR_BYTES) return undefined;
    return { dealer, recipient, share: curve.frFromBytes(plain.subarray(0, curve.FR_BYTES)), blinding: curve.frFromBytes(plain.subarray(curve.FR_BYTES)) };
  } catch (error) {
    if (error instanceof MedShareError) return undefined; // altered, sealed to another, or malformed
    throw error;
  }
}

const points = (value: unknown, what: string, max: number): curve.G1[] => {
  if (!Array.isArray(value) || value.length > max) throw new MalformedInputError(`dkg: ${what} must be a list of at most ${max} points`);
  return value.map((p, k) => curve.g1FromBytes(unb64(p, `${what}[${k}]`), `${what}[${k}]`));
};
const encodePoints = (ps: readonly curve.G1[]) => ps.map((p) => b64(curve.g1ToBytes(p)));

interface WirePair {
  dealer?: number;
  recipient?: number;
  share: string;
  blinding: string;
}
const encodePair = (s: threshold.DealtShare, omit: 'dealer' | 'recipient'): WirePair => ({
  ...(omit === 'dealer' ? { recipient: s.recipient } : { dealer: s.dealer }),
  share: b64(curve.frToBytes(s.share)),
  blinding: b64(curve.frToBytes(s.blinding)),
});
function pairs(value: unknown, n: number, fixed: { dealer?: number; recipient?: number }, what: string): threshold.DealtShare[] {
  if (!Array.isArray(value) || value.length > n) throw new MalformedInputError(`dkg: ${what} must be a list of at most ${n} pairs`);
  return value.map((p: WirePair, k) => {
    const dealer = fixed.dealer ?? p?.dealer;
    const recipient = fixed.recipient ?? p?.recipient;
    if (!Number.isInteger(dealer) || !Number.isInteger(recipient) || dealer! < 1 || dealer! > n || recipient! < 1 || recipient! > n)
      throw new MalformedInputError(`dkg: ${what}[${k}] names no member`);
    return {
      dealer: dealer!,
      recipient: recipient!,
      share: curve.frFromBytes(unb64(p.share, 'share')),
      blinding: curve.frFromBytes(unb64(p.blinding, 'blinding')),
    };
  });
}

/** The bodies of each phase, built by an agent. */
export const bodies = {
  deal: (ceremony: Ceremony, commitments: readonly curve.G1[], shares: readonly threshold.DealtShare[]) => ({
    commitments: encodePoints(commitments),
    shares: Object.fromEntries(shares.map((s) => [String(s.recipient), sealShare(ceremony.id, ceremony.members[s.recipient - 1]!.boxKey, s)])),
  }),
  complain: (against: readonly number[]) => ({ against: [...against] }),
  answer: (answers: readonly threshold.DealtShare[]) => ({ pairs: answers.map((s) => encodePair(s, 'dealer')) }),
  extract: (feldman: readonly curve.G1[]) => ({ feldman: encodePoints(feldman) }),
  accuse: (held: readonly threshold.DealtShare[]) => ({ pairs: held.map((s) => encodePair(s, 'recipient')) }),
  reconstruct: (held: readonly threshold.DealtShare[]) => ({ pairs: held.map((s) => encodePair(s, 'recipient')) }),
};

/** The transcript so far, decoded and checked (MalformedInputError naming the sender and phase of a bad message). */
export interface DecodedBoard {
  transcript: threshold.DkgTranscript;
  /** Sealed shares by dealer index, then recipient index. */
  boxes: Map<number, Record<string, unknown>>;
  /** Which phases each member index has posted. */
  posted: Map<number, Set<DkgPhase>>;
}

/** Decodes one message's body for its phase (MalformedInputError on anything else). */
export function decodeBody(ceremony: Ceremony, phase: DkgPhase, index: number, body: unknown): unknown {
  const n = ceremony.members.length;
  const o = body as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new MalformedInputError(`dkg: the ${phase} body must be an object`);
  switch (phase) {
    case 'deal': {
      const shares = o['shares'];
      if (typeof shares !== 'object' || shares === null || Object.keys(shares).length !== n || ceremony.members.some((m) => !(String(m.index) in shares))) {
        throw new MalformedInputError('dkg: a deal seals one share to every member');
      }
      return { commitments: points(o['commitments'], 'commitments', ceremony.t), shares };
    }
    case 'complain': {
      const against = o['against'];
      if (
        !Array.isArray(against) ||
        against.length > n ||
        against.some((i) => !Number.isInteger(i) || i < 1 || i > n) ||
        new Set(against).size !== against.length
      ) {
        throw new MalformedInputError('dkg: complaints name distinct members');
      }
      return against as number[];
    }
    case 'answer':
      return pairs(o['pairs'], n, { dealer: index }, 'answer pairs');
    case 'extract':
      return points(o['feldman'], 'feldman', ceremony.t);
    case 'accuse':
    case 'reconstruct':
      return pairs(o['pairs'], n, { recipient: index }, `${phase} pairs`);
  }
}

/** The board's messages (already checked by the board, checked again here by whoever reads them) as a transcript. */
export function decodeBoard(ceremony: Ceremony, messages: readonly DkgMessage[]): DecodedBoard {
  const t = {
    commitments: new Map<number, curve.G1[]>(),
    complaints: new Map<number, number[]>(),
    answers: new Map<number, threshold.DealtShare[]>(),
    feldman: new Map<number, curve.G1[]>(),
    accusations: new Map<number, threshold.DealtShare[]>(),
    reconstruction: new Map<number, threshold.DealtShare[]>(),
  };
  const boxes = new Map<number, Record<string, unknown>>();
  const posted = new Map<number, Set<DkgPhase>>(ceremony.members.map((m) => [m.index, new Set()]));
  for (const m of messages) {
    const member = ceremony.members.find((x) => x.code === m.sender);
    if (member === undefined || m.ceremony !== ceremony.id || !DKG_PHASES.includes(m.phase) || !verifyMessage(member, m)) {
      throw new MalformedInputError(
        `dkg: a ${String(m.phase).slice(0, 16)} message of '${String(m.sender).slice(0, 64)}' is not signed by a member for this ceremony`,
      );
    }
    const body = decodeBody(ceremony, m.phase, member.index, m.body);
    posted.get(member.index)!.add(m.phase);
    const i = member.index;
    switch (m.phase) {
      case 'deal': {
        const d = body as { commitments: curve.G1[]; shares: Record<string, unknown> };
        t.commitments.set(i, d.commitments);
        boxes.set(i, d.shares);
        break;
      }
      case 'complain':
        t.complaints.set(i, body as number[]);
        break;
      case 'answer':
        t.answers.set(i, body as threshold.DealtShare[]);
        break;
      case 'extract':
        t.feldman.set(i, body as curve.G1[]);
        break;
      case 'accuse':
        t.accusations.set(i, body as threshold.DealtShare[]);
        break;
      case 'reconstruct':
        t.reconstruction.set(i, body as threshold.DealtShare[]);
        break;
    }
  }
  return { transcript: t, boxes, posted };
}

/** The phase every member has posted (undefined: not even `deal`), i.e. how far the ceremony has got. */
export function completedPhase(board: DecodedBoard): DkgPhase | undefined {
  let done: DkgPhase | undefined;
  for (const phase of DKG_PHASES) {
    if (![...board.posted.values()].every((s) => s.has(phase))) break;
    done = phase;
  }
  return done;
}

/** Parses a ceremony as published (MalformedInputError). */
export function parseCeremony(json: unknown): Ceremony {
  const o = json as Partial<Ceremony>;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.id !== 'string' ||
    !/^[A-Za-z0-9_-]{8,64}$/.test(o.id) ||
    !Array.isArray(o.members) ||
    !Number.isInteger(o.t)
  ) {
    throw new MalformedInputError('dkg: not a ceremony');
  }
  const members = o.members.map((m, k) => {
    if (typeof m?.code !== 'string' || m.index !== k + 1) throw new MalformedInputError(`dkg: member ${k + 1} is malformed`);
    publicKeyOf(m.verifyKey, 'ed25519');
    publicKeyOf(m.boxKey, 'x25519');
    return { code: m.code, index: m.index, verifyKey: m.verifyKey, boxKey: m.boxKey };
  });
  if (o.t! < 1 || o.t! > members.length || members.length > threshold.MAX_PARTICIPANTS) throw new MalformedInputError('dkg: a ceremony needs 1 ≤ t ≤ n');
  return { id: o.id, t: o.t!, members };
}

export { unb64 as base64Bytes };
