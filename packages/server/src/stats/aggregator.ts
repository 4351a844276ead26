/**
 * The cloud's side of cross-hospital statistics: it accepts a query (allow-list, then the query set's budget,
 * both checked here and again by every hospital), collects the hospitals' signed encrypted histograms, hands the
 * set back for decryption, collects signed partial decryptions, combines t valid ones (naming any hospital whose
 * proof fails), and releases the noisy totals with small cells suppressed. It never holds a key share, so it sees
 * ciphertexts only, and the one aggregate it can have decrypted is the total of every member's contribution.
 *
 * The ledger gets a `stats-query` entry when a query is accepted (its hash, query set, ε, the budget after it,
 * the requester) and a `stats-release` entry when it is released (which hospitals approved by contributing,
 * whose partials were used, whose were rejected). The query text itself stays off the ledger (it is in the
 * cloud's database and hashed on the ledger): no PHI, and a query is not free text on a permanent log.
 */
import { randomBytes } from 'node:crypto';
import { AccessDeniedError, ConflictError, IntegrityError, MalformedInputError, NotFoundError, threshold, UnavailableError } from '@medshare/crypto';
import { migrate, type Database } from '@medshare/db';
import type { AuditLog, StatsEventDetail } from '@medshare/ledger';
import { epsilonToMicros, readBudget, setBudget, spendBudget, type BudgetState } from './budget.ts';
import { memberOf, verifyPayload, type Consortium } from './consortium.ts';
import { cellBits, contributionContext, type Contribution, type ProvenContribution, type QueryTicket, type SignedPartial } from './hospital.ts';
import { STATS_CLOUD_MIGRATIONS } from './migrations.ts';
import { noiseVariance, laplaceAlpha } from './noise.ts';
import { cellCount, DEFAULT_ALLOW_LIST, groupsOf, parseQuery, queryHash, sensitivity, type AllowList, type StatsQuery } from './query.ts';

/** Release rules: cells whose noisy count is below `minCount` are suppressed (their sums too). */
export interface ReleaseRules {
  minCount: number;
}
export const DEFAULT_RELEASE_RULES: ReleaseRules = { minCount: 10 };

/** Decoding bounds: a noisy count or sum outside them is reported, not searched for (bsgs.ts). */
const COUNT_BOUND = 2 ** 24;
const SUM_BOUND = 2 ** 31;

/** One released cell: its group, and its noisy count (and sum), or null where suppressed. */
export interface ReleasedCell {
  group: Record<string, string>;
  count: number | null;
  sum?: number | null;
}

/** What a released query says. */
export interface Release {
  queryId: string;
  queryHash: string;
  cells: ReleasedCell[];
  suppressedBelow: number;
  /** The discrete Laplace noise in each released count (and sum): its standard deviation. */
  noise: { countStdDev: number; sumStdDev?: number };
  budget: BudgetState;
  contributors: string[];
  decryptedBy: string[];
  rejected: string[];
  /** Sum measures are scaled integers: divide by `scale` for the value's unit. */
  scale?: number;
}

/** A query's state as the cloud reports it. */
export interface QueryStatus {
  queryId: string;
  queryHash: string;
  querySet: string;
  epsilon: number;
  contributors: string[];
  partials: string[];
  release?: Release;
}

/** The cloud-side statistics service. */
export class StatsAggregator {
  private constructor(
    private readonly db: Database,
    private readonly ledger: AuditLog,
    private formed: Consortium | undefined,
    private readonly allow: AllowList,
    private readonly rules: ReleaseRules,
    private readonly source: string,
  ) {}

  /**
   * Opens (migrating) the service; `source` is the domain code the ledger names as observer. Without a consortium
   * it waits for one (`adopt`, from the key generation's board): until then queries are refused as unavailable.
   */
  static async open(
    db: Database,
    ledger: AuditLog,
    consortium: Consortium | undefined,
    options: { allow?: AllowList; rules?: ReleaseRules; source?: string } = {},
  ): Promise<StatsAggregator> {
    await migrate(db, 'stats-cloud', STATS_CLOUD_MIGRATIONS);
    return new StatsAggregator(db, ledger, consortium, options.allow ?? DEFAULT_ALLOW_LIST, options.rules ?? DEFAULT_RELEASE_RULES, options.source ?? 'cloud');
  }

  /** The consortium whose key the queries are encrypted under (UnavailableError while its key is being generated). */
  get consortium(): Consortium {
    if (this.formed === undefined) throw new UnavailableError('the statistics consortium has no key yet: its distributed key generation is in progress');
    return this.formed;
  }

