/**
 * The platform's audit ledger, split along its trust domains (docs/ledger.md §Trust model, docs/platform.md
 * §Deployment):
 *
 *   the cloud   keeps the log: its signing key wrapped by the cloud's KEK (never in plaintext in the database; a
 *               key an older version kept in `platform_keys` is adopted and its plaintext row deleted), the last
 *               checkpoint also in a file outside the database, and the public verification routes at /ledger/...
 *               It obtains every checkpoint's cosignatures from the hospitals' witnesses over HTTP
 *               (c2sp.org/tlog-witness), a majority of them the quorum.
 *   a hospital  runs its own witness, with its own key (wrapped by the hospital's KEK) and state in the hospital's
 *               own database, at /witness/<hospital>/add-checkpoint, and publishes its public key at
 *               /witness/<hospital>/key.
 *
 * Each side learns the other's public key once: from the deployment config when it names it, else over HTTP(S)
 * from the other service on first need, then pinned in its own database (`federation_pins`), so a later answer with
 * another key is refused rather than believed.
 */
import type { FastifyInstance } from 'fastify';
import { IntegrityError, UnavailableError } from '@medshare/crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import {
  AuditLog, CheckpointFile, defaultQuorum, HttpCosigner, ledgerRoutesPlugin, loadNoteSigner, parseVerifierKey, Witness, witnessPlugin,
  type CheckpointVerifier, type Cosigner, type Fault, type TrustPolicy,
} from '@medshare/ledger';
import { callJson } from './http-client.ts';
import { FEDERATION_MIGRATIONS } from './migrations.ts';

/** The log's key name, which is its origin. */
export const LEDGER_KEY_NAME = 'medshare.cloud/audit';
/** The witness key name of a hospital. */
export const witnessKeyName = (hospital: string): string => `${hospital}.medshare/witness`;
/** Milliseconds a cloud waits at start for a hospital to publish its witness key (the hospital may be starting too). */
const WITNESS_KEY_WAIT_MS = 30_000;

/**
 * A public key another service published, pinned in this service's database on first sight: later calls return the
 * pinned one, and `fetch` answering another key is an IntegrityError (a swapped key is refused, not adopted).
 */
