/**
 * The trusted authority's persistent CP-ABE setup (FAME, docs/crypto.md): made once, kept in the TA's own
 * tables (`ta_setup`), reloaded on restart. Deployments that separate services give the TA its own database.
 * The master key is stored wrapped by the key-encryption key (@medshare/db), which never enters the database:
 * a copy of the database yields no master key.
 */
import { abe } from '@medshare/crypto';
import { migrate, type Database, type KeyEncryptionKey } from '@medshare/db';
import { AUTHORITY_MIGRATIONS } from './migrations.ts';

const MASTER_KEY_CONTEXT = 'ta_setup.master_key|1';

/**
 * Loads the TA's setup, creating it on first start (first writer wins across processes).
 * @throws IntegrityError when the stored master key was wrapped by another KEK or altered.
 */
export async function loadAuthoritySetup(db: Database, kek: KeyEncryptionKey): Promise<{ publicKey: abe.PublicKey; masterKey: abe.MasterKey }> {
  await migrate(db, 'authority', AUTHORITY_MIGRATIONS);
  const fresh = abe.setup();
  await db.query('INSERT INTO ta_setup (id, public_key, master_key) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING', [
    abe.encodePublicKey(fresh.publicKey),
    await kek.wrap(abe.encodeMasterKey(fresh.masterKey), MASTER_KEY_CONTEXT),
  ]);
  const row = (await db.query<{ public_key: Uint8Array; master_key: Uint8Array }>('SELECT public_key, master_key FROM ta_setup WHERE id = 1')).rows[0]!;
  return { publicKey: abe.decodePublicKey(row.public_key), masterKey: abe.decodeMasterKey(await kek.unwrap(row.master_key, MASTER_KEY_CONTEXT)) };
}
