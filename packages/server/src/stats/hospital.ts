/**
 * The hospital's side of a cross-hospital statistics query, run inside the hospital's own domain:
 *
 *   contribute  check the query against the hospital's own allow-list and privacy budget (the cloud is only
 *               semi-trusted, so each hospital enforces both itself), evaluate it on the hospital's plaintext
 *               records, add this hospital's share of the discrete Laplace noise to every cell, encrypt the
 *               histogram under the consortium's threshold key with a range proof of every cell (so that the
 *               cloud can refuse a histogram that would inflate a total), sign it. Once per query: a second contribution
 *               with fresh noise would let noise be averaged away.
 *   decrypt     make this hospital's partial decryption — but only of the sum of every member's signed
 *               contribution to that query (its own unchanged among them), computed here, and only of one such
 *               sum per query. The cloud can therefore not have one hospital's histogram, or any other
 *               ciphertext, decrypted.
 *
 * Secrets (the key share, the signing key) are stored wrapped by the hospital's KEK, bound to table/column/row.
 */
import { createHash } from 'node:crypto';
import { AccessDeniedError, ConflictError, curve, IntegrityError, NotFoundError, threshold } from '@medshare/crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import { epsilonToMicros, readBudget, setBudget, spendBudget, type BudgetState } from './budget.ts';
import { memberOf, signPayload, verifyPayload, type Consortium, type MemberSecrets } from './consortium.ts';
import { evaluateQuery, type StatsResource } from './evaluate.ts';
import { STATS_HOSPITAL_MIGRATIONS } from './migrations.ts';
import { noiseSample } from './noise.ts';
import { cellCount, DEFAULT_ALLOW_LIST, groupsOf, parseQuery, queryHash, sensitivity, type AllowList, type StatsQuery } from './query.ts';

/** A query as the cloud hands it to the hospitals. */
export interface QueryTicket {
  queryId: string;
  /** The query as submitted (JSON); every hospital parses and checks it itself. */
  query: unknown;
}

/** One hospital's signed, encrypted histogram for one query. */
export interface Contribution {
  hospital: string;
  ciphertext: Uint8Array;
  signature: Uint8Array;
}

/** A contribution as its hospital sends it: with the range proof of every cell (checked by the cloud, not stored). */
export interface ProvenContribution extends Contribution {
  proof: Uint8Array;
}

/** One hospital's signed partial decryption of a query's aggregate. */
export interface SignedPartial {
  hospital: string;
  partial: Uint8Array;
  signature: Uint8Array;
}

const QUERY_ID = /^[A-Za-z0-9_-]{8,64}$/;
const hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * The range each cell of a contribution is proven in, in bits: a count ±2^15, a sum ±2^23 (one hospital's noisy
 * cell). Chosen so that no MAX_PARTICIPANTS = 255 valid contributions add up to a total outside the decoding
 * bounds (2^24 for counts, 2^31 for sums): 255 · 2^15 < 2^24 and 255 · 2^23 < 2^31.
 */
export function cellBits(query: StatsQuery): number[] {
  const groups = groupsOf(query).length;
  return Array.from({ length: cellCount(query) }, (_, k) => (k < groups ? COUNT_BITS : SUM_BITS));
}
const COUNT_BITS = 16;
const SUM_BITS = 24;

/** What a contribution's range proof is bound to: the query and the hospital (a copied contribution fails elsewhere). */
export function contributionContext(queryId: string, hospital: string): Uint8Array {
  return new TextEncoder().encode(`medshare/stats/contribution/v1\0${queryId}\0${hospital}`);
}

/** The noisy, encrypted histogram of one hospital (exported for the benchmark and tests of the noise). */
export function noisyHistogram(query: StatsQuery, counts: number[]): number[] {
  const groups = groupsOf(query).length;
  const { count, sum } = sensitivity(query);
  // A sum query releases two measures; sequential composition splits ε between them: scale Δ/(ε/2) = 2Δ/ε, which
  // keeps ε's exact fraction.
  const sample = (delta: number) => (query.measure.kind === 'sum' ? noiseSample(query.epsilon, 2 * delta) : noiseSample(query.epsilon, delta));
  return counts.map((v, k) => v + sample(k < groups ? count : sum!));
}

/** A hospital's statistics agent, bound to its database, KEK and consortium membership. */
export class StatsHospital {
  private constructor(
    private readonly db: Database,
    readonly code: string,
    readonly consortium: Consortium,
    private readonly secrets: MemberSecrets,
    private readonly allow: AllowList,
  ) {}

