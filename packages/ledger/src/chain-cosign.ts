/**
 * Witness cosignatures the anchor contract can check (contracts/LedgerAnchor.sol). The EVM has no Ed25519, so a
 * witness that takes part in anchoring also holds a secp256k1 chain key, and signs (raw ECDSA, low s) the digest
 * keccak256("medshare checkpoint cosignature v1\n" ‖ checkpointHash), where checkpointHash is the SHA-256 of the
 * checkpoint body "<origin>\n<size>\n<base64 root>\n" — exactly what the contract recomputes from origin, size and
 * root. A witness gives this signature only for the checkpoint it last cosigned under c2sp.org/tlog-witness (log
 * signature and consistency checked), so the chain inherits the witness's checks.
 */
import { createHash } from 'node:crypto';
import { computeAddress, concat, getAddress, getBytes, keccak256, recoverAddress, toUtf8Bytes, type SigningKey } from 'ethers';
import { IntegrityError, MalformedInputError, NotFoundError, UnavailableError } from '@medshare/crypto';
import { postToWitness } from './cosigner.ts';
import { formatCheckpoint, type Checkpoint } from './note.ts';
import { WitnessConflictError } from './errors.ts';

/** The prefix the contract's COSIGNATURE_PREFIX holds. */
export const CHAIN_COSIGNATURE_PREFIX = 'medshare checkpoint cosignature v1\n';

/** SHA-256 of the checkpoint body, as 0x hex: what the contract's checkpointHashOf computes on chain. */
export function checkpointBodyHash(checkpoint: Checkpoint): string {
  return `0x${createHash('sha256').update(formatCheckpoint(checkpoint)).digest('hex')}`;
}

/** The digest a witness signs with its chain key for `checkpoint`. */
export function chainCosignatureDigest(checkpoint: Checkpoint): string {
  return keccak256(concat([toUtf8Bytes(CHAIN_COSIGNATURE_PREFIX), getBytes(checkpointBodyHash(checkpoint))]));
}

/** The chain address (EIP-55) of a witness's chain key. */
export function chainAddressOf(key: SigningKey): string {
  return computeAddress(key);
}

/** `value` as a checksummed chain address. @throws MalformedInputError when it is not one. */
export function parseChainAddress(value: unknown): string {
  try {
    return getAddress(String(value));
  } catch {
    throw new MalformedInputError('not a chain address');
  }
}

/** A witness as the anchoring client sees it: its chain account and a way to ask for its cosignature. */
export interface ChainCosigner {
  /** The witness's chain address (as registered in the contract). */
  readonly address: string;
  /**
   * The witness's 65-byte signature (0x hex, r ‖ s ‖ v) over the checkpoint of `note`.
   * @throws WitnessConflictError when the witness last cosigned another checkpoint.
   */
  chainCosign(note: string): Promise<string>;
}

/** Checks that `signature` over `checkpoint` comes from `address`; throws IntegrityError otherwise. */
export function checkChainCosignature(checkpoint: Checkpoint, signature: string, address: string): void {
  let signer: string;
  try {
    signer = recoverAddress(chainCosignatureDigest(checkpoint), signature);
  } catch {
    throw new IntegrityError(`the chain cosignature of ${address} is malformed`);
  }
  if (signer.toLowerCase() !== address.toLowerCase()) throw new IntegrityError(`the chain cosignature is not by ${address}`);
}

/** A witness's chain cosignatures over HTTP: `POST <url>/chain-cosignature` with the checkpoint note (witness-http.ts). */
export class HttpChainCosigner implements ChainCosigner {
  constructor(
    readonly url: string,
    readonly address: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /** @throws WitnessConflictError (409), NotFoundError (404), MalformedInputError (400), IntegrityError, UnavailableError. */
  async chainCosign(note: string): Promise<string> {
    const response = await postToWitness(this.url, 'chain-cosignature', note, this.timeoutMs, this.address);
    const text = (await response.text()).trim();
    if (response.status === 200 && /^0x[0-9a-f]{130}$/.test(text)) return text;
    if (response.status === 409 && /^(0|[1-9][0-9]{0,15})$/.test(text)) throw new WitnessConflictError(Number(text));
    if (response.status === 404) throw new NotFoundError(`the witness at ${this.url} gives no chain cosignatures for this log`);
    if (response.status === 400 || response.status === 403) throw new MalformedInputError(`the witness at ${this.url} refused: ${text.slice(0, 200)}`);
    throw new UnavailableError(`the witness at ${this.url} answered ${response.status}`);
  }
}
