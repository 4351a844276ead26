/**
 * A hospital's statistics agent, run by its own service (`medshare serve hospital`): the hospital's half of both the
 * key generation and every query, talking to the cloud over HTTP, holding nothing of any other hospital's.
 *
 *   key generation  it takes part in the ceremony the cloud's board opens (dkg-board.ts), once it has checked that
 *                   every member key the board names is the one that member's own service publishes (its URL from
 *                   this hospital's configuration, not from the cloud): a board that substituted a key to read a
 *                   sealed share is refused. It deals (its polynomials kept wrapped by its KEK until the end), opens
 *                   the shares sealed to it, complains, answers, extracts, accuses, reconstructs — the phases of
 *                   crypto's GJKR DKG — and at the end computes the joint key and its own share from the transcript,
 *                   which it keeps wrapped by its KEK (StatsHospital.enrol).
 *   queries         for each open query: contribute (its own allow-list and budget, StatsHospital.contribute) on its
 *                   own plaintext records, then, once every member has contributed, decrypt the total — at once
 *                   under policy `auto`, only after its administrator approved that query under `manual`.
 *
 * The consortium it works with (members and their verify keys) is the one it checked itself, stored in its own
 * database, never re-read from the cloud: the cloud cannot name a member key of its own to have a forged
 * contribution decrypted.
 */
import { generateKeyPairSync, createPrivateKey, createPublicKey } from 'node:crypto';
import { ConflictError, curve, IntegrityError, MalformedInputError, MedShareError, threshold } from '@medshare/crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import { callJson } from '../http-client.ts';
import type { HospitalPeer } from '../services/trust.ts';
import type { QueryStatus } from './aggregator.ts';
import { HospitalStatsClient } from './client.ts';
import { consortiumFromJson, consortiumToJson, type Consortium } from './consortium.ts';
import type { BoardState } from './dkg-board.ts';
import {
  bodies,
  completedPhase,
  decodeBoard,
  DKG_PHASES,
  openShare,
  parseCeremony,
  signMessage,
  type AgentKeys,
  type Ceremony,
  type DkgPhase,
} from './dkg-wire.ts';
import type { StatsResource } from './evaluate.ts';
import { StatsHospital } from './hospital.ts';
import { STATS_HOSPITAL_MIGRATIONS } from './migrations.ts';
import { DEFAULT_ALLOW_LIST, type AllowList } from './query.ts';

/** A hospital's statistics policy and data. */
export interface StatsAgentOptions {
  /** The hospital's own FHIR resources, read at each query (plaintext, inside its domain). */
  readonly data: () => Promise<Iterable<StatsResource>>;
  /** Its own privacy budgets: query set → total ε (a query set without one is declined). */
  readonly budgets?: ReadonlyArray<readonly [string, number]>;
  /** `auto`: decrypt every total it contributed to; `manual`: only those its administrator approved. */
  readonly approve?: 'auto' | 'manual';
  /** Its allow-list (default: the platform's). */
  readonly allow?: AllowList;
  /** How often it polls the cloud, in ms (default 1000). */
  readonly pollMs?: number;
}

/** What the agent reports about itself (GET /stats-agent). */
export interface AgentStatus {
  hospital: string;
  /** The key generation's phase it last saw complete, or `formed` once it holds its share. */
  stage: DkgPhase | 'formed' | 'waiting';
  keyId?: string;
  /** Queries it declined to contribute to or decrypt, with why (its policy, never data). */
  declined: Array<{ queryId: string; reason: string }>;
  /** The last error talking to the cloud, if the last round failed. */
  lastError?: string;
}

const context = (column: string, code: string) => `stats_agent_keys/${column}/${code}`;

/** The hospital's statistics agent (one per hospital service). */
export class StatsAgent {
  private member: StatsHospital | undefined;
  private client: HospitalStatsClient | undefined;
  private verifiedCeremony: string | undefined;
  private stage: AgentStatus['stage'] = 'waiting';
  private lastError: string | undefined;
  private readonly declined = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  private constructor(
    private readonly db: Database,
    private readonly kek: KeyEncryptionKey,
    readonly code: string,
    private readonly cloud: () => URL,
    private readonly peers: () => readonly HospitalPeer[],
    private readonly options: StatsAgentOptions,
    private readonly signingKey: Uint8Array,
    private readonly boxKey: Uint8Array,
    readonly keys: AgentKeys,
  ) {}

