/**
 * The platform's audit ledger, composed (docs/ledger.md §Trust model): the log's signing key wrapped by the
 * service's KEK (never in plaintext in the database; a key an older version kept in `platform_keys` is adopted
 * and its plaintext row deleted), the last checkpoint also kept in a file outside the database, one witness per
 * hospital with its own key (c2sp.org/tlog-witness over HTTP at /witness/<hospital>/add-checkpoint) cosigning
 * every checkpoint, a majority of them the quorum, and the public verification routes at /ledger/...
 */
import type { FastifyInstance } from 'fastify';
import type { Database, KeyEncryptionKey } from '@medshare/db';
import {
  AuditLog, CheckpointFile, ledgerRoutesPlugin, loadNoteSigner, Witness, witnessPlugin, type Cosigner, type Fault, type TrustPolicy,
} from '@medshare/ledger';

/** The log's key name, which is its origin. */
export const LEDGER_KEY_NAME = 'medshare.cloud/audit';
/** The witness key name of a hospital. */
export const witnessKeyName = (hospital: string): string => `${hospital}.medshare/witness`;

/** How the platform's ledger is set up. */
export interface PlatformLedgerOptions {
  kek: KeyEncryptionKey;
  hospitals: readonly string[];
  /** The file outside the database holding the last signed checkpoint (none: only the witnesses' state). */
  checkpointFile?: string;
  lingerMs: number;
}

/** The composed ledger: the log, the hospitals' witnesses, and `register` to mount the routes. */
export interface PlatformLedger {
  readonly log: AuditLog;
  readonly witnesses: readonly Witness[];
  /** The keys a hospital pins to check receipts and bundles: the log's, the witnesses', a majority quorum. */
  readonly trust: TrustPolicy;
  register(app: FastifyInstance): Promise<void>;
}

/** Opens the log and the hospitals' witnesses on `db`. */
export async function openPlatformLedger(db: Database, options: PlatformLedgerOptions): Promise<PlatformLedger> {
  const legacy = async () => {
    const exists = (await db.query<{ t: string | null }>("SELECT to_regclass('platform_keys')::text AS t")).rows[0]?.t;
    if (!exists) return undefined;
    return (await db.query<{ secret: string }>('SELECT secret FROM platform_keys WHERE name = $1', [LEDGER_KEY_NAME])).rows[0]?.secret;
  };
  const signer = await loadNoteSigner(db, { name: LEDGER_KEY_NAME, kek: options.kek, legacy });
  // Once wrapped, the plaintext copy goes.
  if ((await legacy()) !== undefined) await db.query('DELETE FROM platform_keys WHERE name = $1', [LEDGER_KEY_NAME]);
  const witnesses: Witness[] = [];
  for (const hospital of options.hospitals) {
    const key = await loadNoteSigner(db, { name: witnessKeyName(hospital), kek: options.kek, type: 'cosignature' });
    witnesses.push(await Witness.open(db, key, signer.verifier));
  }
  const sink: { log?: (fault: Fault) => void } = {};
  const alarms: Fault[] = [];
  const log = await AuditLog.open(db, signer, {
    lingerMs: options.lingerMs,
    cosigners: witnesses satisfies readonly Cosigner[],
    ...(options.checkpointFile === undefined ? {} : { trusted: new CheckpointFile(options.checkpointFile) }),
    onAlarm: (fault) => (sink.log === undefined ? alarms.push(fault) : sink.log(fault)),
  });
  return {
    log,
    witnesses,
    trust: { log: signer.verifier, witnesses: witnesses.map((w) => w.verifier), quorum: log.quorum },
    async register(app) {
      sink.log = (fault) => app.log.error({ ledgerAlarm: fault }, `audit ledger halted: entry ${fault.index}: ${fault.problem}`);
      for (const fault of alarms.splice(0)) sink.log(fault);
      await app.register(ledgerRoutesPlugin, { log, logKey: signer.verifier, witnessKeys: witnesses.map((w) => w.verifier), prefix: '/ledger' });
      for (const [i, hospital] of options.hospitals.entries()) {
        await app.register(witnessPlugin, { witnesses: [witnesses[i]!], prefix: `/witness/${hospital}` });
      }
    },
  };
}