  /** Stores this hospital's secrets (wrapped) once; a second enrolment with other secrets is a ConflictError. */
  static async enrol(db: Database, kek: KeyEncryptionKey, code: string, consortium: Consortium, secrets: MemberSecrets): Promise<void> {
    await migrate(db, 'stats-hospital', STATS_HOSPITAL_MIGRATIONS);
    memberOf(consortium, code);
    const context = (column: string) => `stats_hospital_keys/${column}/${code}`;
    const keyId = threshold.keyFingerprint(consortium.publicKey);
    const inserted = await db.query(
      'INSERT INTO stats_hospital_keys (hospital, key_id, public_key, share, signing_key) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hospital) DO NOTHING RETURNING hospital',
      [
        code,
        keyId,
        threshold.encodePublicKey(consortium.publicKey),
        await kek.wrap(threshold.encodeKeyShare(secrets.share), context('share')),
        await kek.wrap(secrets.signingKey, context('signing_key')),
      ],
    );
    if (inserted.rows.length === 0) throw new ConflictError(`hospital ${code} already holds a statistics key share`);
  }

  /**
   * Opens the agent of `code`. Throws NotFoundError if it was never enrolled, IntegrityError if the stored share
   * is for another consortium key than `consortium` (or does not match its verification key).
   */
  static async open(db: Database, kek: KeyEncryptionKey, code: string, consortium: Consortium, allow: AllowList = DEFAULT_ALLOW_LIST): Promise<StatsHospital> {
    await migrate(db, 'stats-hospital', STATS_HOSPITAL_MIGRATIONS);
    const member = memberOf(consortium, code);
    const row = (
      await db.query<{ key_id: string; share: Uint8Array; signing_key: Uint8Array }>(
        'SELECT key_id, share, signing_key FROM stats_hospital_keys WHERE hospital = $1',
        [code],
      )
    ).rows[0];
    if (row === undefined) throw new NotFoundError(`hospital ${code} holds no statistics key share`);
    if (row.key_id !== threshold.keyFingerprint(consortium.publicKey)) throw new IntegrityError(`hospital ${code}'s key share is for another consortium key`);
    const context = (column: string) => `stats_hospital_keys/${column}/${code}`;
    const share = threshold.decodeKeyShare(await kek.unwrap(new Uint8Array(row.share), context('share')));
    const signingKey = await kek.unwrap(new Uint8Array(row.signing_key), context('signing_key'));
    if (share.index !== member.index || !curve.g1Mul(curve.g1Generator(), share.secret).isEqual(consortium.publicKey.verificationKeys[member.index - 1]!)) {
      throw new IntegrityError(`hospital ${code}'s key share does not match its verification key`);
    }
    return new StatsHospital(db, code, consortium, { share, signingKey }, allow);
  }

  /** Sets this hospital's own budget (total ε) for a query set; never below what it already spent. */
  async setBudget(querySet: string, epsilon: number): Promise<void> {
    await setBudget(this.db, 'stats_hospital_budgets', { hospital: this.code, query_set: querySet }, epsilon);
  }

  /** This hospital's account of a query set. */
  budget(querySet: string): Promise<BudgetState | undefined> {
    return readBudget(this.db, 'stats_hospital_budgets', { hospital: this.code, query_set: querySet }, querySet);
  }

  private parse(ticket: QueryTicket): { query: StatsQuery; hash: string } {
    if (typeof ticket.queryId !== 'string' || !QUERY_ID.test(ticket.queryId)) throw new AccessDeniedError('a query id is 8-64 base64url characters');
    const query = parseQuery(ticket.query, this.allow);
    return { query, hash: queryHash(query) };
  }

