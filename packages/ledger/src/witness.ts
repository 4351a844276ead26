/**
 * Witnesses (c2sp.org/tlog-witness semantics, in process): each hospital runs one. A witness cosigns a log's
 * checkpoint only after checking that it is signed by the log and consistent (RFC 9162 §2.1.4) with the last
 * checkpoint it cosigned, and remembers that checkpoint in its own database. A log that shows two witnesses
 * (or one witness twice) different histories is caught: same size with another root, or a failing consistency
 * proof, is a fork, reported with both signed checkpoints as evidence.
 */
import { computeAddress, type SigningKey } from 'ethers';
import { IntegrityError, MalformedInputError, NotFoundError } from '@medshare/crypto';
import { chainCosignatureDigest, type ChainCosigner } from './chain-cosign.ts';
import { migrate, type Database } from '@medshare/db';
import { findSignature, parseCheckpoint, parseNote, type Checkpoint, type NoteSignature } from './note.ts';
import { verifyConsistency } from './proofs.ts';
import { LEDGER_MIGRATIONS } from './schema.ts';
import { ForkDetectedError, WitnessConflictError } from './errors.ts';
import type { CheckpointSigner, CheckpointVerifier } from './keys.ts';
import type { AuditLog } from './log.ts';
import type { Cosigner } from './cosigner.ts';

/** A checkpoint note verified against the log's key. */
export interface VerifiedCheckpoint extends Checkpoint {
  note: string;
  /** Time of the log's signature (seconds since the epoch). */
  time: number;
}

/** Parses `note` and checks the log's signature and origin; throws IntegrityError otherwise. */
export function verifyCheckpointNote(note: string, log: CheckpointVerifier): VerifiedCheckpoint {
  const { body, signatures } = parseNote(note);
  const checkpoint = parseCheckpoint(body);
  if (checkpoint.origin !== log.name) throw new IntegrityError(`checkpoint of ${checkpoint.origin}, expected ${log.name}`);
  const time = findSignature(body, signatures, log);
  if (time === undefined) throw new IntegrityError(`checkpoint of size ${checkpoint.size} is not signed by the log key`);
  return { ...checkpoint, note, time };
}

/**
 * Checks two signed checkpoints of one log against each other. Returns the fork, if any: equal sizes with
 * different roots, or a consistency proof (from the smaller to the larger) that does not verify.
 */
export function findFork(a: VerifiedCheckpoint, b: VerifiedCheckpoint, proof: readonly Uint8Array[]): ForkDetectedError | undefined {
  const [older, newer] = a.size <= b.size ? [a, b] : [b, a];
  if (older.size === newer.size) {
    return older.rootHash.equals(newer.rootHash)
      ? undefined
      : new ForkDetectedError(`fork: two checkpoints of size ${older.size} with different roots`, [older.note, newer.note]);
  }
  return verifyConsistency(older.size, newer.size, proof, older.rootHash, newer.rootHash)
    ? undefined
    : new ForkDetectedError(`fork: checkpoint ${newer.size} is not consistent with checkpoint ${older.size}`, [older.note, newer.note]);
}

/** What a log sends a witness: the size it believes the witness is at, a proof from there, the new checkpoint. */
export interface AddCheckpointRequest {
  oldSize: number;
  consistencyProof: readonly Uint8Array[];
  note: string;
}

/** How a witness is opened. */
export interface WitnessOptions {
  /** The witness's secp256k1 chain key, when it cosigns checkpoints for the anchor contract (chain-cosign.ts). */
  chainKey?: SigningKey;
}

/**
 * A witness of one log, with its state in its own database. It is a `Cosigner` (cosigner.ts) for in-process use,
 * and with a chain key a `ChainCosigner` (chain-cosign.ts).
 */
export class Witness implements ChainCosigner {
  /**
   * The checkpoint this process last moved the state to (verified then). Each request is checked against it without
   * re-reading and re-verifying the stored one; the compare-and-swap on the stored size still guards every move, so
   * when another process of this witness moved the state, the swap fails and the stored state is read again.
   */
  private moved: VerifiedCheckpoint | undefined;

  private constructor(
    private readonly db: Database,
    private readonly signer: CheckpointSigner,
    private readonly log: CheckpointVerifier,
    private readonly chainKey: SigningKey | undefined,
  ) {}

  /** Opens the witness `signer.verifier.name` of the log whose key is `log`. */
  static async open(db: Database, signer: CheckpointSigner, log: CheckpointVerifier, options: WitnessOptions = {}): Promise<Witness> {
    await migrate(db, 'ledger', LEDGER_MIGRATIONS);
    return new Witness(db, signer, log, options.chainKey);
  }

  /** The witness's chain address ('' without a chain key). */
  get address(): string {
    if (this.chainKey === undefined) return '';
    return computeAddress(this.chainKey);
  }