  /** Takes the consortium the key generation formed (once; a different one later is an IntegrityError). */
  adopt(consortium: Consortium): void {
    if (this.formed !== undefined && threshold.keyFingerprint(this.formed.publicKey) !== threshold.keyFingerprint(consortium.publicKey)) {
      throw new IntegrityError('the statistics consortium already has another key');
    }
    this.formed = consortium;
  }

  /** The allow-list queries are checked against. */
  get allowList(): AllowList {
    return this.allow;
  }

  /** Sets the total ε of a query set (an administrator's act); RangeError below what is spent. */
  async setBudget(querySet: string, epsilon: number): Promise<void> {
    await setBudget(this.db, 'stats_budgets', { query_set: querySet }, epsilon);
  }

  /** The account of a query set (NotFoundError if it has no budget). */
  async budget(querySet: string): Promise<BudgetState> {
    const state = await readBudget(this.db, 'stats_budgets', { query_set: querySet }, querySet);
    if (state === undefined) throw new NotFoundError(`query set ${querySet} has no budget`);
    return state;
  }

  /**
   * Accepts a query from `requester` (a pseudonym): validates it against the allow-list, spends its ε from the
   * query set's budget atomically with recording it, and puts a stats-query entry on the ledger. Throws
   * MalformedInputError / AccessDeniedError (outside the allow-list, no budget) / LimitExceededError (over budget).
   */
  async submit(requester: string, input: unknown): Promise<{ ticket: QueryTicket; queryHash: string; budget: BudgetState }> {
    const query = parseQuery(input, this.allow);
    void this.consortium; // no query before there is a key to encrypt it under
    const hash = queryHash(query);
    const queryId = randomBytes(16).toString('base64url');
    const micros = epsilonToMicros(query.epsilon);
    const budget = await this.db.transaction(async (tx) => {
      const spent = await spendBudget(tx, 'stats_budgets', { query_set: query.querySet }, query.querySet, micros, 'the cloud');
      await tx.query('INSERT INTO stats_queries (query_id, query_set, query_hash, query, epsilon_micros, requester) VALUES ($1, $2, $3, $4, $5, $6)', [
        queryId,
        query.querySet,
        hash,
        JSON.stringify(query),
        micros,
        requester,
      ]);
      return spent;
    });
    await this.ledger.append({
      type: 'stats-query',
      agents: [{ who: requester, role: 'researcher' }],
      source: this.source,
      stats: this.detail(query, hash, budget, []),
    });
    return { ticket: { queryId, query }, queryHash: hash, budget };
  }

  private detail(query: StatsQuery, hash: string, budget: BudgetState, hospitals: StatsEventDetail['hospitals']): StatsEventDetail {
    return {
      querySet: query.querySet,
      queryHash: hash,
      epsilonMicros: epsilonToMicros(query.epsilon),
      spentMicros: Math.round(budget.spent * 1e6),
      budgetMicros: Math.round(budget.budget * 1e6),
      hospitals,
    };
  }

  private async load(queryId: string): Promise<{ query: StatsQuery; hash: string; release: Release | undefined }> {
    const row = (
      await this.db.query<{ query: string; query_hash: string; release: string | null }>(
        'SELECT query, query_hash, release FROM stats_queries WHERE query_id = $1',
        [queryId],
      )
    ).rows[0];
    if (row === undefined) throw new NotFoundError(`no statistics query ${String(queryId).slice(0, 64)}`);
    return {
      query: JSON.parse(row.query) as StatsQuery,
      hash: row.query_hash,
      release: row.release === null ? undefined : (JSON.parse(row.release) as Release),
    };
  }

  /** The ticket hospitals evaluate (NotFoundError for an unknown id). */
  async ticket(queryId: string): Promise<QueryTicket> {
    return { queryId, query: (await this.load(queryId)).query };
  }