  /** Opens the agent of `code`, making its signing and sealing keys the first time (wrapped by its KEK). */
  static async open(
    db: Database,
    kek: KeyEncryptionKey,
    code: string,
    cloud: () => URL,
    peers: () => readonly HospitalPeer[],
    options: StatsAgentOptions,
  ): Promise<StatsAgent> {
    await migrate(db, 'stats-hospital', STATS_HOSPITAL_MIGRATIONS);
    const select = () =>
      db.query<{ signing_key: Uint8Array; box_key: Uint8Array }>('SELECT signing_key, box_key FROM stats_agent_keys WHERE hospital = $1', [code]);
    if ((await select()).rows.length === 0) {
      const der = (type: 'ed25519' | 'x25519') => new Uint8Array(generateKeyPairSync(type as 'ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }));
      await db.query('INSERT INTO stats_agent_keys (hospital, signing_key, box_key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [
        code,
        await kek.wrap(der('ed25519'), context('signing_key', code)),
        await kek.wrap(der('x25519'), context('box_key', code)),
      ]);
    }
    const row = (await select()).rows[0]!;
    const signingKey = await kek.unwrap(new Uint8Array(row.signing_key), context('signing_key', code));
    const boxKey = await kek.unwrap(new Uint8Array(row.box_key), context('box_key', code));
    const spki = (pkcs8: Uint8Array) =>
      Buffer.from(
        createPublicKey(createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' }),
      ).toString('base64');
    return new StatsAgent(db, kek, code, cloud, peers, options, signingKey, boxKey, { hospital: code, verifyKey: spki(signingKey), boxKey: spki(boxKey) });
  }

  /** Polls the cloud every `pollMs` until `close`. */
  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.step().finally(() => {
        this.running = undefined;
        if (!this.stopped) (this.timer = setTimeout(tick, this.options.pollMs ?? 1000)).unref();
      });
    };
    tick();
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  status(): AgentStatus {
    return {
      hospital: this.code,
      stage: this.stage,
      ...(this.member ? { keyId: threshold.keyFingerprint(this.member.consortium.publicKey) } : {}),
      declined: [...this.declined].map(([queryId, reason]) => ({ queryId, reason })),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** The administrator approves decrypting the total of query `queryId` (policy `manual`). */
  async approve(queryId: string): Promise<void> {
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(queryId)) throw new MalformedInputError('a query id is 8-64 base64url characters');
    await this.db.query('INSERT INTO stats_agent_approvals (hospital, query_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [this.code, queryId]);
  }

  /** One round: the key generation until this hospital holds its share, then the open queries. Errors are kept for status, not thrown. */
  async step(): Promise<void> {
    try {
      if (this.member === undefined) await this.keyGeneration();
      if (this.member !== undefined) await this.queries();
      this.lastError = undefined;
    } catch (error) {
      this.lastError = error instanceof Error ? error.message.slice(0, 300) : 'unknown error';
    }
  }

  private async enrolled(): Promise<Consortium | undefined> {
    const row = (await this.db.query<{ consortium: string | null }>('SELECT consortium FROM stats_agent_keys WHERE hospital = $1', [this.code])).rows[0];
    return row?.consortium ? consortiumFromJson(JSON.parse(row.consortium)) : undefined;
  }

  private async adopt(consortium: Consortium): Promise<void> {
    await curve.initCurve();
    this.member = await StatsHospital.open(this.db, this.kek, this.code, consortium, this.options.allow ?? DEFAULT_ALLOW_LIST);
    for (const [querySet, epsilon] of this.options.budgets ?? []) {
      const current = await this.member.budget(querySet);
      if (current?.budget !== epsilon) await this.member.setBudget(querySet, epsilon);
    }
    this.client = new HospitalStatsClient(this.cloud(), this.member);
    this.stage = 'formed';
  }

  /** Checks every member key the board names against what that member's own service publishes (IntegrityError). */
  private async checkMembers(ceremony: Ceremony): Promise<void> {
    if (this.verifiedCeremony === ceremony.id) return;
    const peers = this.peers();
    for (const m of ceremony.members) {
      let keys: AgentKeys;
      if (m.code === this.code) keys = this.keys;
      else {
        const peer = peers.find((p) => p.name === m.code);
        if (peer === undefined) throw new IntegrityError(`the ceremony names ${m.code}, which this hospital's configuration does not list`);
        keys = await callJson<AgentKeys>(new URL(peer.url), 'GET', '/stats-agent/keys', { timeoutMs: 10_000 });
      }
      if (keys.verifyKey !== m.verifyKey || keys.boxKey !== m.boxKey)
        throw new IntegrityError(`the ceremony's keys for ${m.code} are not the ones ${m.code}'s own service publishes`);
    }
    this.verifiedCeremony = ceremony.id;
  }

  private async dealerSecret(ceremony: Ceremony, index: number): Promise<threshold.DealerSecret> {
    const c = `stats_agent_dealings/${this.code}/${ceremony.id}`;
    const select = () =>
      this.db.query<{ polynomials: Uint8Array }>('SELECT polynomials FROM stats_agent_dealings WHERE hospital = $1 AND ceremony_id = $2', [
        this.code,
        ceremony.id,
      ]);
    if ((await select()).rows.length === 0) {
      const { secret } = threshold.deal({ n: ceremony.members.length, t: ceremony.t }, index);
      const bytes = new Uint8Array([...secret.f, ...secret.blind].flatMap((x) => [...curve.frToBytes(x)]));
      await this.db.query('INSERT INTO stats_agent_dealings (hospital, ceremony_id, polynomials) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [
        this.code,
        ceremony.id,
        await this.kek.wrap(bytes, c),
      ]);
    }
    const bytes = await this.kek.unwrap(new Uint8Array((await select()).rows[0]!.polynomials), c);
    const scalars = Array.from({ length: 2 * ceremony.t }, (_, k) => curve.frFromBytes(bytes.subarray(k * curve.FR_BYTES, (k + 1) * curve.FR_BYTES)));
    return { dealer: index, f: scalars.slice(0, ceremony.t), blind: scalars.slice(ceremony.t) };
  }

  private async keyGeneration(): Promise<void> {
    const mine = await this.enrolled();
    if (mine !== undefined) return this.adopt(mine);
    await curve.initCurve();
    const state = await callJson<BoardState>(this.cloud(), 'GET', '/stats/dkg', { timeoutMs: 30_000 });
    const ceremony = parseCeremony(state.ceremony);
    const me = ceremony.members.find((m) => m.code === this.code);
    if (me === undefined) return;
    await this.checkMembers(ceremony);
    const params = { n: ceremony.members.length, t: ceremony.t };
    const board = decodeBoard(ceremony, state.messages);
    const done = completedPhase(board);
    this.stage = done ?? 'waiting';
    const secret = await this.dealerSecret(ceremony, me.index);
    const t = board.transcript;
    const received = new Map(
      ceremony.members.map((m) => [
        m.index,
        board.boxes.has(m.index)
          ? openShare(
              ceremony.id,
              createPrivateKey({ key: Buffer.from(this.boxKey), format: 'der', type: 'pkcs8' }),
              board.boxes.get(m.index)![String(me.index)],
              m.index,
              me.index,
            )
          : undefined,
      ]),
    );
    const qualified = () => threshold.qualify(params, t).qualified;
    const held = () => new Map(qualified().map((i) => [i, threshold.adoptedShare(t, received.get(i), i, me.index)!]));
    const next = DKG_PHASES.find((p) => !board.posted.get(me.index)!.has(p));
    if (next === undefined) {
      if (done === 'reconstruct') await this.finish(ceremony, me.index, params, t, held());
      return;
    }
    const before = DKG_PHASES.indexOf(next) - 1;
    if (before >= 0 && (done === undefined || DKG_PHASES.indexOf(done) < before)) return; // the others have not caught up
    const body = {
      deal: () => {
        const { commitments, shares } = threshold.dealingOf(params, secret);
        return bodies.deal(ceremony, commitments, shares);
      },
      complain: () => bodies.complain(threshold.complaintsOf(params, t.commitments, received, me.index)),
      answer: () => {
        const { shares } = threshold.dealingOf(params, secret);
        return bodies.answer(shares.filter((s) => (t.complaints.get(s.recipient) ?? []).includes(me.index)));
      },
      extract: () => bodies.extract(qualified().includes(me.index) ? threshold.feldmanCommitments(secret) : []),
      accuse: () => bodies.accuse(threshold.accusationsOf(params, qualified(), t, held())),
      reconstruct: () => {
        const mineHeld = held();
        return bodies.reconstruct([...threshold.accusedDealers(params, qualified(), t).keys()].map((i) => mineHeld.get(i)!));
      },
    }[next]();
    try {
      await callJson(this.cloud(), 'POST', '/stats/dkg/messages', {
        body: signMessage(this.signingKey, { ceremony: ceremony.id, phase: next, sender: this.code, body }),
        timeoutMs: 30_000,
      });
    } catch (error) {
      if (!(error instanceof MedShareError && error.code === 'CONFLICT')) throw error; // posted already (an answer was lost): read on next round
    }
  }

  /** The joint key and this hospital's share, from the transcript; checked against the cloud's, then kept. */
  private async finish(
    ceremony: Ceremony,
    index: number,
    params: threshold.ThresholdParameters,
    t: threshold.DkgTranscript,
    held: Map<number, threshold.DealtShare>,
  ): Promise<void> {
    const { publicKey, qualified } = threshold.dkgOutcome(params, t);
    const share = threshold.shareOf(publicKey, qualified, held, index);
    const consortium: Consortium = {
      publicKey,
      members: ceremony.members.map((m) => ({ code: m.code, index: m.index, verifyKey: new Uint8Array(Buffer.from(m.verifyKey, 'base64')) })),
    };
    const cloudSays = consortiumFromJson(await callJson<object>(this.cloud(), 'GET', '/stats/consortium', { timeoutMs: 10_000 }));
    if (threshold.keyFingerprint(cloudSays.publicKey) !== threshold.keyFingerprint(publicKey))
      throw new IntegrityError('the cloud announces another statistics key than the transcript gives');
    try {
      await StatsHospital.enrol(this.db, this.kek, this.code, consortium, { share, signingKey: this.signingKey });
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
    }
    await this.db.transaction(async (tx) => {
      await tx.query('UPDATE stats_agent_keys SET consortium = $2 WHERE hospital = $1', [this.code, JSON.stringify(consortiumToJson(consortium))]);
      // The polynomials are no longer needed; the share is all this hospital keeps of the key generation.
      await tx.query('DELETE FROM stats_agent_dealings WHERE hospital = $1', [this.code]);
    });
    await this.adopt(consortium);
  }

  private async approved(queryId: string): Promise<boolean> {
    if ((this.options.approve ?? 'auto') === 'auto') return true;
    return (await this.db.query('SELECT 1 FROM stats_agent_approvals WHERE hospital = $1 AND query_id = $2', [this.code, queryId])).rows.length > 0;
  }

  private async queries(): Promise<void> {
    const { queries } = await callJson<{ queries: QueryStatus[] }>(this.cloud(), 'GET', '/stats/queries', { timeoutMs: 30_000 });
    const members = this.member!.consortium.members.map((m) => m.code);
    for (const q of queries) {
      if (this.declined.has(q.queryId)) continue;
      try {
        if (!q.contributors.includes(this.code)) await this.client!.contribute(q.queryId, await this.options.data());
        else if (members.every((m) => q.contributors.includes(m)) && !q.partials.includes(this.code) && (await this.approved(q.queryId)))
          await this.client!.decrypt(q.queryId);
      } catch (error) {
        // Its own policy said no (allow-list, budget, a total it will not decrypt): not retried. Else: next round.
        if (error instanceof MedShareError && ['ACCESS_DENIED', 'LIMIT', 'CONFLICT', 'MALFORMED'].includes(error.code)) {
          this.declined.set(q.queryId, error.message.slice(0, 200));
        } else throw error;
      }
    }
  }
}