  /**
   * Signs, with the chain key, the checkpoint this witness last cosigned: `note` must be signed by the log and have
   * that checkpoint's size and root. The contract then counts the signature towards the anchoring quorum.
   * @throws NotFoundError without a chain key, IntegrityError for another log's note or one the log did not sign,
   *   WitnessConflictError when the witness last cosigned another checkpoint (or none).
   */
  async chainCosign(note: string): Promise<string> {
    if (this.chainKey === undefined) throw new NotFoundError(`the witness ${this.verifier.name} has no chain key`);
    const checkpoint = verifyCheckpointNote(note, this.log);
    const latest = await this.latest();
    if (latest === undefined || latest.size !== checkpoint.size || !latest.rootHash.equals(checkpoint.rootHash)) {
      throw new WitnessConflictError(latest?.size ?? 0);
    }
    return this.chainKey.sign(chainCosignatureDigest(checkpoint)).serialized;
  }

  /** The witness's public key, for verifiers' trust policies. */
  get verifier(): CheckpointVerifier {
    return this.signer.verifier;
  }

  /** The last checkpoint this witness cosigned, if any. */
  async latest(): Promise<VerifiedCheckpoint | undefined> {
    const row = (
      await this.db.query<{ note: string }>('SELECT note FROM ledger_witness_state WHERE witness = $1 AND origin = $2', [this.verifier.name, this.log.name])
    ).rows[0];
    return row === undefined ? undefined : verifyCheckpointNote(row.note, this.log);
  }

  /** The origin of the log this witness watches. */
  get origin(): string {
    return this.log.name;
  }

  /**
   * Verifies and cosigns a checkpoint (the checks of c2sp.org/tlog-witness add-checkpoint, in its order); returns
   * the cosignature line to attach to it.
   * @throws NotFoundError for another log's checkpoint, IntegrityError when the log's signature does not verify,
   *   MalformedInputError for an old size above the checkpoint's or a non-empty proof from size 0,
   *   WitnessConflictError when the old size is not the witness's, ForkDetectedError for an inconsistent checkpoint.
   */
  async addCheckpoint(request: AddCheckpointRequest, now: number = Math.floor(Date.now() / 1000)): Promise<NoteSignature> {
    const { body } = parseNote(request.note);
    if (parseCheckpoint(body).origin !== this.log.name) throw new NotFoundError(`this witness does not witness ${parseCheckpoint(body).origin}`);
    const incoming = verifyCheckpointNote(request.note, this.log);
    if (!Number.isSafeInteger(request.oldSize) || request.oldSize < 0 || request.oldSize > incoming.size) {
      throw new MalformedInputError(`old size ${request.oldSize} is not between 0 and the checkpoint's ${incoming.size}`);
    }
    // Every tree extends the empty one, and the only proof of that is the empty proof (c2sp.org/tlog-witness).
    if (request.oldSize === 0 && request.consistencyProof.length > 0) throw new MalformedInputError('a consistency proof from size 0 is empty');
    // An old size other than the one this process knows: the stored state decides (another process may have moved it).
    const known = this.moved;
    this.moved = undefined;
    const latest = known !== undefined && request.oldSize === known.size ? known : await this.latest();
    const latestSize = latest?.size ?? 0;
    if (request.oldSize !== latestSize) throw new WitnessConflictError(latestSize);
    const fork = latest === undefined ? undefined : findFork(latest, incoming, request.consistencyProof);
    if (fork !== undefined) throw fork;
    // Compare-and-swap on the size, so two concurrent requests cannot both move the witness.
    const updated = await this.db.query<{ witness: string }>(
      latest === undefined
        ? 'INSERT INTO ledger_witness_state (witness, origin, size, note) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING witness'
        : 'UPDATE ledger_witness_state SET size = $3, note = $4 WHERE witness = $1 AND origin = $2 AND size = $5 RETURNING witness',
      latest === undefined
        ? [this.verifier.name, this.log.name, incoming.size, request.note]
        : [this.verifier.name, this.log.name, incoming.size, request.note, latestSize],
    );
    if (updated.rows.length === 0) throw new WitnessConflictError((await this.latest())?.size ?? 0);
    this.moved = incoming;
    return { name: this.verifier.name, signature: this.signer.sign(body, now) };
  }
}

/**
 * Has every witness cosign the log's latest checkpoint, each sent a consistency proof from the size it last
 * cosigned. Returns the checkpoint note with the new cosignatures attached (and stored). A witness that refuses
 * (a fork, a conflict) makes this throw its error; cosignatures already gathered are kept.
 */
export async function collectCosignatures(log: AuditLog, witnesses: readonly Cosigner[]): Promise<string> {
  await log.flush();
  return log.cosign(witnesses, { strict: true });
}