  /**
   * Stores a member's contribution after checking its signature, its ciphertext and the range proof of every cell
   * (in the widths `cellBits` gives the query). Throws AccessDeniedError (not signed by the member; a cell outside
   * its range, naming the hospital and the cells), MalformedInputError, ConflictError (already contributed).
   */
  async addContribution(queryId: string, contribution: ProvenContribution): Promise<void> {
    const { query, hash, release } = await this.load(queryId);
    if (release !== undefined) throw new ConflictError('this query is already released');
    memberOf(this.consortium, contribution.hospital);
    if (!verifyPayload(this.consortium, 'contribution', queryId, hash, contribution.hospital, contribution.ciphertext, contribution.signature)) {
      throw new AccessDeniedError(`the contribution is not signed by ${contribution.hospital} for this query`);
    }
    const ct = threshold.decodeCiphertext(contribution.ciphertext);
    if (ct.c1.length !== cellCount(query)) throw new MalformedInputError('the contribution has the wrong number of cells');
    if (threshold.keyFingerprint(this.consortium.publicKey) !== Buffer.from(ct.keyId).toString('hex'))
      throw new MalformedInputError('the contribution is under another key');
    const proof = threshold.decodeRangeProof(contribution.proof);
    const widths = cellBits(query);
    const failed = proof.bits.some((k, cell) => k !== widths[cell])
      ? widths.map((_, cell) => cell)
      : threshold.rangeFailures(this.consortium.publicKey, ct, proof, contributionContext(queryId, contribution.hospital));
    if (failed.length > 0) {
      const shown = failed.slice(0, 8).join(', ') + (failed.length > 8 ? ', …' : '');
      throw new AccessDeniedError(`the contribution of ${contribution.hospital} is refused: the range proof fails in ${failed.length} cell(s) (${shown})`);
    }
    const inserted = await this.db.query(
      'INSERT INTO stats_contributions (query_id, hospital, ciphertext, signature) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING hospital',
      [queryId, contribution.hospital, contribution.ciphertext, contribution.signature],
    );
    if (inserted.rows.length === 0) throw new ConflictError(`${contribution.hospital} already contributed to this query`);
  }

  /** Every contribution so far (hospitals fetch them to compute and decrypt the total themselves). */
  async contributions(queryId: string): Promise<Contribution[]> {
    await this.load(queryId);
    const rows = await this.db.query<{ hospital: string; ciphertext: Uint8Array; signature: Uint8Array }>(
      'SELECT hospital, ciphertext, signature FROM stats_contributions WHERE query_id = $1 ORDER BY hospital',
      [queryId],
    );
    return rows.rows.map((r) => ({ hospital: r.hospital, ciphertext: new Uint8Array(r.ciphertext), signature: new Uint8Array(r.signature) }));
  }

  /** Stores a member's signed partial decryption (its proof is checked at release, where a failure names it). */
  async addPartial(queryId: string, signed: SignedPartial): Promise<void> {
    const { hash, release } = await this.load(queryId);
    if (release !== undefined) throw new ConflictError('this query is already released');
    memberOf(this.consortium, signed.hospital);
    if (!verifyPayload(this.consortium, 'partial', queryId, hash, signed.hospital, signed.partial, signed.signature)) {
      throw new AccessDeniedError(`the partial decryption is not signed by ${signed.hospital} for this query`);
    }
    const partial = threshold.decodePartial(signed.partial);
    if (partial.index !== memberOf(this.consortium, signed.hospital).index)
      throw new MalformedInputError(`the partial decryption is not ${signed.hospital}'s index`);
    await this.db.query(
      'INSERT INTO stats_partials (query_id, hospital, partial) VALUES ($1, $2, $3) ON CONFLICT (query_id, hospital) DO UPDATE SET partial = $3',
      [queryId, signed.hospital, signed.partial],
    );
  }

