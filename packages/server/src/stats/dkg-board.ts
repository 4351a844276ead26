/**
 * The cloud's side of the networked key generation: a bulletin board. It opens one ceremony among the hospitals of
 * its trust list (their agents' public keys fetched from each hospital's own service), accepts each member's signed
 * message of each phase once — a phase only after every member posted the one before (GJKR's synchronous rounds) —
 * and serves them back. When every member has posted the last phase it computes the joint public key from the
 * public transcript (crypto's dkgOutcome, what each agent computes too) and the statistics service adopts it.
 *
 * It holds no share: the private shares on the board are sealed to their recipients (dkg-wire.ts), and what is
 * published in clear (complaint answers, reconstruction pairs) is only ever a cheating dealer's or enough to rebuild
 * a cheating dealer's polynomial, never an honest member's share of the joint key.
 *
 * A member that posts nothing stalls the ceremony: the rounds are synchronous, and there is no timeout that would
 * disqualify it (docs/crypto.md § 11 says so).
 */
import { randomBytes } from 'node:crypto';
import { ConflictError, MalformedInputError, NotFoundError, threshold, UnavailableError } from '@medshare/crypto';
import { migrate, type Database } from '@medshare/db';
import { callJson } from '../http-client.ts';
import type { HospitalPeer } from '../services/trust.ts';
import { consortiumFromJson, consortiumToJson, type Consortium } from './consortium.ts';
import {
  completedPhase,
  decodeBoard,
  decodeBody,
  DKG_PHASES,
  parseCeremony,
  publicKeyOf,
  verifyMessage,
  type AgentKeys,
  type Ceremony,
  type DkgMessage,
} from './dkg-wire.ts';
import { STATS_CLOUD_MIGRATIONS } from './migrations.ts';

/** What GET /stats/dkg answers: the ceremony, every message so far, and the outcome once there is one. */
export interface BoardState {
  ceremony: Ceremony;
  messages: DkgMessage[];
  consortium?: object;
  failure?: string;
}

export interface DkgBoardOptions {
  /** How many members decrypt. */
  readonly t: number;
  /** The members: the hospitals of the cloud's trust list, in order. */
  readonly members: () => readonly HospitalPeer[];
  /** Called once with the consortium the ceremony formed (also on open, if it was formed before). */
  readonly formed: (consortium: Consortium) => void;
}

const SLOT = 'current';

/** Fetches a hospital agent's public keys from its own service. */
async function agentKeys(peer: HospitalPeer): Promise<AgentKeys> {
  try {
    const keys = await callJson<AgentKeys>(new URL(peer.url), 'GET', '/stats-agent/keys', { timeoutMs: 10_000 });
    if (keys.hospital !== peer.name) throw new MalformedInputError(`${peer.name}'s service names itself ${String(keys.hospital).slice(0, 64)}`);
    publicKeyOf(keys.verifyKey, 'ed25519');
    publicKeyOf(keys.boxKey, 'x25519');
    return keys;
  } catch (error) {
    if (error instanceof MalformedInputError) throw error;
    throw new UnavailableError(`waiting for ${peer.name}'s statistics agent: ${(error as Error).message}`);
  }
}

export class StatsDkgBoard {
  private constructor(
    private readonly db: Database,
    private readonly options: DkgBoardOptions,
  ) {}

  static async open(db: Database, options: DkgBoardOptions): Promise<StatsDkgBoard> {
    await migrate(db, 'stats-cloud', STATS_CLOUD_MIGRATIONS);
    const board = new StatsDkgBoard(db, options);
    const formed = await board.formed();
    if (formed.consortium !== undefined) options.formed(consortiumFromJson(formed.consortium));
    return board;
  }

  private async formed(): Promise<{ consortium?: object; failure?: string }> {
    const row = (
      await this.db.query<{ consortium: string | null; failure: string | null }>('SELECT consortium, failure FROM stats_consortium WHERE slot = $1', [SLOT])
    ).rows[0];
    if (row === undefined) return {};
    return row.consortium !== null ? { consortium: JSON.parse(row.consortium) as object } : { failure: row.failure! };
  }

