/**
 * How a log obtains cosignatures: the `Cosigner` interface, the c2sp.org/tlog-witness `add-checkpoint` request
 * and response bodies, and an HTTP client of a remote witness (each hospital runs one, witness-http.ts). The
 * in-process `Witness` (witness.ts) is a Cosigner too.
 */
import { IntegrityError, MalformedInputError, NotFoundError, UnavailableError } from '@medshare/crypto';
import { HASH_SIZE } from './hashing.ts';
import { parseNote, type NoteSignature } from './note.ts';
import { ForkDetectedError, WitnessConflictError } from './errors.ts';
import type { CheckpointVerifier } from './keys.ts';
import type { AddCheckpointRequest } from './witness.ts';

/** A witness as the log sees it: its public key, and the add-checkpoint call. */
export interface Cosigner {
  readonly verifier: CheckpointVerifier;
  /**
   * Submits a checkpoint with a consistency proof from `oldSize`; resolves with the witness's cosignature.
   * @throws WitnessConflictError (with the witness's size) when `oldSize` is not the size it last cosigned.
   */
  addCheckpoint(request: AddCheckpointRequest): Promise<NoteSignature>;
}

const MAX_PROOF_LINES = 63;
const MAX_BODY = 64 * 1024;

/** The add-checkpoint request body: `old <size>`, one base64 proof hash a line, an empty line, the checkpoint note. */
export function formatAddCheckpoint(request: AddCheckpointRequest): string {
  const proof = request.consistencyProof.map((hash) => `${Buffer.from(hash).toString('base64')}\n`).join('');
  return `old ${request.oldSize}\n${proof}\n${request.note}`;
}

/** Parses an add-checkpoint request body strictly. @throws MalformedInputError, LimitExceededError (from parseNote). */
export function parseAddCheckpoint(text: string): AddCheckpointRequest {
  if (text.length > MAX_BODY) throw new MalformedInputError('an add-checkpoint request is at most 64 KiB');
  const blank = text.indexOf('\n\n');
  if (blank < 0) throw new MalformedInputError('an add-checkpoint request is an old size line, proof lines, an empty line and a checkpoint');
  const [oldLine = '', ...proofLines] = text.slice(0, blank).split('\n');
  const old = /^old (0|[1-9][0-9]{0,15})$/.exec(oldLine);
  if (old === null) throw new MalformedInputError('the first line is "old <size>"');
  if (proofLines.length > MAX_PROOF_LINES) throw new MalformedInputError(`at most ${MAX_PROOF_LINES} consistency proof lines`);
  const consistencyProof = proofLines.map((line) => {
    const hash = Buffer.from(line, 'base64');
    if (hash.length !== HASH_SIZE || hash.toString('base64') !== line) throw new MalformedInputError('a proof line is one base64 SHA-256 hash');
    return hash;
  });
  const note = text.slice(blank + 2);
  parseNote(note);
  return { oldSize: Number(old[1]), consistencyProof, note };
}

/** The cosignature of `verifier` in an add-checkpoint response (signature lines), checked against `note`'s body. */
export function cosignatureFrom(response: string, note: string, verifier: CheckpointVerifier): NoteSignature {
  const { body } = parseNote(note);
  const { signatures } = parseNote(`${body}\n${response}`);
  const mine = signatures.find((s) => s.name === verifier.name && verifier.verify(body, s.signature) !== undefined);
  if (mine === undefined) throw new IntegrityError(`the witness ${verifier.name} returned no valid cosignature`);
  return mine;
}

/**
 * POSTs a text body to `endpoint` under a witness's `url` within `timeoutMs`: how both witness clients call it
 * (HttpCosigner here, HttpChainCosigner in chain-cosign.ts). The witness is `name` in the error.
 * @throws UnavailableError when the witness cannot be reached (any status is the caller's to read).
 */
export async function postToWitness(url: string, endpoint: string, body: string, timeoutMs: number, name: string): Promise<Response> {
  try {
    return await fetch(new URL(endpoint, url.endsWith('/') ? url : `${url}/`), {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch {
    throw new UnavailableError(`the witness ${name} at ${url} is unreachable`);
  }
}

/** A witness reached over HTTP at `url` (its submission prefix; `add-checkpoint` is appended). */
export class HttpCosigner implements Cosigner {
  constructor(
    readonly url: string,
    readonly verifier: CheckpointVerifier,
    private readonly timeoutMs = 10_000,
  ) {}

  /** @throws WitnessConflictError, ForkDetectedError (422), IntegrityError (403), NotFoundError, UnavailableError. */
  async addCheckpoint(request: AddCheckpointRequest): Promise<NoteSignature> {
    const response = await postToWitness(this.url, 'add-checkpoint', formatAddCheckpoint(request), this.timeoutMs, this.verifier.name);
    const text = await response.text();
    if (response.status === 200) return cosignatureFrom(text, request.note, this.verifier);
    const detail = text.slice(0, 200).trim();
    if (response.status === 409 && /^(0|[1-9][0-9]{0,15})\n$/.test(text)) throw new WitnessConflictError(Number(text));
    if (response.status === 422 || response.status === 409) {
      throw new ForkDetectedError(`the witness ${this.verifier.name} refused the checkpoint as inconsistent: ${detail}`, [request.note, request.note]);
    }
    if (response.status === 403) throw new IntegrityError(`the witness ${this.verifier.name} found no valid log signature`);
    if (response.status === 404) throw new NotFoundError(`the witness ${this.verifier.name} does not witness this log`);
    if (response.status === 400) throw new MalformedInputError(`the witness ${this.verifier.name} refused the request: ${detail}`);
    throw new UnavailableError(`the witness ${this.verifier.name} answered ${response.status}`);
  }
}
