/**
 * The trusted authority's persistent CP-ABE setup (FAME, docs/crypto.md): made once, kept in the TA's own
 * tables (`ta_setup`), reloaded on restart. Deployments that separate services give the TA its own database.
 */
import { abe } from '@medshare/crypto';
import { migrate, type Database } from '@medshare/db';
import { AUTHORITY_MIGRATIONS } from './migrations.ts';

/** Loads the TA's setup, creating it on first start (first writer wins across processes). */
export async function loadAuthoritySetup(db: Database): Promise<{ publicKey: abe.PublicKey; masterKey: abe.MasterKey }> {
  await migrate(db, 'authority', AUTHORITY_MIGRATIONS);
  const fresh = abe.setup();
  await db.query('INSERT INTO ta_setup (id, public_key, master_key) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING', [
    abe.encodePublicKey(fresh.publicKey),
    abe.encodeMasterKey(fresh.masterKey),
  ]);
  const row = (await db.query<{ public_key: Uint8Array; master_key: Uint8Array }>('SELECT public_key, master_key FROM ta_setup WHERE id = 1')).rows[0]!;
  return { publicKey: abe.decodePublicKey(row.public_key), masterKey: abe.decodeMasterKey(row.master_key) };
}
