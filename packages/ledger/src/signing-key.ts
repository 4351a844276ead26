/**
 * Log and witness signing keys at rest: in the `ledger_keys` table only as wrapped by the service's key-encryption key
 * (@medshare/db `KeyEncryptionKey`, a 0600 file or MEDSHARE_KEK, never in the database), bound to the row it is
 * stored in. A copy of the database therefore cannot sign checkpoints, and a key swapped into the row by someone
 * without the KEK does not unwrap.
 */
import { randomBytes } from 'node:crypto';
import { SigningKey } from 'ethers';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import { generateCheckpointKey, parseSignerKey, type CheckpointKeyType, type CheckpointSigner } from './keys.ts';
import { LEDGER_MIGRATIONS } from './schema.ts';

/** How `loadNoteSigner` finds or makes the key. */
export interface NoteSignerOptions {
  /** The key's name, which is the log's origin. */
  name: string;
  kek: KeyEncryptionKey;
  /** Type of a new key (default 'ed25519', which stock note verifiers read). */
  type?: CheckpointKeyType;
  /** A plaintext key kept by an older version elsewhere, adopted (wrapped) on first use instead of a fresh key. */
  legacy?: () => Promise<string | undefined>;
}

const context = (name: string): string => `ledger_keys/wrapped/${name}`;

/**
 * A log's or a witness's signer, created and stored wrapped on first use.
 * @throws IntegrityError when the stored key was wrapped by another KEK, for another row, or altered.
 */
export async function loadNoteSigner(db: Database, options: NoteSignerOptions): Promise<CheckpointSigner> {
  const skey = await loadWrappedSecret(
    db,
    options.name,
    options.kek,
    async () => (await options.legacy?.()) ?? generateCheckpointKey(options.name, options.type ?? 'ed25519').skey,
  );
  return parseSignerKey(skey);
}

/**
 * A witness's secp256k1 chain key (the anchor contract counts its signatures, chain-cosign.ts), created and stored
 * wrapped on first use under `name`, as `loadNoteSigner` does. @throws IntegrityError as `loadNoteSigner`.
 */
export async function loadChainKey(db: Database, options: { name: string; kek: KeyEncryptionKey }): Promise<SigningKey> {
  return new SigningKey(await loadWrappedSecret(db, options.name, options.kek, async () => `0x${randomBytes(32).toString('hex')}`));
}

/** The secret stored wrapped under `name` in ledger_keys, made by `create` and stored on first use. */
async function loadWrappedSecret(db: Database, name: string, kek: KeyEncryptionKey, create: () => Promise<string>): Promise<string> {
  await migrate(db, 'ledger', LEDGER_MIGRATIONS);
  const select = async () => (await db.query<{ wrapped: Uint8Array }>('SELECT wrapped FROM ledger_keys WHERE name = $1', [name])).rows[0]?.wrapped;
  let wrapped = await select();
  if (wrapped === undefined) {
    const fresh = await kek.wrap(Buffer.from(await create(), 'utf8'), context(name));
    await db.query('INSERT INTO ledger_keys (name, wrapped) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, fresh]);
    wrapped = (await select())!;
  }
  return Buffer.from(await kek.unwrap(wrapped, context(name))).toString('utf8');
}