  /**
   * Combines the partial decryptions of the total of every member's contribution, applies the release rules and
   * records the release. Throws AccessDeniedError if a member has not contributed or fewer than t valid partials
   * are in (naming those whose proofs failed), IntegrityError if a total is outside the decoding bound.
   * Idempotent: a released query returns its release.
   */
  async release(queryId: string): Promise<Release> {
    const { query, hash, release } = await this.load(queryId);
    if (release !== undefined) return release;
    const contributions = await this.contributions(queryId);
    const members = this.consortium.members.map((m) => m.code);
    const missing = members.filter((m) => !contributions.some((c) => c.hospital === m));
    if (missing.length > 0) throw new AccessDeniedError(`waiting for contributions from ${missing.join(', ')}`);
    const [first, ...rest] = contributions.map((c) => threshold.decodeCiphertext(c.ciphertext));
    const aggregate = threshold.addCiphertexts(first!, ...rest);
    const rows = await this.db.query<{ hospital: string; partial: Uint8Array }>(
      'SELECT hospital, partial FROM stats_partials WHERE query_id = $1 ORDER BY hospital',
      [queryId],
    );
    const partials = rows.rows.map((r) => threshold.decodePartial(new Uint8Array(r.partial)));
    const codeOf = (index: number) => this.consortium.members[index - 1]!.code;
    const groups = groupsOf(query);
    const isSum = query.measure.kind === 'sum';
    let decrypted: threshold.Decryption;
    try {
      decrypted = threshold.combine(this.consortium.publicKey, aggregate, partials, isSum ? SUM_BOUND : COUNT_BOUND);
    } catch (error) {
      if (error instanceof AccessDeniedError) {
        const bad = partials.filter((p) => !threshold.verifyPartial(this.consortium.publicKey, aggregate, p)).map((p) => codeOf(p.index));
        throw new AccessDeniedError(
          `${partials.length - bad.length} valid partial decryptions, ${this.consortium.publicKey.t} needed` +
            (bad.length ? `; rejected (proof failed): ${bad.join(', ')}` : ''),
        );
      }
      if (error instanceof IntegrityError) throw new IntegrityError(`a total is outside the decoding bound: ${error.message}`);
      throw error;
    }
    const values = decrypted.values.map(Number);
    const cells = groups.map((group, k): ReleasedCell => {
      const count = values[k]!;
      const suppressed = count < this.rules.minCount;
      return isSum
        ? { group, count: suppressed ? null : count, sum: suppressed ? null : values[groups.length + k]! }
        : { group, count: suppressed ? null : count };
    });
    const { count, sum } = sensitivity(query);
    const epsilon = isSum ? query.epsilon / 2 : query.epsilon;
    const n = this.consortium.publicKey.n;
    const stdDev = (s: number) => Math.sqrt(noiseVariance(laplaceAlpha(epsilon, s), n));
    const budget = await this.budget(query.querySet);
    const result: Release = {
      queryId,
      queryHash: hash,
      cells,
      suppressedBelow: this.rules.minCount,
      noise: sum === undefined ? { countStdDev: stdDev(count) } : { countStdDev: stdDev(count), sumStdDev: stdDev(sum) },
      budget,
      contributors: contributions.map((c) => c.hospital),
      decryptedBy: decrypted.used.map(codeOf),
      rejected: decrypted.rejected.map(codeOf),
      ...(query.measure.kind === 'sum' ? { scale: query.measure.scale } : {}),
    };
    const stored = await this.db.query('UPDATE stats_queries SET release = $2 WHERE query_id = $1 AND release IS NULL RETURNING query_id', [
      queryId,
      JSON.stringify(result),
    ]);
    if (stored.rows.length === 0) return (await this.load(queryId)).release!;
    const role = (code: string): StatsEventDetail['hospitals'][number]['role'] =>
      result.rejected.includes(code) ? 'reject' : result.decryptedBy.includes(code) ? 'decrypt' : 'approve';
    await this.ledger.append({
      type: 'stats-release',
      agents: [{ who: await this.requester(queryId), role: 'researcher' }],
      source: this.source,
      stats: this.detail(
        query,
        hash,
        budget,
        members.map((code) => ({ code, role: role(code) })),
      ),
    });
    return result;
  }

  private async requester(queryId: string): Promise<string> {
    return (await this.db.query<{ requester: string }>('SELECT requester FROM stats_queries WHERE query_id = $1', [queryId])).rows[0]!.requester;
  }

  /** The queries not released yet, oldest first (at most 100), with who has contributed and decrypted: what the agents work on. */
  async openQueries(): Promise<QueryStatus[]> {
    const rows = await this.db.query<{ query_id: string }>('SELECT query_id FROM stats_queries WHERE release IS NULL ORDER BY created_at, query_id LIMIT 100');
    const out: QueryStatus[] = [];
    for (const r of rows.rows) out.push(await this.status(r.query_id));
    return out;
  }

  /** A query's progress and, once released, its release. */
  async status(queryId: string): Promise<QueryStatus> {
    const { query, hash, release } = await this.load(queryId);
    const contributors = (await this.contributions(queryId)).map((c) => c.hospital);
    const partials = (
      await this.db.query<{ hospital: string }>('SELECT hospital FROM stats_partials WHERE query_id = $1 ORDER BY hospital', [queryId])
    ).rows.map((r) => r.hospital);
    return { queryId, queryHash: hash, querySet: query.querySet, epsilon: query.epsilon, contributors, partials, ...(release ? { release } : {}) };
  }
}