export async function pinnedKey(db: Database, name: string, fetch: () => Promise<string>): Promise<string> {
  await migrate(db, 'federation', FEDERATION_MIGRATIONS);
  const stored = async () => (await db.query<{ value: string }>('SELECT value FROM federation_pins WHERE name = $1', [name])).rows[0]?.value;
  const pinned = await stored();
  if (pinned !== undefined) return pinned;
  const fetched = await fetch();
  parseVerifierKey(fetched);
  await db.query('INSERT INTO federation_pins (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, fetched]);
  const kept = (await stored())!;
  if (kept !== fetched) throw new IntegrityError(`${name}: another key was pinned meanwhile`);
  return kept;
}

/** A hospital's witness as the cloud's log reaches it. */
export interface WitnessPeer {
  readonly hospital: string;
  /** Base URL of the hospital's service (the witness is at /witness/<hospital>/). */
  readonly url: URL;
  /** Its verifier key when the config pins it (else fetched from the hospital and pinned). */
  readonly key?: string;
}

/** How the cloud's ledger is set up. */
export interface CloudLedgerOptions {
  kek: KeyEncryptionKey;
  witnesses: readonly WitnessPeer[];
  /** The file outside the database holding the last signed checkpoint (none: only the witnesses' state). */
  checkpointFile?: string;
  lingerMs: number;
}

/** The cloud's ledger: the log, the keys verifiers pin, and `register` to mount the public routes. */
export interface CloudLedger {
  readonly log: AuditLog;
  /** The keys a hospital pins to check receipts and bundles: the log's, the witnesses', a majority quorum. */
  readonly trust: TrustPolicy;
  register(app: FastifyInstance): Promise<void>;
}

const under = (base: URL, path: string): URL => new URL(path, base.href.endsWith('/') ? base : new URL(`${base.href}/`));

/** The witness key a hospital publishes, waiting up to WITNESS_KEY_WAIT_MS for it to answer. */
async function publishedWitnessKey(peer: WitnessPeer): Promise<string> {
  const deadline = Date.now() + WITNESS_KEY_WAIT_MS;
  for (;;) {
    try {
      return (await callJson<{ key: string }>(peer.url, 'GET', `/witness/${peer.hospital}/key`, { timeoutMs: 5_000 })).key;
    } catch (error) {
      if (!(error instanceof UnavailableError) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** Opens the cloud's log on `db`, its cosigners the hospitals' witnesses over HTTP. */
export async function openCloudLedger(db: Database, options: CloudLedgerOptions): Promise<CloudLedger> {
  const legacy = async () => {
    const exists = (await db.query<{ t: string | null }>("SELECT to_regclass('platform_keys')::text AS t")).rows[0]?.t;
    if (!exists) return undefined;
    return (await db.query<{ secret: string }>('SELECT secret FROM platform_keys WHERE name = $1', [LEDGER_KEY_NAME])).rows[0]?.secret;
  };
  const signer = await loadNoteSigner(db, { name: LEDGER_KEY_NAME, kek: options.kek, legacy });
  // Once wrapped, the plaintext copy goes.
  if ((await legacy()) !== undefined) await db.query('DELETE FROM platform_keys WHERE name = $1', [LEDGER_KEY_NAME]);
  const cosigners: Cosigner[] = [];
  for (const peer of options.witnesses) {
    const name = witnessKeyName(peer.hospital);
    const vkey = await pinnedKey(db, `witness/${peer.hospital}`, async () => peer.key ?? (await publishedWitnessKey(peer)));
    if (peer.key !== undefined && peer.key !== vkey) throw new IntegrityError(`the configured witness key of ${peer.hospital} is not the one pinned`);
    const verifier = parseVerifierKey(vkey);
    if (verifier.name !== name) throw new IntegrityError(`the witness key of ${peer.hospital} is named ${verifier.name}, not ${name}`);
    cosigners.push(new HttpCosigner(under(peer.url, `witness/${peer.hospital}/`).href, verifier));
  }
  const sink: { log?: (fault: Fault) => void } = {};
  const alarms: Fault[] = [];
  const log = await AuditLog.open(db, signer, {
    lingerMs: options.lingerMs,
    cosigners,
    ...(options.checkpointFile === undefined ? {} : { trusted: new CheckpointFile(options.checkpointFile) }),
    onAlarm: (fault) => (sink.log === undefined ? alarms.push(fault) : sink.log(fault)),
  });
  const witnessKeys = cosigners.map((c) => c.verifier);
  return {
    log,
    trust: { log: signer.verifier, witnesses: witnessKeys, quorum: log.quorum },
    async register(app) {
      sink.log = (fault) => app.log.error({ ledgerAlarm: fault }, `audit ledger halted: entry ${fault.index}: ${fault.problem}`);
      for (const fault of alarms.splice(0)) sink.log(fault);
      await app.register(ledgerRoutesPlugin, { log, logKey: signer.verifier, witnessKeys, prefix: '/ledger' });
    },
  };
}

/** How a hospital's witness is set up. */
export interface HospitalWitnessOptions {
  kek: KeyEncryptionKey;
  hospital: string;
  /** The cloud (its /ledger/keys names the log key), unless `logKey` pins it. */
  cloudUrl: () => URL;
  /** The log's verifier key, when the config pins it. */
  logKey?: string;
}

/** A hospital's witness: its public key, the ledger keys it checks receipts with, and `register` to mount its routes. */
export interface HospitalWitness {
  readonly verifier: CheckpointVerifier;
  /** The ledger keys the hospital's gateway checks receipts against (the log key pinned; witnesses as the cloud lists them, its own among them). */
  receiptTrust(): Promise<TrustPolicy>;
  register(app: FastifyInstance): Promise<void>;
}

/** Opens a hospital's witness on its own database; the log's key is learnt from the cloud on first need and pinned. */
export async function openHospitalWitness(db: Database, options: HospitalWitnessOptions): Promise<HospitalWitness> {
  const key = await loadNoteSigner(db, { name: witnessKeyName(options.hospital), kek: options.kek, type: 'cosignature' });
  const ledgerKeys = () => callJson<{ log: string; witnesses: string[]; quorum: number }>(options.cloudUrl(), 'GET', '/ledger/keys', { timeoutMs: 10_000 });
  const logKey = async () => {
    const vkey = await pinnedKey(db, 'ledger/log', async () => options.logKey ?? (await ledgerKeys()).log);
    if (options.logKey !== undefined && options.logKey !== vkey) throw new IntegrityError('the configured log key is not the one pinned');
    return parseVerifierKey(vkey);
  };
  let witness: Promise<Witness> | undefined;
  const opened = () => {
    witness ??= logKey().then((log) => Witness.open(db, key, log)).catch((error: unknown) => {
      witness = undefined;
      throw error;
    });
    return witness;
  };
  const trust = async (): Promise<TrustPolicy> => {
    const log = await logKey();
    const listed = await ledgerKeys();
    if (listed.log !== log.vkey) throw new IntegrityError('the cloud now names another log key than the one pinned');
    if (!listed.witnesses.includes(key.verifier.vkey)) throw new IntegrityError(`the cloud's ledger does not count ${options.hospital}'s witness`);
    // A cloud cannot lower the bar: at least a majority of the witnesses it lists, whatever quorum it names.
    return { log, witnesses: listed.witnesses.map(parseVerifierKey), quorum: Math.max(listed.quorum, defaultQuorum(listed.witnesses.length)) };
  };
  // Learnt once per process (a failure is retried at the next upload).
  let receiptTrust: Promise<TrustPolicy> | undefined;
  return {
    verifier: key.verifier,
    receiptTrust() {
      receiptTrust ??= trust().catch((error: unknown) => {
        receiptTrust = undefined;
        throw error;
      });
      return receiptTrust;
    },
    async register(app) {
      const prefix = `/witness/${options.hospital}`;
      app.get(`${prefix}/key`, { schema: { hide: true } }, async () => ({ key: key.verifier.vkey }));
      await app.register(witnessPlugin, {
        witnesses: [{ origin: LEDGER_KEY_NAME, addCheckpoint: async (request) => (await opened()).addCheckpoint(request) }],
        prefix,
      });
    },
  };
}