  /**
   * Evaluates, noises, encrypts, proves in range and signs this hospital's histogram for the query. Throws what
   * parseQuery throws (not allowed here: AccessDeniedError), AccessDeniedError without a budget for the query set,
   * LimitExceededError when the budget would be exceeded or a noisy cell is outside its range (cellBits),
   * ConflictError when it already contributed.
   */
  async contribute(ticket: QueryTicket, resources: Iterable<StatsResource>): Promise<ProvenContribution> {
    const { query, hash } = this.parse(ticket);
    // The query is claimed and its ε spent before the (costly) proving, so that a repeated or unaffordable
    // request costs this hospital nothing; a claimed query whose proving then fails stays spent, never retried.
    await this.db.transaction(async (tx) => {
      const inserted = await tx.query(
        "INSERT INTO stats_hospital_queries (hospital, query_id, query_hash, contribution_digest) VALUES ($1, $2, $3, '') ON CONFLICT DO NOTHING RETURNING query_id",
        [this.code, ticket.queryId, hash],
      );
      if (inserted.rows.length === 0) throw new ConflictError(`hospital ${this.code} already contributed to query ${ticket.queryId}`);
      await spendBudget(
        tx,
        'stats_hospital_budgets',
        { hospital: this.code, query_set: query.querySet },
        query.querySet,
        epsilonToMicros(query.epsilon),
        `hospital ${this.code}`,
      );
    });
    const histogram = noisyHistogram(query, evaluateQuery(query, resources));
    const proven = threshold.encryptInRange(this.consortium.publicKey, histogram, cellBits(query), contributionContext(ticket.queryId, this.code));
    const ciphertext = threshold.encodeCiphertext(proven.ciphertext);
    await this.db.query('UPDATE stats_hospital_queries SET contribution_digest = $3 WHERE hospital = $1 AND query_id = $2', [
      this.code,
      ticket.queryId,
      hex(ciphertext),
    ]);
    const signature = signPayload('contribution', this.secrets.signingKey, ticket.queryId, hash, this.code, ciphertext);
    return { hospital: this.code, ciphertext, signature, proof: threshold.encodeRangeProof(proven.proof) };
  }

  /**
   * This hospital's signed partial decryption of the sum of `contributions`, which must be every member's, each
   * once, each validly signed for this query, this hospital's own unchanged; and the same sum as any earlier
   * decryption for this query. Throws AccessDeniedError (not contributed here, a member missing, a forged or
   * foreign contribution) or ConflictError (another aggregate for this query was decrypted already).
   */
  async decrypt(ticket: QueryTicket, contributions: readonly Contribution[]): Promise<SignedPartial> {
    const { hash } = this.parse(ticket);
    const row = (
      await this.db.query<{ query_hash: string; contribution_digest: string; aggregate_digest: string | null }>(
        'SELECT query_hash, contribution_digest, aggregate_digest FROM stats_hospital_queries WHERE hospital = $1 AND query_id = $2',
        [this.code, ticket.queryId],
      )
    ).rows[0];
    if (row === undefined || row.query_hash !== hash)
      throw new AccessDeniedError(`hospital ${this.code} did not contribute to this query and decrypts nothing for it`);
    const members = this.consortium.members.map((m) => m.code);
    const seen = new Set<string>();
    for (const c of contributions) {
      if (!members.includes(c.hospital) || seen.has(c.hospital))
        throw new AccessDeniedError(`contribution of '${String(c.hospital).slice(0, 64)}' is not one member's single contribution`);
      seen.add(c.hospital);
      if (!verifyPayload(this.consortium, 'contribution', ticket.queryId, hash, c.hospital, c.ciphertext, c.signature)) {
        throw new AccessDeniedError(`the contribution of ${c.hospital} is not signed by it for this query`);
      }
      if (c.hospital === this.code && hex(c.ciphertext) !== row.contribution_digest)
        throw new AccessDeniedError(`this hospital's own contribution was altered`);
    }
    const missing = members.filter((m) => !seen.has(m));
    if (missing.length > 0) throw new AccessDeniedError(`only the total of every member is decrypted; missing: ${missing.join(', ')}`);
    const [first, ...rest] = contributions.map((c) => threshold.decodeCiphertext(c.ciphertext));
    const aggregate = threshold.addCiphertexts(first!, ...rest);
    const aggregateDigest = hex(threshold.encodeCiphertext(aggregate));
    const claimed = await this.db.query(
      'UPDATE stats_hospital_queries SET aggregate_digest = $3 WHERE hospital = $1 AND query_id = $2 AND (aggregate_digest IS NULL OR aggregate_digest = $3) RETURNING query_id',
      [this.code, ticket.queryId, aggregateDigest],
    );
    if (claimed.rows.length === 0) throw new ConflictError(`hospital ${this.code} already decrypted another total for query ${ticket.queryId}`);
    const index = memberOf(this.consortium, this.code).index;
    const partial = threshold.encodePartial(threshold.partialDecrypt(this.secrets.share, this.consortium.publicKey.verificationKeys[index - 1]!, aggregate));
    return { hospital: this.code, partial, signature: signPayload('partial', this.secrets.signingKey, ticket.queryId, hash, this.code, partial) };
  }
}
