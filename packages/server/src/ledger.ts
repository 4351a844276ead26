/**
 * The platform's audit ledger, split along its trust domains (docs/ledger.md §Trust model, docs/platform.md
 * §Deployment):
 *
 *   the cloud   keeps the log: its signing key wrapped by the cloud's KEK (never in plaintext in the database; a
 *               key an older version kept in `platform_keys` is adopted and its plaintext row deleted), the last
 *               checkpoint also in a file outside the database, and the public verification routes at /ledger/...
 *               It obtains every checkpoint's cosignatures from the hospitals' witnesses over HTTP
 *               (c2sp.org/tlog-witness), a majority of them the quorum, and, given an anchor client, anchors the
 *               witnessed checkpoints on chain with the witnesses' chain cosignatures.
 *   a hospital  runs its own witness, with its own keys (note and chain, wrapped by the hospital's KEK) and state in
 *               the hospital's own database, at /witness/<hospital>/add-checkpoint and /chain-cosignature, and
 *               publishes its public key and chain address at /witness/<hospital>/key. Its gateway checks upload
 *               receipts against the witnesses of its own configuration, its own always required (`receiptTrust`).
 *
 * Each side learns the other's public key once: from the deployment config when it names it, else over HTTP(S)
 * from the other service on first need, then pinned in its own database (`federation_pins`), so a later answer with
 * another key is refused rather than believed.
 */
import type { FastifyInstance } from 'fastify';
import { IntegrityError, UnavailableError } from '@medshare/crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import {
  AuditLog,
  chainAddressOf,
  CheckpointFile,
  cosignersOf,
  defaultQuorum,
  HttpChainCosigner,
  HttpCosigner,
  LedgerClient,
  ledgerRoutesPlugin,
  loadChainKey,
  loadNoteSigner,
  parseChainAddress,
  parseVerifierKey,
  verifyCheckpointNote,
  verifyInclusionBundle,
  Witness,
  witnessPlugin,
  type AnchorClient,
  type AnchorReceipt,
  type ChainCosigner,
  type CheckpointVerifier,
  type InclusionBundle,
  type Cosigner,
  type Fault,
  type TrustPolicy,
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
  return pinnedValue(db, name, fetch, (value) => void parseVerifierKey(value));
}

/**
 * A key of another hospital (`what`, for messages): as this service's configuration gives it, else as that hospital
 * itself (never the cloud) publishes it; pinned under `pin` on first sight.
 * @throws IntegrityError when it differs from the configured or pinned key, or is named other than `name`
 */
export async function pinnedPeerKey(
  db: Database,
  peer: { pin: string; name: string; what: string; configured?: string; published: () => Promise<string> },
): Promise<CheckpointVerifier> {
  const vkey = await pinnedKey(db, peer.pin, async () => peer.configured ?? (await peer.published()));
  if (peer.configured !== undefined && peer.configured !== vkey) throw new IntegrityError(`the configured ${peer.what} is not the one pinned`);
  const verifier = parseVerifierKey(vkey);
  if (verifier.name !== peer.name) throw new IntegrityError(`the ${peer.what} is named ${verifier.name}, not ${peer.name}`);
  return verifier;
}

/** A hospital's witness key (pinnedPeerKey). */
function pinnedWitnessKey(db: Database, peer: WitnessPeer): Promise<CheckpointVerifier> {
  return pinnedPeerKey(db, {
    pin: `witness/${peer.hospital}`,
    name: witnessKeyName(peer.hospital),
    what: `witness key of ${peer.hospital}`,
    ...(peer.key === undefined ? {} : { configured: peer.key }),
    published: async () => (await publishedWitness(peer)).key,
  });
}

/** A value another service published (checked by `check`, which throws), pinned as `pinnedKey` does. */
async function pinnedValue(db: Database, name: string, fetch: () => Promise<string>, check: (value: string) => void): Promise<string> {
  await migrate(db, 'federation', FEDERATION_MIGRATIONS);
  const stored = async () => (await db.query<{ value: string }>('SELECT value FROM federation_pins WHERE name = $1', [name])).rows[0]?.value;
  const pinned = await stored();
  if (pinned !== undefined) return pinned;
  const fetched = await fetch();
  check(fetched);
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
  /** The anchor contract the log's witnessed checkpoints are put on (its account key is the client's, never in the database). */
  anchor?: AnchorClient;
  /** AuditLog's `cosignRetryMs`: how soon a checkpoint below quorum is offered to the witnesses again. */
  cosignRetryMs?: number;
  /** AuditLog's `cosignIntervalMs`: under load, at most one cosigning round per this many milliseconds. */
  cosignIntervalMs?: number;
}