  /** The ceremony, opened now if there is none (UnavailableError while a member's agent does not answer). */
  async ceremony(): Promise<Ceremony> {
    const row = (await this.db.query<{ ceremony: string }>('SELECT ceremony FROM stats_dkg_ceremonies WHERE slot = $1', [SLOT])).rows[0];
    if (row !== undefined) return parseCeremony(JSON.parse(row.ceremony));
    const peers = this.options.members();
    if (peers.length < this.options.t)
      throw new UnavailableError(`a statistics key needs at least ${this.options.t} hospitals; the trust list has ${peers.length}`, 60);
    const keys = [];
    for (const peer of peers) keys.push(await agentKeys(peer));
    const ceremony: Ceremony = {
      id: randomBytes(16).toString('base64url'),
      t: this.options.t,
      members: keys.map((k, i) => ({ code: k.hospital, index: i + 1, verifyKey: k.verifyKey, boxKey: k.boxKey })),
    };
    await this.db.query('INSERT INTO stats_dkg_ceremonies (slot, ceremony) VALUES ($1, $2) ON CONFLICT (slot) DO NOTHING', [SLOT, JSON.stringify(ceremony)]);
    return this.ceremony();
  }

  private async stored(ceremonyId: string): Promise<DkgMessage[]> {
    const rows = await this.db.query<{ message: string }>('SELECT message FROM stats_dkg_messages WHERE ceremony_id = $1 ORDER BY seq', [ceremonyId]);
    return rows.rows.map((r) => JSON.parse(r.message) as DkgMessage);
  }

  /** The board as every participant reads it. */
  async state(): Promise<BoardState> {
    const ceremony = await this.ceremony();
    return { ceremony, messages: await this.stored(ceremony.id), ...(await this.formed()) };
  }

  /**
   * Accepts one member's message: signed by it for this ceremony, well formed for its phase, the previous phase
   * complete. Throws MalformedInputError (not a member, bad signature or body), ConflictError (posted already, or
   * out of turn), NotFoundError (another ceremony).
   */
  async post(message: DkgMessage): Promise<void> {
    const ceremony = await this.ceremony();
    if (message.ceremony !== ceremony.id) throw new NotFoundError('no such key-generation ceremony');
    const member = ceremony.members.find((m) => m.code === message.sender);
    if (member === undefined) throw new MalformedInputError(`'${String(message.sender).slice(0, 64)}' is not a member of this ceremony`);
    if (!DKG_PHASES.includes(message.phase)) throw new MalformedInputError('not a key-generation phase');
    if (!verifyMessage(member, message)) throw new MalformedInputError(`the ${message.phase} message is not signed by ${member.code}`);
    decodeBody(ceremony, message.phase, member.index, message.body);
    const before = DKG_PHASES.indexOf(message.phase) - 1;
    const board = decodeBoard(ceremony, await this.stored(ceremony.id));
    const done = completedPhase(board);
    if (before >= 0 && (done === undefined || DKG_PHASES.indexOf(done) < before))
      throw new ConflictError(`phase ${message.phase} opens once every member has posted ${DKG_PHASES[before]}`);
    const inserted = await this.db.query(
      'INSERT INTO stats_dkg_messages (ceremony_id, phase, sender, message) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING sender',
      [
        ceremony.id,
        message.phase,
        member.code,
        JSON.stringify({ ceremony: message.ceremony, phase: message.phase, sender: message.sender, body: message.body, signature: message.signature }),
      ],
    );
    if (inserted.rows.length === 0) throw new ConflictError(`${member.code} already posted its ${message.phase} message`);
    if (message.phase === 'reconstruct') await this.conclude(ceremony);
  }

  /** Once every member posted the last phase: the joint key from the transcript, adopted by the statistics service. */
  private async conclude(ceremony: Ceremony): Promise<void> {
    const board = decodeBoard(ceremony, await this.stored(ceremony.id));
    if (completedPhase(board) !== 'reconstruct') return;
    let consortium: Consortium | undefined;
    let failure: string | undefined;
    try {
      const { publicKey } = threshold.dkgOutcome({ n: ceremony.members.length, t: ceremony.t }, board.transcript);
      consortium = {
        publicKey,
        members: ceremony.members.map((m) => ({ code: m.code, index: m.index, verifyKey: new Uint8Array(Buffer.from(m.verifyKey, 'base64')) })),
      };
    } catch (error) {
      failure = (error as Error).message;
    }
    await this.db.query('INSERT INTO stats_consortium (slot, consortium, failure) VALUES ($1, $2, $3) ON CONFLICT (slot) DO NOTHING', [
      SLOT,
      consortium === undefined ? null : JSON.stringify(consortiumToJson(consortium)),
      failure ?? null,
    ]);
    const formed = await this.formed();
    if (formed.consortium !== undefined) this.options.formed(consortiumFromJson(formed.consortium));
  }
}