/** Anchoring the cloud's log on chain: `anchorNow` and its metrics. */
export interface LedgerAnchoring {
  /**
   * Anchors the latest witnessed checkpoint with the hospitals' witnesses' chain cosignatures (nothing new: the
   * receipt of the anchored one). Failures are counted. @throws as `AnchorClient.anchorLatest`.
   */
  anchorNow(): Promise<AnchorReceipt>;
  /** The largest tree size this process anchored (or found anchored), and the anchoring attempts that failed. */
  health(): { anchoredSize: number; anchorFailures: number };
}

/** The cloud's ledger: the log, the keys verifiers pin, and `register` to mount the public routes. */
export interface CloudLedger {
  readonly log: AuditLog;
  /** The keys a hospital pins to check receipts and bundles: the log's, the witnesses', a majority quorum. */
  readonly trust: TrustPolicy;
  /** Present when an anchor contract was configured. */
  readonly anchoring?: LedgerAnchoring;
  register(app: FastifyInstance): Promise<void>;
}

const under = (base: URL, path: string): URL => new URL(path, base.href.endsWith('/') ? base : new URL(`${base.href}/`));

/** The witness keys a hospital publishes (note key, chain address), waiting up to WITNESS_KEY_WAIT_MS for it to answer. */
async function publishedWitness(peer: WitnessPeer): Promise<{ key: string; chainAddress: string }> {
  const deadline = Date.now() + WITNESS_KEY_WAIT_MS;
  for (;;) {
    try {
      return await callJson<{ key: string; chainAddress: string }>(peer.url, 'GET', `/witness/${peer.hospital}/key`, { timeoutMs: 5_000 });
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
  const chainCosigners: ChainCosigner[] = [];
  for (const peer of options.witnesses) {
    const verifier = await pinnedWitnessKey(db, peer);
    cosigners.push(new HttpCosigner(under(peer.url, `witness/${peer.hospital}/`).href, verifier));
    if (options.anchor !== undefined) {
      const address = await pinnedValue(
        db,
        `chain/${peer.hospital}`,
        async () => (await publishedWitness(peer)).chainAddress,
        (value) => void parseChainAddress(value),
      );
      chainCosigners.push(new HttpChainCosigner(under(peer.url, `witness/${peer.hospital}/`).href, address));
    }
  }
  const sink: { log?: (fault: Fault) => void } = {};
  const alarms: Fault[] = [];
  // The full audit (every stored entry rehashed: ~80 s CPU at 10^6) runs in the background: open resolves once the
  // persisted tree matches the latest signed checkpoint and the one held outside the database, which is all a new
  // signature rests on (the tree, not the entry rows); an entry the audit then finds edited halts the log (alarm, 503 health).
  const log = await AuditLog.open(db, signer, {
    audit: 'background',
    lingerMs: options.lingerMs,
    cosigners,
    ...(options.cosignRetryMs === undefined ? {} : { cosignRetryMs: options.cosignRetryMs }),
    ...(options.cosignIntervalMs === undefined ? {} : { cosignIntervalMs: options.cosignIntervalMs }),
    ...(options.checkpointFile === undefined ? {} : { trusted: new CheckpointFile(options.checkpointFile) }),
    onAlarm: (fault) => (sink.log === undefined ? alarms.push(fault) : sink.log(fault)),
  });
  const witnessKeys = cosigners.map((c) => c.verifier);
  const anchor = options.anchor;
  return {
    log,
    trust: { log: signer.verifier, witnesses: witnessKeys, quorum: log.quorum },
    ...(anchor === undefined ? {} : { anchoring: anchoringOf(log, signer.verifier, anchor, chainCosigners) }),
    async register(app) {
      sink.log = (fault) => app.log.error({ ledgerAlarm: fault }, `audit ledger halted: entry ${fault.index}: ${fault.problem}`);
      for (const fault of alarms.splice(0)) sink.log(fault);
      await app.register(ledgerRoutesPlugin, { log, logKey: signer.verifier, witnessKeys, prefix: '/ledger' });
    },
  };
}

/** Anchoring of `log` through `anchor`, one attempt at a time (a call during one shares it). */
function anchoringOf(log: AuditLog, logKey: CheckpointVerifier, anchor: AnchorClient, cosigners: readonly ChainCosigner[]): LedgerAnchoring {
  let anchoredSize = 0;
  let anchorFailures = 0;
  let running: Promise<AnchorReceipt> | undefined;
  return {
    anchorNow() {
      running ??= anchor
        .anchorLatest(log, logKey, cosigners)
        .then(
          (receipt) => {
            anchoredSize = Math.max(anchoredSize, receipt.treeSize);
            return receipt;
          },
          (error: unknown) => {
            anchorFailures += 1;
            throw error;
          },
        )
        .finally(() => (running = undefined));
      return running;
    },
    health: () => ({ anchoredSize, anchorFailures }),
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
  /**
   * The federation's other hospitals' witnesses, from this hospital's own configuration (keys from the config, else
   * fetched from each hospital itself and pinned). Receipts are checked against these and the hospital's own
   * witness, never against the list the cloud publishes; without them, the cloud's list is used, but the hospital's
   * own witness's cosignature is still required.
   */
  peers?: () => readonly WitnessPeer[];
}

/** The keys a gateway checks its receipts against, and the witness whose cosignature every receipt must carry (its own). */
export interface ReceiptTrust extends TrustPolicy {
  readonly requiredWitness?: string;
}

/**
 * Checks an upload receipt (an inclusion bundle) against a gateway's receipt trust: the entry is in the tree of a
 * checkpoint the log signed (else IntegrityError: a bad bundle), and whether that checkpoint is witnessed — the
 * trust's quorum of its witnesses cosigned it, the required one among them. `shortOf` says what is missing when not.
 * @throws IntegrityError (MalformedInputError for a malformed bundle)
 */
export function checkReceipt(bundle: InclusionBundle, trust: ReceiptTrust): ReturnType<typeof verifyInclusionBundle> & { shortOf?: string } {
  const verified = verifyInclusionBundle(bundle, { ...trust, quorum: 0 });
  const quorum = trust.quorum ?? defaultQuorum(trust.witnesses?.length ?? 0);
  if (verified.cosigners.length < quorum)
    return { ...verified, shortOf: `the checkpoint has ${verified.cosigners.length} witness cosignatures, ${quorum} required` };
  if (trust.requiredWitness !== undefined && !verified.cosigners.includes(trust.requiredWitness)) {
    return { ...verified, shortOf: `the receipt of entry ${bundle.index} is not cosigned by ${trust.requiredWitness}` };
  }
  return verified;
}

/**
 * `checkReceipt`, requiring the checkpoint to be witnessed. Returns what `verifyInclusionBundle` does.
 * @throws IntegrityError (MalformedInputError for a malformed bundle)
 */
export function verifyReceipt(bundle: InclusionBundle, trust: ReceiptTrust): ReturnType<typeof verifyInclusionBundle> {
  const { shortOf, ...verified } = checkReceipt(bundle, trust);
  if (shortOf !== undefined) throw new IntegrityError(shortOf);
  return verified;
}

/** What a hospital's administrator is shown of its witness (GET /gateway/admin/receipts). */
export interface WitnessState {
  /** Its key name and verifier key. */
  readonly name: string;
  readonly key: string;
  /** The size of the last checkpoint it cosigned (0: none yet). */
  readonly lastCosignedSize: number;
  /** The size of the cloud's latest witnessed checkpoint (absent when the cloud did not answer with a valid one). */
  readonly ledgerSize?: number;
  /**
   * Whether the log reaches it: the cloud's latest witnessed checkpoint carries its valid cosignature. False when
   * the cloud cosigned without it (it did not answer the log, or refused) or could not be asked (`problem` says why).
   */
  readonly reachable: boolean;
  readonly problem?: string;
}

/** A hospital's witness: its public key, the ledger keys it checks receipts with, and `register` to mount its routes. */
export interface HospitalWitness {
  readonly verifier: CheckpointVerifier;
  /**
   * The ledger keys the hospital's gateway checks receipts against: the log key pinned, the witnesses this hospital
   * knows by its own configuration (`peers`) and its own, a majority of them, its own always required.
   * @throws IntegrityError when the cloud names another log key or does not count this hospital's witness
   */
  receiptTrust(): Promise<ReceiptTrust>;
  /** Its state, and whether the cloud's latest witnessed checkpoint carries its cosignature; never throws. */
  state(): Promise<WitnessState>;
  register(app: FastifyInstance): Promise<void>;
}

/** Opens a hospital's witness on its own database; the log's key is learnt from the cloud on first need and pinned. */
export async function openHospitalWitness(db: Database, options: HospitalWitnessOptions): Promise<HospitalWitness> {
  const key = await loadNoteSigner(db, { name: witnessKeyName(options.hospital), kek: options.kek, type: 'cosignature' });
  // Its signatures count towards the anchor contract's quorum, only for checkpoints this witness cosigned.
  const chainKey = await loadChainKey(db, { name: `${options.hospital}.medshare/chain`, kek: options.kek });
  const ledgerKeys = () => callJson<{ log: string; witnesses: string[]; quorum: number }>(options.cloudUrl(), 'GET', '/ledger/keys', { timeoutMs: 10_000 });
  const logKey = async () => {
    const vkey = await pinnedKey(db, 'ledger/log', async () => options.logKey ?? (await ledgerKeys()).log);
    if (options.logKey !== undefined && options.logKey !== vkey) throw new IntegrityError('the configured log key is not the one pinned');
    return parseVerifierKey(vkey);
  };
  let witness: Promise<Witness> | undefined;
  const opened = () => {
    witness ??= logKey()
      .then((log) => Witness.open(db, key, log, { chainKey }))
      .catch((error: unknown) => {
        witness = undefined;
        throw error;
      });
    return witness;
  };
  const trust = async (): Promise<ReceiptTrust> => {
    const log = await logKey();
    const listed = await ledgerKeys();
    if (listed.log !== log.vkey) throw new IntegrityError('the cloud now names another log key than the one pinned');
    if (!listed.witnesses.includes(key.verifier.vkey)) throw new IntegrityError(`the cloud's ledger does not count ${options.hospital}'s witness`);
    const peers = options.peers?.().filter((peer) => peer.hospital !== options.hospital);
    const witnesses =
      peers === undefined ? listed.witnesses.map(parseVerifierKey) : [key.verifier, ...(await Promise.all(peers.map((peer) => pinnedWitnessKey(db, peer))))];
    // A cloud cannot lower the bar: at least a majority of the witnesses, whatever quorum it names; and a receipt the
    // hospital's own witness did not cosign is refused, so witnesses the cloud made up cannot vouch for one.
    const quorum = peers === undefined ? Math.max(listed.quorum, defaultQuorum(witnesses.length)) : defaultQuorum(witnesses.length);
    return { log, witnesses, quorum, requiredWitness: key.verifier.name };
  };
  // Learnt once per process (a failure is retried at the next upload).
  let receiptTrust: Promise<ReceiptTrust> | undefined;
  return {
    verifier: key.verifier,
    receiptTrust() {
      receiptTrust ??= trust().catch((error: unknown) => {
        receiptTrust = undefined;
        throw error;
      });
      return receiptTrust;
    },
    async state() {
      const own = { name: key.verifier.name, key: key.verifier.vkey };
      const failed = (what: string, error: unknown) => `${what}: ${error instanceof Error ? error.message : String(error)}`;
      let cosigned;
      try {
        cosigned = { lastCosignedSize: (await (await opened()).latest())?.size ?? 0 };
      } catch (error) {
        return { ...own, lastCosignedSize: 0, reachable: false, problem: failed('its state could not be read', error) };
      }
      try {
        const base = options.cloudUrl();
        const note = await new LedgerClient(new URL('ledger', base.href.endsWith('/') ? base : `${base.href}/`).href).checkpoint();
        const checkpoint = verifyCheckpointNote(note, await logKey());
        return { ...own, ...cosigned, ledgerSize: checkpoint.size, reachable: cosignersOf(note, [key.verifier]).length === 1 };
      } catch (error) {
        return { ...own, ...cosigned, reachable: false, problem: failed("the cloud's latest checkpoint", error) };
      }
    },
    async register(app) {
      const prefix = `/witness/${options.hospital}`;
      app.get(`${prefix}/key`, { schema: { hide: true } }, async () => ({ key: key.verifier.vkey, chainAddress: chainAddressOf(chainKey) }));
      await app.register(witnessPlugin, {
        witnesses: [
          {
            origin: LEDGER_KEY_NAME,
            addCheckpoint: async (request) => (await opened()).addCheckpoint(request),
            chainCosign: async (note) => (await opened()).chainCosign(note),
          },
        ],
        prefix,
      });
    },
  };
}
